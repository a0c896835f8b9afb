import { Code } from '@connectrpc/connect';
import { PaymentStatus } from '@punchcard/contracts/punchcard/billing/v1/billing_pb';
import { LedgerEntryRecordedSchema } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, expectError, newTenantId, staff, startTestEnv, TESTPAY_API_KEY, TESTPAY_WEBHOOK_SECRET, type TestEnv } from './support/harness.js';
import { testpayWebhook } from './support/fake-testpay.js';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

const SGD = (minor: bigint) => ({ currencyCode: 'SGD', amountMinor: minor });

async function manualCheckout(tenantId: string, key = `co-${Math.random()}`) {
  const { payment } = await env.call('createCheckout', { idempotencyKey: key, memberId: 'm-1', definitionId: 'def-10pass', branchId: 'orchard', provider: 'manual', amount: SGD(30000n) }, staff(tenantId));
  return payment!;
}

async function configureTestpay(tenantId: string) {
  await env.call('configurePaymentProvider', { idempotencyKey: `cfg-${tenantId}`, provider: 'testpay', apiKey: TESTPAY_API_KEY, webhookSecret: TESTPAY_WEBHOOK_SECRET }, admin(tenantId));
}

async function cardCheckout(tenantId: string) {
  const { payment } = await env.call('createCheckout', { idempotencyKey: `card-${Math.random()}`, memberId: 'm-2', definitionId: 'def-10pass', branchId: 'orchard', provider: 'testpay', amount: SGD(45000n) }, staff(tenantId));
  return payment!;
}

function postWebhook(tenantId: string, hook: { body: string; headers: Record<string, string> }) {
  return fetch(`${env.app.webhookUrl}/webhooks/testpay/${tenantId}`, { method: 'POST', headers: hook.headers, body: hook.body });
}

function captured(p: { paymentId: string; providerReference: string }, eventId = `evt_${p.paymentId}`) {
  return testpayWebhook(TESTPAY_WEBHOOK_SECRET, { id: eventId, type: 'checkout.captured', checkoutId: p.providerReference, paymentId: p.paymentId, amount: 45000n, currency: 'SGD' }, env.clock.now());
}

const entitlementsFor = (tenantId: string, paymentId: string) => [...env.ledger.entitlements.keys()].filter((k) => k === `${tenantId}/${paymentId}`).length;

