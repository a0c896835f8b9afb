import { Code } from '@connectrpc/connect';
import { RefundPayoutStatus } from '@punchcard/contracts/punchcard/billing/v1/billing_pb';
import { RefundApprovedSchema } from '@punchcard/contracts/punchcard/events/v1/refund_events_pb';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testpayWebhook } from './support/fake-testpay.js';
import { admin, expectError, newTenantId, staff, startTestEnv, TESTPAY_API_KEY, TESTPAY_WEBHOOK_SECRET, type TestEnv } from './support/harness.js';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

const SGD = (minor: bigint) => ({ currencyCode: 'SGD', amountMinor: minor });

/** A card-paid, fulfilled purchase: returns the entitlement id. */
async function paidByCard(tenant: string): Promise<{ entitlementId: string; checkout: string }> {
  await env.call('configurePaymentProvider', { idempotencyKey: 'cfg', provider: 'testpay', apiKey: TESTPAY_API_KEY, webhookSecret: TESTPAY_WEBHOOK_SECRET }, admin(tenant));
  const { payment } = await env.call('createCheckout', { idempotencyKey: randomUUID(), memberId: 'm', definitionId: 'd', branchId: 'b', provider: 'testpay', amount: SGD(30000n) }, staff(tenant));
  const hook = testpayWebhook(TESTPAY_WEBHOOK_SECRET, { id: randomUUID(), type: 'checkout.captured', checkoutId: payment!.providerReference, paymentId: payment!.paymentId, amount: 30000n, currency: 'SGD' }, env.clock.now());
  expect((await fetch(`${env.app.webhookUrl}/webhooks/testpay/${tenant}`, { method: 'POST', headers: hook.headers, body: hook.body })).status).toBe(200);
  await env.app.workers.fulfilment.runOnce();
  const { payment: done } = await env.call('getPayment', { paymentId: payment!.paymentId }, staff(tenant));
  return { entitlementId: done!.entitlementId, checkout: payment!.providerReference };
}

async function approve(tenant: string, refundId: string, entitlementId: string, minor: bigint, eventId?: string) {
  const id = await env.publish({
    producer: 'ledger',
    event: 'refund_approved',
    tenantId: tenant,
    aggregateId: refundId,
    schema: RefundApprovedSchema,
    message: { tenantId: tenant, refundId, entitlementId, amount: SGD(minor) },
    ...(eventId ? { id: eventId } : {}),
  });
  await env.outcomes.settled(id, 'billing_refunds');
}

const refundEvents = async (tenant: string) => (await env.billingEvents()).filter((e) => e.subject.endsWith(`.${tenant}`) && /refund_(paid|failed)/.test(e.subject));

