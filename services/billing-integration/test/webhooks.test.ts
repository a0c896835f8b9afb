import { randomUUID } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { HouseholdChangedSchema, LedgerEntryRecordedSchema, RefundChangedSchema, SharingChangedSchema } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { HouseholdKind, RefundState } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { EntryKind } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttp } from './support/http-server.js';
import { admin, expectError, newTenantId, staff, startTestEnv, type TestEnv } from './support/harness.js';

let env: TestEnv;
let receiver: Awaited<ReturnType<typeof startHttp>>;
const answers: number[] = [];

beforeAll(async () => {
  receiver = await startHttp(() => ({ status: answers.shift() ?? 204 }));
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
  await receiver?.close();
});

async function consumed(tenant: string) {
  const entitlementId = randomUUID();
  const id = await env.publish({
    producer: 'ledger',
    event: 'session_consumed',
    tenantId: tenant,
    aggregateId: entitlementId,
    aggregateVersion: 2,
    schema: LedgerEntryRecordedSchema,
    message: {
      entitlement: { tenantId: tenant, entitlementId, memberId: 'm-1', remaining: 9, version: 2n },
      entry: { tenantId: tenant, entryId: randomUUID(), entitlementId, kind: EntryKind.CONSUME, sessionsDelta: -1, branchId: 'orchard', entitlementVersion: 2n },
    },
  });
  await env.outcomes.settled(id, 'billing_webhooks_ledger');
  return { eventId: id, entitlementId };
}

const requestsFor = (path: string) => receiver.requests.filter((r) => r.path === path);