describe('manual payments', () => {
  it('confirmation captures; the saga creates the entitlement once with a system token for the tenant', async () => {
    const tenant = newTenantId();
    const pending = await manualCheckout(tenant);
    expect(pending.status).toBe(PaymentStatus.PENDING);
    expect(pending.amount).toMatchObject(SGD(30000n));

    const { payment } = await env.call('confirmManualPayment', { idempotencyKey: 'confirm-1', paymentId: pending.paymentId, reference: 'receipt 0042' }, staff(tenant));
    expect(payment!.status).toBe(PaymentStatus.CAPTURED);
    // A second confirmation (another key) changes nothing.
    const again = await env.call('confirmManualPayment', { idempotencyKey: 'confirm-2', paymentId: pending.paymentId, reference: 'receipt 0042' }, staff(tenant));
    expect(again.payment!.status).toBe(PaymentStatus.CAPTURED);

    expect(await env.app.workers.fulfilment.runOnce()).toBeGreaterThanOrEqual(1);
    const { payment: done } = await env.call('getPayment', { paymentId: pending.paymentId }, staff(tenant));
    expect(done!.status).toBe(PaymentStatus.FULFILLED);
    expect(done!.entitlementId).not.toBe('');

    const calls = env.ledger.calls.filter((c) => c.request.idempotencyKey === pending.paymentId);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ tenantId: tenant, roles: ['system'], request: { memberId: 'm-1', definitionId: 'def-10pass', branchId: 'orchard', paymentReference: pending.paymentId } });

    // Nothing left to do: more sweeps call nobody.
    env.clock.advance(3_600_000);
    await env.app.workers.fulfilment.runOnce();
    expect(env.ledger.calls.filter((c) => c.request.idempotencyKey === pending.paymentId)).toHaveLength(1);

    const events = (await env.billingEvents()).filter((e) => e.subject === `punchcard.billing.payment_captured.${tenant}`);
    expect(events).toHaveLength(1);
    expect(events[0]!.data).toMatchObject({ payment: { paymentId: pending.paymentId, status: PaymentStatus.CAPTURED } });
  });

  it('replays CreateCheckout for a repeated key and refuses the key with a different request', async () => {
    const tenant = newTenantId();
    const a = await manualCheckout(tenant, 'same-key');
    const b = await manualCheckout(tenant, 'same-key');
    expect(b.paymentId).toBe(a.paymentId);
    await expectError(
      env.call('createCheckout', { idempotencyKey: 'same-key', memberId: 'm-9', definitionId: 'def-10pass', branchId: 'orchard', provider: 'manual', amount: SGD(30000n) }, staff(tenant)),
      Code.InvalidArgument,
      'idempotency_key',
    );
  });

  it('validates requests, naming the field, and enforces roles and tenants', async () => {
    const tenant = newTenantId();
    const base = { idempotencyKey: 'k', memberId: 'm', definitionId: 'd', branchId: 'b', provider: 'manual', amount: SGD(100n) };
    await expectError(env.call('createCheckout', { ...base, memberId: '' }, staff(tenant)), Code.InvalidArgument, 'member_id');
    await expectError(env.call('createCheckout', { ...base, amount: SGD(0n) }, staff(tenant)), Code.InvalidArgument, 'amount.amount_minor');
    await expectError(env.call('createCheckout', { ...base, amount: { currencyCode: 'XXX', amountMinor: 1n } }, staff(tenant)), Code.InvalidArgument, 'amount.currency_code');
    await expectError(env.call('createCheckout', { ...base, provider: 'paypal' }, staff(tenant)), Code.InvalidArgument, 'provider');
    await expectError(env.call('createCheckout', { ...base, provider: 'testpay' }, staff(tenant)), Code.FailedPrecondition, 'ConfigurePaymentProvider');
    await expectError(env.call('createCheckout', base, { tenantId: tenant, roles: ['member'] }), Code.PermissionDenied, 'requires role');
    await expectError(env.call('configurePaymentProvider', { idempotencyKey: 'x', provider: 'testpay', apiKey: 'a', webhookSecret: 'b' }, staff(tenant)), Code.PermissionDenied, 'admin');

    const p = await manualCheckout(tenant);
    await expectError(env.call('getPayment', { paymentId: p.paymentId }, staff(newTenantId())), Code.NotFound, p.paymentId);
    await expectError(env.call('confirmManualPayment', { idempotencyKey: 'c', paymentId: p.paymentId, reference: '' }, staff(tenant)), Code.InvalidArgument, 'reference');
    await expectError(env.call('getPayment', { paymentId: 'nope' }, staff(tenant)), Code.InvalidArgument, 'payment_id');
  });
});