describe('refund payouts', () => {
  it('pays an approved refund out through the processor exactly once, across duplicates, retries and a restart', async () => {
    const tenant = newTenantId();
    const { entitlementId, checkout } = await paidByCard(tenant);
    const refundId = `rf-${randomUUID()}`;
    env.testpay.state.failRefundsNext = 1;
    await approve(tenant, refundId, entitlementId, 15000n);
    await approve(tenant, refundId, entitlementId, 15000n); // the same approval under another event id

    await env.app.workers.payouts.runOnce();
    let { payout } = await env.call('getRefundPayout', { refundId }, staff(tenant));
    expect(payout).toMatchObject({ status: RefundPayoutStatus.PENDING, attempts: 1 });
    expect(payout!.failureReason).toContain('503');

    await env.restart();
    env.clock.advance(60_000);
    await env.app.workers.payouts.runOnce();
    await env.app.workers.payouts.runOnce();
    ({ payout } = await env.call('getRefundPayout', { refundId }, staff(tenant)));
    expect(payout).toMatchObject({ status: RefundPayoutStatus.PAID, attempts: 2, entitlementId, amount: SGD(15000n) });
    expect(payout!.providerReference).toMatch(/^re_/);

    const paid = [...env.testpay.payouts.values()].filter((p) => p.refundId === refundId);
    expect(paid).toEqual([expect.objectContaining({ checkout, amount: '15000' })]);

    // Later approvals of the same refund pay nothing more.
    await approve(tenant, refundId, entitlementId, 15000n);
    env.clock.advance(24 * 3_600_000);
    await env.app.workers.payouts.runOnce();
    expect([...env.testpay.payouts.values()].filter((p) => p.refundId === refundId)).toHaveLength(1);

    const events = await refundEvents(tenant);
    expect(events.map((e) => e.type)).toEqual(['punchcard.billing.refund_paid']);
    expect(events[0]!.data).toMatchObject({ tenantId: tenant, refundId, entitlementId, providerReference: payout!.providerReference });
  });

  it('fails at once, with billing.refund_failed, when billing did not take the payment or the amount does not fit', async () => {
    const tenant = newTenantId();
    const { entitlementId } = await paidByCard(tenant);
    await approve(tenant, 'rf-unknown', randomUUID(), 100n);
    await approve(tenant, 'rf-too-much', entitlementId, 30001n);
    await env.app.workers.payouts.runOnce();
    const unknown = (await env.call('getRefundPayout', { refundId: 'rf-unknown' }, staff(tenant))).payout!;
    expect(unknown.status).toBe(RefundPayoutStatus.FAILED);
    expect(unknown.failureReason).toContain('no billing payment');
    expect((await env.call('getRefundPayout', { refundId: 'rf-too-much' }, staff(tenant))).payout!.failureReason).toContain('exceeds');
    const events = await refundEvents(tenant);
    expect(events.map((e) => [e.type, (e.data as unknown as { refundId: string }).refundId])).toEqual([
      ['punchcard.billing.refund_failed', 'rf-unknown'],
      ['punchcard.billing.refund_failed', 'rf-too-much'],
    ]);
    expect([...env.testpay.payouts.values()].filter((p) => p.refundId.startsWith('rf-unknown') || p.refundId.startsWith('rf-too'))).toHaveLength(0);
  });

  it('waits for staff to confirm a manual payout, once', async () => {
    const tenant = newTenantId();
    const { payment } = await env.call('createCheckout', { idempotencyKey: 'co', memberId: 'm', definitionId: 'd', branchId: 'b', provider: 'manual', amount: SGD(20000n) }, staff(tenant));
    await env.call('confirmManualPayment', { idempotencyKey: 'c', paymentId: payment!.paymentId, reference: 'cash' }, staff(tenant));
    await env.app.workers.fulfilment.runOnce();
    const { payment: done } = await env.call('getPayment', { paymentId: payment!.paymentId }, staff(tenant));
    await approve(tenant, 'rf-cash', done!.entitlementId, 20000n);
    expect((await env.call('getRefundPayout', { refundId: 'rf-cash' }, staff(tenant))).payout!.status).toBe(RefundPayoutStatus.AWAITING_MANUAL);
    await expectError(env.call('confirmManualRefund', { idempotencyKey: 'm1', refundId: 'rf-cash', reference: 'cash back' }, staff(tenant)), Code.PermissionDenied, 'manager');
    const { payout } = await env.call('confirmManualRefund', { idempotencyKey: 'm1', refundId: 'rf-cash', reference: 'cash back' }, { tenantId: tenant, roles: ['manager'] });
    expect(payout!.status).toBe(RefundPayoutStatus.PAID);
    await env.call('confirmManualRefund', { idempotencyKey: 'm2', refundId: 'rf-cash', reference: 'again' }, { tenantId: tenant, roles: ['manager'] });
    expect((await refundEvents(tenant)).map((e) => e.type)).toEqual(['punchcard.billing.refund_paid']);
    await expectError(env.call('getRefundPayout', { refundId: 'rf-cash' }, staff(newTenantId())), Code.NotFound, 'rf-cash');
  });
});