describe('outbound webhooks', () => {
  it('signs per Standard Webhooks, retries a failure with backoff, logs every attempt, and replays', async () => {
    const tenant = newTenantId();
    const { subscription } = await env.call('createWebhookSubscription', { idempotencyKey: 's1', url: `${receiver.url}/hooks/a`, eventTypes: ['ledger.session_consumed'] }, admin(tenant));
    expect(subscription!.signingSecret).toMatch(/^whsec_/);
    // A repeat of the request returns the same subscription and secret.
    const again = await env.call('createWebhookSubscription', { idempotencyKey: 's1', url: `${receiver.url}/hooks/a`, eventTypes: ['ledger.session_consumed'] }, admin(tenant));
    expect(again.subscription).toMatchObject({ subscriptionId: subscription!.subscriptionId, signingSecret: subscription!.signingSecret });

    answers.push(500);
    const { entitlementId } = await consumed(tenant);
    await env.app.workers.webhooks.runOnce();
    let { deliveries } = await env.call('listWebhookDeliveries', { subscriptionId: subscription!.subscriptionId }, admin(tenant));
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]).toMatchObject({ eventType: 'ledger.session_consumed', attempts: 1, lastStatusCode: 500, delivered: false });
    expect(deliveries[0]!.nextAttemptTime).toBeDefined();

    // Not before the backoff...
    await env.app.workers.webhooks.runOnce();
    expect(requestsFor('/hooks/a')).toHaveLength(1);
    env.clock.advance(6_000);
    await env.app.workers.webhooks.runOnce();
    ({ deliveries } = await env.call('listWebhookDeliveries', { subscriptionId: subscription!.subscriptionId }, admin(tenant)));
    expect(deliveries[0]).toMatchObject({ attempts: 2, lastStatusCode: 204, delivered: true });

    const sent = requestsFor('/hooks/a');
    expect(sent).toHaveLength(2);
    const wh = new Webhook(subscription!.signingSecret);
    for (const r of sent) {
      const payload = wh.verify(r.body, { 'webhook-id': r.headers['webhook-id']!, 'webhook-timestamp': r.headers['webhook-timestamp']!, 'webhook-signature': r.headers['webhook-signature']! }) as {
        type: string;
        data: { entitlement: { entitlementId: string } };
      };
      expect(payload.type).toBe('ledger.session_consumed');
      expect(payload.data.entitlement.entitlementId).toBe(entitlementId);
      expect(r.headers['webhook-id']).toBe(deliveries[0]!.deliveryId);
    }
    expect(() => new Webhook(`whsec_${Buffer.from('another secret 0123456789').toString('base64')}`).verify(sent[0]!.body, sent[0]!.headers as Record<string, string>)).toThrow();

    const log = await env.db.selectFrom('webhook_attempts').select(['attempt', 'status_code', 'replay']).where('delivery_id', '=', deliveries[0]!.deliveryId).orderBy('attempt').execute();
    expect(log).toEqual([
      { attempt: 1, status_code: 500, replay: false },
      { attempt: 2, status_code: 204, replay: false },
    ]);

    const { delivery } = await env.call('replayWebhookDelivery', { idempotencyKey: 'rp1', deliveryId: deliveries[0]!.deliveryId }, admin(tenant));
    expect(delivery).toMatchObject({ attempts: 3, delivered: true, lastStatusCode: 204 });
    const replayed = requestsFor('/hooks/a').at(-1)!;
    expect(replayed.headers['webhook-id']).toBe(deliveries[0]!.deliveryId);
    expect(() => wh.verify(replayed.body, replayed.headers as Record<string, string>)).not.toThrow();
    // The same replay request is not sent twice.
    await env.call('replayWebhookDelivery', { idempotencyKey: 'rp1', deliveryId: deliveries[0]!.deliveryId }, admin(tenant));
    expect(requestsFor('/hooks/a')).toHaveLength(3);
  });

  it('filters by event type, delivers billing events of its own, and keeps tenants apart', async () => {
    const tenant = newTenantId();
    const other = newTenantId();
    const { subscription: billing } = await env.call('createWebhookSubscription', { idempotencyKey: 'b', url: `${receiver.url}/hooks/billing`, eventTypes: ['billing.*'] }, admin(tenant));
    await env.call('createWebhookSubscription', { idempotencyKey: 'o', url: `${receiver.url}/hooks/other`, eventTypes: [] }, admin(other));

    const { payment } = await env.call('createCheckout', { idempotencyKey: 'co', memberId: 'm', definitionId: 'd', branchId: 'b', provider: 'manual', amount: { currencyCode: 'SGD', amountMinor: 5000n } }, staff(tenant));
    await env.call('confirmManualPayment', { idempotencyKey: 'c', paymentId: payment!.paymentId, reference: 'r' }, staff(tenant));
    await consumed(tenant);
    await env.app.relay!.flush();
    const captured = (await env.billingEvents()).find((e) => e.subject === `punchcard.billing.payment_captured.${tenant}`)!;
    expect(captured).toBeDefined();
    await expect.poll(async () => (await env.call('listWebhookDeliveries', { subscriptionId: billing!.subscriptionId }, admin(tenant))).deliveries.length, { timeout: 10_000 }).toBe(1);
    await env.app.workers.webhooks.runOnce();
    const got = requestsFor('/hooks/billing');
    expect(got).toHaveLength(1);
    const body = new Webhook(billing!.signingSecret).verify(got[0]!.body, got[0]!.headers as Record<string, string>) as { type: string; data: { payment: { paymentId: string } } };
    expect(body.type).toBe('billing.payment_captured');
    expect(body.data.payment.paymentId).toBe(payment!.paymentId);
    expect(requestsFor('/hooks/other')).toHaveLength(0);
    expect((await env.call('listWebhookDeliveries', {}, admin(other))).deliveries).toHaveLength(0);
  });

  it('forwards the ledger events that are not entries: refund, household and sharing changes', async () => {
    const tenant = newTenantId();
    const { subscription } = await env.call('createWebhookSubscription', { idempotencyKey: 'l', url: `${receiver.url}/hooks/ledger`, eventTypes: ['ledger.*'] }, admin(tenant));
    const entitlementId = randomUUID();
    const base = { producer: 'ledger', tenantId: tenant } as const;
    const ids = [
      await env.publish({ ...base, event: 'refund_requested', aggregateId: 'r-1', aggregateVersion: 1, schema: RefundChangedSchema, message: { refund: { tenantId: tenant, refundId: 'r-1', entitlementId, state: RefundState.REQUESTED } } }),
      await env.publish({ ...base, event: 'household_changed', aggregateId: 'h-1', aggregateVersion: 1, schema: HouseholdChangedSchema, message: { household: { tenantId: tenant, householdId: 'h-1', kind: HouseholdKind.FAMILY } } }),
      await env.publish({ ...base, event: 'entitlement_shared', aggregateId: entitlementId, schema: SharingChangedSchema, message: { entitlement: { tenantId: tenant, entitlementId }, householdId: 'h-1' } }),
    ];
    for (const id of ids) await env.outcomes.settled(id, 'billing_webhooks_ledger');
    await env.app.workers.webhooks.runOnce();
    const wh = new Webhook(subscription!.signingSecret);
    const got = requestsFor('/hooks/ledger').map((r) => wh.verify(r.body, r.headers as Record<string, string>) as { type: string; data: Record<string, unknown> });
    expect(got.map((b) => b.type).sort()).toEqual(['ledger.entitlement_shared', 'ledger.household_changed', 'ledger.refund_requested']);
    expect(got.find((b) => b.type === 'ledger.refund_requested')?.data).toMatchObject({ refund: { refundId: 'r-1', entitlementId, state: 'REFUND_STATE_REQUESTED' } });
    expect(got.find((b) => b.type === 'ledger.household_changed')?.data).toMatchObject({ household: { householdId: 'h-1', kind: 'HOUSEHOLD_KIND_FAMILY' } });
    expect(got.find((b) => b.type === 'ledger.entitlement_shared')?.data).toMatchObject({ entitlement: { entitlementId }, householdId: 'h-1' });
  });

  it('validates subscriptions and stores the signing secret encrypted', async () => {
    const tenant = newTenantId();
    await expectError(env.call('createWebhookSubscription', { idempotencyKey: 'x', url: 'ftp://example.com', eventTypes: [] }, admin(tenant)), Code.InvalidArgument, 'url');
    await expectError(env.call('createWebhookSubscription', { idempotencyKey: 'x', url: 'https://example.com', eventTypes: ['Ledger'] }, admin(tenant)), Code.InvalidArgument, 'event_types[0]');
    await expectError(env.call('createWebhookSubscription', { idempotencyKey: 'x', url: 'https://example.com', eventTypes: [] }, staff(tenant)), Code.PermissionDenied, 'admin');
    await expectError(env.call('replayWebhookDelivery', { idempotencyKey: 'x', deliveryId: randomUUID() }, admin(tenant)), Code.NotFound, 'webhook delivery');
    const { subscription } = await env.call('createWebhookSubscription', { idempotencyKey: 'ok', url: 'https://hooks.example.com/p', eventTypes: ['ledger.*'] }, admin(tenant));
    const row = await env.db.selectFrom('webhook_subscriptions').select('secret_enc').where('subscription_id', '=', subscription!.subscriptionId).executeTakeFirstOrThrow();
    const secretBytes = subscription!.signingSecret.slice('whsec_'.length);
    expect(Buffer.from(row.secret_enc).toString('latin1')).not.toContain(secretBytes);
    const stored = await env.db.selectFrom('idempotency_keys').select('response').where('tenant_id', '=', tenant).execute();
    for (const r of stored) expect(Buffer.from(r.response ?? new Uint8Array()).toString('latin1')).not.toContain(secretBytes);
  });
});