describe('card processor payments', () => {
  it('creates the processor checkout and captures once however often the webhook arrives', async () => {
    const tenant = newTenantId();
    await configureTestpay(tenant);
    const p = await cardCheckout(tenant);
    expect(p.status).toBe(PaymentStatus.PENDING);
    expect(p.checkoutUrl).toMatch(/^https:\/\/pay\.testpay\.example\/c\/co_/);
    expect(p.providerReference).toMatch(/^co_/);

    const hook = captured(p);
    const answers = await Promise.all([postWebhook(tenant, hook), postWebhook(tenant, hook), postWebhook(tenant, hook)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    // The same capture under a different processor event id is a no-op too.
    expect((await postWebhook(tenant, captured(p, 'evt_other'))).status).toBe(200);

    await env.app.workers.fulfilment.runOnce();
    await env.app.workers.fulfilment.runOnce();
    const { payment } = await env.call('getPayment', { paymentId: p.paymentId }, staff(tenant));
    expect(payment!.status).toBe(PaymentStatus.FULFILLED);
    expect(env.ledger.calls.filter((c) => c.request.idempotencyKey === p.paymentId)).toHaveLength(1);
    expect(entitlementsFor(tenant, p.paymentId)).toBe(1);

    const events = (await env.billingEvents()).filter((e) => e.subject === `punchcard.billing.payment_captured.${tenant}`);
    expect(events).toHaveLength(1);
  });

  it('refuses a webhook with a bad signature, a stale timestamp or another tenant and changes nothing', async () => {
    const tenant = newTenantId();
    await configureTestpay(tenant);
    const p = await cardCheckout(tenant);
    const hook = captured(p);
    expect((await postWebhook(tenant, { ...hook, body: hook.body.replace('45000', '1') })).status).toBe(401);
    const forged = { ...hook, headers: { ...hook.headers, 'testpay-signature': hook.headers['testpay-signature']!.replace(/v1=(.)/, (_, c: string) => `v1=${c === '0' ? '1' : '0'}`) } };
    expect((await postWebhook(tenant, forged)).status).toBe(401);
    env.clock.advance(10 * 60_000);
    expect((await postWebhook(tenant, hook)).status).toBe(401);
    expect((await postWebhook(newTenantId(), captured(p))).status).toBe(404);
    const { payment } = await env.call('getPayment', { paymentId: p.paymentId }, staff(tenant));
    expect(payment!.status).toBe(PaymentStatus.PENDING);
  });

  it('never creates an entitlement for a failed payment, even when a capture is reported after it', async () => {
    const tenant = newTenantId();
    await configureTestpay(tenant);
    const p = await cardCheckout(tenant);
    const failed = testpayWebhook(TESTPAY_WEBHOOK_SECRET, { id: `evt_f_${p.paymentId}`, type: 'checkout.failed', checkoutId: p.providerReference, paymentId: p.paymentId, amount: 45000n, currency: 'SGD', reason: 'card declined' }, env.clock.now());
    expect((await postWebhook(tenant, failed)).status).toBe(200);
    expect((await postWebhook(tenant, captured(p))).status).toBe(200);
    env.clock.advance(3_600_000);
    await env.app.workers.fulfilment.runOnce();
    const { payment } = await env.call('getPayment', { paymentId: p.paymentId }, staff(tenant));
    expect(payment!.status).toBe(PaymentStatus.FAILED);
    expect(payment!.failureReason).toContain('card declined');
    expect(payment!.failureReason).toContain('captured after it failed');
    expect(env.ledger.calls.filter((c) => c.request.idempotencyKey === p.paymentId)).toHaveLength(0);
  });

  it('holds a capture of a different amount for review instead of fulfilling it', async () => {
    const tenant = newTenantId();
    await configureTestpay(tenant);
    const p = await cardCheckout(tenant);
    const wrong = testpayWebhook(TESTPAY_WEBHOOK_SECRET, { id: `evt_w_${p.paymentId}`, type: 'checkout.captured', checkoutId: p.providerReference, paymentId: p.paymentId, amount: 100n, currency: 'SGD' }, env.clock.now());
    expect((await postWebhook(tenant, wrong)).status).toBe(200);
    const { payment } = await env.call('getPayment', { paymentId: p.paymentId }, staff(tenant));
    expect(payment!.status).toBe(PaymentStatus.PENDING);
    expect(payment!.failureReason).toContain('expected 45000');
  });
});

describe('the purchase saga across failures and restarts', () => {
  it('resumes a captured payment after a restart and creates exactly one entitlement', async () => {
    const tenant = newTenantId();
    const p = await manualCheckout(tenant);
    await env.call('confirmManualPayment', { idempotencyKey: 'c', paymentId: p.paymentId, reference: 'r' }, staff(tenant));
    // The process dies before the saga ran.
    await env.restart();
    await env.app.workers.fulfilment.runOnce();
    const { payment } = await env.call('getPayment', { paymentId: p.paymentId }, staff(tenant));
    expect(payment!.status).toBe(PaymentStatus.FULFILLED);
    expect(env.ledger.calls.filter((c) => c.request.idempotencyKey === p.paymentId)).toHaveLength(1);
  });

  it('survives a ledger purchase whose answer was lost, then a restart mid-saga: one entitlement', async () => {
    const tenant = newTenantId();
    const p = await manualCheckout(tenant);
    await env.call('confirmManualPayment', { idempotencyKey: 'c', paymentId: p.paymentId, reference: 'r' }, staff(tenant));
    env.ledger.state.applyThenFail = 1;
    await env.app.workers.fulfilment.runOnce();
    const mid = (await env.call('getPayment', { paymentId: p.paymentId }, staff(tenant))).payment!;
    expect(mid.status).toBe(PaymentStatus.CAPTURED);
    expect(mid.fulfilmentError).toContain('connection reset');
    expect(entitlementsFor(tenant, p.paymentId)).toBe(1);

    await env.restart();
    // Not due before its backoff...
    await env.app.workers.fulfilment.runOnce();
    expect(env.ledger.calls.filter((c) => c.request.idempotencyKey === p.paymentId)).toHaveLength(1);
    // ...then retried with the same idempotency key.
    env.clock.advance(60_000);
    await env.app.workers.fulfilment.runOnce();
    const done = (await env.call('getPayment', { paymentId: p.paymentId }, staff(tenant))).payment!;
    expect(done.status).toBe(PaymentStatus.FULFILLED);
    expect(env.ledger.calls.filter((c) => c.request.idempotencyKey === p.paymentId)).toHaveLength(2);
    expect(entitlementsFor(tenant, p.paymentId)).toBe(1);
    expect(done.entitlementId).toBe(env.ledger.entitlements.get(`${tenant}/${p.paymentId}`)!.entitlement!.entitlementId);
  });

  it('keeps retrying while the ledger is down, with backoff, and never loses the capture', async () => {
    const tenant = newTenantId();
    const p = await manualCheckout(tenant);
    await env.call('confirmManualPayment', { idempotencyKey: 'c', paymentId: p.paymentId, reference: 'r' }, staff(tenant));
    env.ledger.state.failNext = 3;
    for (let i = 0; i < 4; i++) {
      await env.app.workers.fulfilment.runOnce();
      env.clock.advance(20 * 60_000);
    }
    const done = (await env.call('getPayment', { paymentId: p.paymentId }, staff(tenant))).payment!;
    expect(done.status).toBe(PaymentStatus.FULFILLED);
    expect(done.fulfilmentAttempts).toBe(4);
    expect(entitlementsFor(tenant, p.paymentId)).toBe(1);
  });

  it('records the entitlement from ledger.entitlement_purchased when the saga never heard back', async () => {
    const tenant = newTenantId();
    const p = await manualCheckout(tenant);
    await env.call('confirmManualPayment', { idempotencyKey: 'c', paymentId: p.paymentId, reference: 'r' }, staff(tenant));
    env.ledger.state.applyThenFail = 1;
    await env.app.workers.fulfilment.runOnce();
    const ent = env.ledger.entitlements.get(`${tenant}/${p.paymentId}`)!.entitlement!;
    const id = await env.publish({
      producer: 'ledger',
      event: 'entitlement_purchased',
      tenantId: tenant,
      aggregateId: ent.entitlementId,
      aggregateVersion: 1,
      schema: LedgerEntryRecordedSchema,
      message: { entitlement: ent, entry: { tenantId: tenant, entitlementId: ent.entitlementId, entitlementVersion: 1n } },
    });
    expect(await env.outcomes.settled(id, 'billing_purchases')).toMatchObject({ outcome: 'applied' });
    const done = (await env.call('getPayment', { paymentId: p.paymentId }, staff(tenant))).payment!;
    expect(done.status).toBe(PaymentStatus.FULFILLED);
    expect(done.entitlementId).toBe(ent.entitlementId);
    env.clock.advance(3_600_000);
    await env.app.workers.fulfilment.runOnce();
    expect(env.ledger.calls.filter((c) => c.request.idempotencyKey === p.paymentId)).toHaveLength(1);
  });

  it('two replicas sweeping at once call the ledger once per payment', async () => {
    const tenant = newTenantId();
    const payments = [];
    for (let i = 0; i < 6; i++) {
      const p = await manualCheckout(tenant);
      await env.call('confirmManualPayment', { idempotencyKey: `c${i}`, paymentId: p.paymentId, reference: 'r' }, staff(tenant));
      payments.push(p);
    }
    const replica = await env.replica();
    await Promise.all([env.app.workers.fulfilment.runOnce(), replica.workers.fulfilment.runOnce(), env.app.workers.fulfilment.runOnce()]);
    for (const p of payments) {
      expect(env.ledger.calls.filter((c) => c.request.idempotencyKey === p.paymentId)).toHaveLength(1);
      expect((await env.call('getPayment', { paymentId: p.paymentId }, staff(tenant))).payment!.status).toBe(PaymentStatus.FULFILLED);
    }
  });
});
