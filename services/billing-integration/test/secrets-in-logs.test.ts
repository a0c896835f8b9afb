import { randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Feature, PlanTier } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { TenantChangedSchema } from '@punchcard/contracts/punchcard/events/v1/catalogue_events_pb';
import { JournalPostedSchema } from '@punchcard/contracts/punchcard/events/v1/revenue_events_pb';
import { Account } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeXero } from './support/fake-accounting.js';
import { testpayWebhook } from './support/fake-testpay.js';
import { startHttp } from './support/http-server.js';
import { admin, newTenantId, staff, startTestEnv, TESTPAY_API_KEY, TESTPAY_WEBHOOK_SECRET, type TestEnv } from './support/harness.js';

const XERO = { token: `xero-token-${randomUUID()}`, tenantId: randomUUID() };
let env: TestEnv;
let xero: Awaited<ReturnType<typeof startFakeXero>>;
let receiver: Awaited<ReturnType<typeof startHttp>>;

beforeAll(async () => {
  xero = await startFakeXero(XERO);
  receiver = await startHttp(() => ({ status: 500 }));
  env = await startTestEnv({ connectors: { xeroBaseUrl: `${xero.url}/api.xro/2.0` } });
});
afterAll(async () => {
  await env?.close();
  await xero?.close();
  await receiver?.close();
});

describe('secrets never reach the logs', () => {
  it('runs every flow that touches a secret at trace level, with failures, and finds none of them in the output', async () => {
    const tenant = newTenantId();
    const { subscription } = await env.call('createWebhookSubscription', { idempotencyKey: 'w', url: `${receiver.url}/h`, eventTypes: [] }, admin(tenant));
    // Card payments: provider key and webhook secret, a rejected and an accepted webhook.
    await env.call('configurePaymentProvider', { idempotencyKey: 'p', provider: 'testpay', apiKey: TESTPAY_API_KEY, webhookSecret: TESTPAY_WEBHOOK_SECRET }, admin(tenant));
    const { payment } = await env.call('createCheckout', { idempotencyKey: 'c', memberId: 'm', definitionId: 'd', branchId: 'b', provider: 'testpay', amount: { currencyCode: 'SGD', amountMinor: 100n } }, staff(tenant));
    const hook = testpayWebhook(TESTPAY_WEBHOOK_SECRET, { id: 'e1', type: 'checkout.captured', checkoutId: payment!.providerReference, paymentId: payment!.paymentId, amount: 100n, currency: 'SGD' }, env.clock.now());
    const url = `${env.app.webhookUrl}/webhooks/testpay/${tenant}`;
    await fetch(url, { method: 'POST', headers: { ...hook.headers, 'testpay-signature': 't=1,v1=00' }, body: hook.body });
    await fetch(url, { method: 'POST', headers: hook.headers, body: hook.body });
    env.ledger.state.failNext = 1;
    await env.app.workers.fulfilment.runOnce();

    // Accounting: connector token, a failing then succeeding delivery.
    const t = await env.publish({ producer: 'catalogue', event: 'tenant_changed', tenantId: tenant, aggregateId: tenant, schema: TenantChangedSchema, message: { tenant: { tenantId: tenant, planTier: PlanTier.ENTERPRISE, defaultCurrency: 'SGD', features: [Feature.ACCOUNTING_INTEGRATION], updateTime: timestampFromDate(new Date()) } } });
    await env.outcomes.settled(t, 'billing_tenants');
    await env.call('configureConnector', { idempotencyKey: 'x', accessToken: XERO.token, config: { connector: 'xero', enabled: true, externalTenantId: XERO.tenantId, accountCodes: { ACCOUNT_CASH: '090', ACCOUNT_DEFERRED_REVENUE: '835' } } }, admin(tenant));
    const j = await env.publish({
      producer: 'revenue',
      event: 'journal_posted',
      tenantId: tenant,
      aggregateId: 'j',
      schema: JournalPostedSchema,
      message: { entry: { tenantId: tenant, journalEntryId: randomUUID(), accountingDate: '2030-01-01', cause: 'x', lines: [{ account: Account.CASH, debit: { currencyCode: 'SGD', amountMinor: 5n } }, { account: Account.DEFERRED_REVENUE, credit: { currencyCode: 'SGD', amountMinor: 5n } }] } },
    });
    await env.outcomes.settled(j, 'billing_journal');
    xero.state.failNext = 1;
    await env.app.workers.syncs.runOnce();
    env.clock.advance(3_600_000);
    await env.app.workers.syncs.runOnce();

    // Webhooks: a signing secret, failed deliveries.
    const captured = (await env.billingEvents()).length;
    expect(captured).toBeGreaterThan(0);
    await expect.poll(async () => (await env.call('listWebhookDeliveries', {}, admin(tenant))).deliveries.length, { timeout: 10_000 }).toBeGreaterThan(0);
    await env.app.workers.webhooks.runOnce();

    // A careless log call with secrets in it is redacted by the logger's paths.
    env.app.ctx.logger.info({ apiKey: TESTPAY_API_KEY, config: { access_token: XERO.token }, headers: { authorization: `Bearer ${XERO.token}` } }, 'careless');

    const text = env.logs.text();
    expect(text.length).toBeGreaterThan(1000);
    expect(text).toContain('[redacted]');
    for (const secret of [TESTPAY_API_KEY, TESTPAY_WEBHOOK_SECRET, XERO.token, subscription!.signingSecret, subscription!.signingSecret.slice(6), env.secretsKey]) {
      expect(text, 'a secret appeared in the logs').not.toContain(secret);
    }
  });
});
