import { randomUUID } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { PaymentStatus, RefundPayoutStatus, type Payment } from '@punchcard/contracts/punchcard/billing/v1/billing_pb';
import { LedgerEntryRecordedSchema } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { RefundApprovedSchema } from '@punchcard/contracts/punchcard/events/v1/refund_events_pb';
import { EntryKind } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testpayWebhook } from './support/fake-testpay.js';
import { admin, expectError, newTenantId, staff, startTestEnv, TESTPAY_API_KEY, TESTPAY_WEBHOOK_SECRET, type TestEnv, type Who } from './support/harness.js';

/**
 * Issue 7/8 across billing: an upgrade's difference paid through a checkout (the saga makes the
 * ledger's Upgrade once), and refunds of packages that arrived by transfer or upgrade paid back
 * through the payments behind them, followed back from the ledger's TRANSFER_IN / UPGRADE_IN events.
 */

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

const SGD = (minor: bigint) => ({ currencyCode: 'SGD', amountMinor: minor });
const manager = (tenantId: string): Who => ({ tenantId, roles: ['manager'] });

async function configureTestpay(tenant: string) {
  await env.call('configurePaymentProvider', { idempotencyKey: 'cfg', provider: 'testpay', apiKey: TESTPAY_API_KEY, webhookSecret: TESTPAY_WEBHOOK_SECRET }, admin(tenant));
}

async function captureByCard(tenant: string, p: Payment) {
  const hook = testpayWebhook(TESTPAY_WEBHOOK_SECRET, { id: randomUUID(), type: 'checkout.captured', checkoutId: p.providerReference, paymentId: p.paymentId, amount: p.amount!.amountMinor, currency: 'SGD' }, env.clock.now());
  expect((await fetch(`${env.app.webhookUrl}/webhooks/testpay/${tenant}`, { method: 'POST', headers: hook.headers, body: hook.body })).status).toBe(200);
}

async function payment(tenant: string, paymentId: string): Promise<Payment> {
  return (await env.call('getPayment', { paymentId }, staff(tenant))).payment!;
}

/** A purchase paid through billing and fulfilled by the saga. */
async function bought(tenant: string, provider: 'manual' | 'testpay', minor: bigint): Promise<{ entitlementId: string; payment: Payment }> {
  const { payment: p } = await env.call('createCheckout', { idempotencyKey: randomUUID(), memberId: 'ava', definitionId: 'silver', branchId: 'orchard', provider, amount: SGD(minor) }, staff(tenant));
  if (provider === 'manual') await env.call('confirmManualPayment', { idempotencyKey: randomUUID(), paymentId: p!.paymentId, reference: 'terminal 7' }, staff(tenant));
  else await captureByCard(tenant, p!);
  await env.app.workers.fulfilment.runOnce();
  const done = await payment(tenant, p!.paymentId);
  expect(done.status).toBe(PaymentStatus.FULFILLED);
  return { entitlementId: done.entitlementId, payment: done };
}

/** An upgrade of `entitlementId` to gold paid through billing: checkout, capture, the saga's Upgrade. */
async function upgraded(tenant: string, entitlementId: string, provider: 'manual' | 'testpay', due: bigint): Promise<{ entitlementId: string; payment: Payment }> {
  env.ledger.amountDue.set(`${tenant}/${entitlementId}`, due);
  const { payment: p } = await env.call('createCheckout', { idempotencyKey: randomUUID(), provider, upgrade: { entitlementId, targetDefinitionId: 'gold' } }, staff(tenant));
  if (provider === 'manual') await env.call('confirmManualPayment', { idempotencyKey: randomUUID(), paymentId: p!.paymentId, reference: 'terminal 8' }, staff(tenant));
  else await captureByCard(tenant, p!);
  await env.app.workers.fulfilment.runOnce();
  const done = await payment(tenant, p!.paymentId);
  expect(done.status).toBe(PaymentStatus.FULFILLED);
  return { entitlementId: done.entitlementId, payment: done };
}

/** The ledger's TRANSFER_IN or UPGRADE_IN entry event of a new entitlement (version 1). */
function arrived(tenant: string, kind: 'transferred_in' | 'upgraded_in', e: { entitlementId: string; origin: string; paymentReference?: string }) {
  return env.publish({
    producer: 'ledger',
    event: kind,
    tenantId: tenant,
    aggregateId: e.entitlementId,
    aggregateVersion: 1,
    schema: LedgerEntryRecordedSchema,
    message: {
      entitlement: { tenantId: tenant, entitlementId: e.entitlementId, originEntitlementId: e.origin, paymentReference: e.paymentReference ?? '', version: 1n },
      entry: {
        tenantId: tenant,
        entryId: randomUUID(),
        entitlementId: e.entitlementId,
        kind: kind === 'upgraded_in' ? EntryKind.UPGRADE_IN : EntryKind.TRANSFER_IN,
        counterpartEntitlementId: e.origin,
        entitlementVersion: 1n,
      },
    },
  });
}

async function approve(tenant: string, refundId: string, entitlementId: string, minor: bigint) {
  const id = await env.publish({
    producer: 'ledger',
    event: 'refund_approved',
    tenantId: tenant,
    aggregateId: refundId,
    schema: RefundApprovedSchema,
    message: { tenantId: tenant, refundId, entitlementId, amount: SGD(minor) },
  });
  expect(await env.outcomes.settled(id, 'billing_refunds')).toMatchObject({ outcome: 'applied' });
}

const payout = async (tenant: string, refundId: string) => (await env.call('getRefundPayout', { refundId }, staff(tenant))).payout!;
const cardPayouts = (refundId: string) => [...env.testpay.payouts.entries()].filter(([, p]) => p.refundId === refundId).map(([key, p]) => ({ key, checkout: p.checkout, amount: p.amount }));
const refundEvents = async (tenant: string, refundId: string) =>
  (await env.billingEvents())
    .filter((e) => e.subject.endsWith(`.${tenant}`) && /refund_(paid|failed)/.test(e.subject) && (e.data as unknown as { refundId: string }).refundId === refundId)
    .map((e) => [e.type, (e.data as unknown as { amount: { amountMinor: bigint } }).amount.amountMinor]);

describe('refund of a transferred package', () => {
  it('pays back through the payment that bought the original, once, however often the transfers and the approval arrive', async () => {
    const tenant = newTenantId();
    await configureTestpay(tenant);
    const original = await bought(tenant, 'testpay', 30000n);
    // Two transfers in a row (ava -> ben -> cy): the refunded package is two steps from the sale.
    const [ben, cy] = [randomUUID(), randomUUID()];
    await arrived(tenant, 'transferred_in', { entitlementId: ben, origin: original.entitlementId });
    await arrived(tenant, 'transferred_in', { entitlementId: ben, origin: original.entitlementId }); // the same fact again, under a new id
    await arrived(tenant, 'transferred_in', { entitlementId: cy, origin: ben });
    // Not waited for: the approval is handled by the same durable after the transfer events, in stream order.
    const refundId = `rf-${randomUUID()}`;
    await approve(tenant, refundId, cy, 15000n);
    await approve(tenant, refundId, cy, 15000n);

    expect(await payout(tenant, refundId)).toMatchObject({ status: RefundPayoutStatus.PENDING, paymentId: original.payment.paymentId, provider: 'testpay' });
    await env.app.workers.payouts.runOnce();
    env.clock.advance(24 * 3_600_000);
    await env.app.workers.payouts.runOnce();

    const paid = await payout(tenant, refundId);
    expect(paid).toMatchObject({ status: RefundPayoutStatus.PAID, entitlementId: cy, amount: SGD(15000n), attempts: 1 });
    expect(paid.parts).toMatchObject([{ paymentId: original.payment.paymentId, provider: 'testpay', amount: SGD(15000n), status: RefundPayoutStatus.PAID, providerReference: paid.providerReference, attempts: 1 }]);
    expect(cardPayouts(refundId)).toEqual([{ key: `refund-${refundId}`, checkout: original.payment.providerReference, amount: '15000' }]);
    expect(await refundEvents(tenant, refundId)).toEqual([['punchcard.billing.refund_paid', 15000n]]);

    // What that refund took counts against the payment for any later one of the chain.
    await approve(tenant, 'rf-more', ben, 15001n);
    expect(await payout(tenant, 'rf-more')).toMatchObject({ status: RefundPayoutStatus.FAILED, failureReason: expect.stringContaining('exceeds the captured 15000') });
  });
});

describe('upgrade checkout', () => {
  it("charges the ledger's amount due; on capture the saga upgrades once, with the payment as key and reference, across a lost answer and a restart", async () => {
    const tenant = newTenantId();
    await configureTestpay(tenant);
    const original = await bought(tenant, 'manual', 30000n);
    env.ledger.amountDue.set(`${tenant}/${original.entitlementId}`, 57500n);
    const request = { idempotencyKey: 'up-1', provider: 'testpay', upgrade: { entitlementId: original.entitlementId, targetDefinitionId: 'gold' } };
    const { payment: pending } = await env.call('createCheckout', request, staff(tenant));
    expect(pending).toMatchObject({
      status: PaymentStatus.PENDING,
      amount: SGD(57500n),
      memberId: 'ava',
      definitionId: 'gold',
      branchId: 'orchard',
      upgrade: { entitlementId: original.entitlementId, targetDefinitionId: 'gold' },
    });
    expect(env.testpay.checkouts.get(`checkout-${pending!.paymentId}`)).toMatchObject({ amount: '57500', currency: 'SGD' });
    expect((await env.call('createCheckout', request, staff(tenant))).payment!.paymentId).toBe(pending!.paymentId);

    await captureByCard(tenant, pending!);
    env.ledger.state.applyThenFail = 1;
    await env.app.workers.fulfilment.runOnce();
    expect(await payment(tenant, pending!.paymentId)).toMatchObject({ status: PaymentStatus.CAPTURED, fulfilmentError: expect.stringContaining('connection reset') });
    await env.restart();
    env.clock.advance(60_000);
    await env.app.workers.fulfilment.runOnce();
    const done = await payment(tenant, pending!.paymentId);
    expect(done.status).toBe(PaymentStatus.FULFILLED);
    const target = env.ledger.upgrades.get(`${tenant}/${pending!.paymentId}`)!.target!;
    expect(done.entitlementId).toBe(target.entitlementId);

    const calls = env.ledger.upgradeCalls.filter((c) => c.request.idempotencyKey === pending!.paymentId);
    expect(calls).toHaveLength(2);
    for (const c of calls) {
      expect(c).toMatchObject({
        tenantId: tenant,
        roles: ['system'],
        request: { entitlementId: original.entitlementId, targetDefinitionId: 'gold', paymentReference: pending!.paymentId, branchId: 'orchard', expectedAmountDue: SGD(57500n) },
      });
    }
    env.clock.advance(3_600_000);
    await env.app.workers.fulfilment.runOnce();
    expect(env.ledger.upgradeCalls.filter((c) => c.request.idempotencyKey === pending!.paymentId)).toHaveLength(2);
    expect([...env.ledger.upgrades.keys()].filter((k) => k === `${tenant}/${pending!.paymentId}`)).toHaveLength(1);

    // The ledger's own upgraded_in event changes nothing more; a repeated checkout replays; a new one is refused.
    await env.outcomes.settled(await arrived(tenant, 'upgraded_in', { entitlementId: target.entitlementId, origin: original.entitlementId, paymentReference: pending!.paymentId }), 'billing_refunds');
    expect(await payment(tenant, pending!.paymentId)).toMatchObject({ status: PaymentStatus.FULFILLED, entitlementId: target.entitlementId });
    expect((await env.call('createCheckout', request, staff(tenant))).payment).toMatchObject({ paymentId: pending!.paymentId, status: PaymentStatus.FULFILLED });
    await expectError(env.call('createCheckout', { ...request, idempotencyKey: 'up-2' }, staff(tenant)), Code.FailedPrecondition, `paid already (payment ${pending!.paymentId})`);
  });

  it('records the upgrade from ledger.upgraded_in when the saga never heard back', async () => {
    const tenant = newTenantId();
    const original = env.ledger.add(tenant, { memberId: 'dan', due: 12000n });
    const { payment: p } = await env.call('createCheckout', { idempotencyKey: 'u', provider: 'manual', upgrade: { entitlementId: original, targetDefinitionId: 'gold' } }, staff(tenant));
    await env.call('confirmManualPayment', { idempotencyKey: 'c', paymentId: p!.paymentId, reference: 'cash' }, staff(tenant));
    env.ledger.state.applyThenFail = 1;
    await env.app.workers.fulfilment.runOnce();
    const target = env.ledger.upgrades.get(`${tenant}/${p!.paymentId}`)!.target!;
    const id = await arrived(tenant, 'upgraded_in', { entitlementId: target.entitlementId, origin: original, paymentReference: p!.paymentId });
    expect(await env.outcomes.settled(id, 'billing_refunds')).toMatchObject({ outcome: 'applied' });
    expect(await payment(tenant, p!.paymentId)).toMatchObject({ status: PaymentStatus.FULFILLED, entitlementId: target.entitlementId, memberId: 'dan', branchId: 'b1' });
    env.clock.advance(3_600_000);
    await env.app.workers.fulfilment.runOnce();
    expect(env.ledger.upgradeCalls.filter((c) => c.request.idempotencyKey === p!.paymentId)).toHaveLength(1);
  });

  it('never upgrades at another price: a session used between checkout and capture leaves the payment captured with the reason', async () => {
    const tenant = newTenantId();
    const original = env.ledger.add(tenant, { memberId: 'eve', due: 57500n });
    const { payment: p } = await env.call('createCheckout', { idempotencyKey: 'u', provider: 'manual', upgrade: { entitlementId: original, targetDefinitionId: 'gold' }, branchId: 'tampines' }, staff(tenant));
    await env.call('confirmManualPayment', { idempotencyKey: 'c', paymentId: p!.paymentId, reference: 'cash' }, staff(tenant));
    env.ledger.amountDue.set(`${tenant}/${original}`, 65000n);
    await env.app.workers.fulfilment.runOnce();
    expect(await payment(tenant, p!.paymentId)).toMatchObject({
      status: PaymentStatus.CAPTURED,
      entitlementId: '',
      branchId: 'tampines',
      fulfilmentError: expect.stringContaining('expected_amount_due: upgrading entitlement'),
    });
    expect(env.ledger.upgrades.has(`${tenant}/${p!.paymentId}`)).toBe(false);
  });

  it('refuses what it cannot charge, naming why', async () => {
    const tenant = newTenantId();
    const original = env.ledger.add(tenant, { memberId: 'fay', due: 57500n });
    const upgrade = { entitlementId: original, targetDefinitionId: 'gold' };
    const checkout = (more: object) => env.call('createCheckout', { idempotencyKey: randomUUID(), provider: 'manual', upgrade, ...more }, staff(tenant));
    await expectError(checkout({ upgrade: { ...upgrade, entitlementId: 'nope' } }), Code.InvalidArgument, 'upgrade.entitlement_id: must be a UUID');
    await expectError(checkout({ upgrade: { ...upgrade, targetDefinitionId: '' } }), Code.InvalidArgument, 'upgrade.target_definition_id: required');
    await expectError(checkout({ upgrade: { ...upgrade, entitlementId: randomUUID() } }), Code.NotFound, 'ledger: entitlement');
    await expectError(checkout({ upgrade: { ...upgrade, targetDefinitionId: 'platinum' }, definitionId: 'gold' }), Code.InvalidArgument, 'definition_id');
    await expectError(checkout({ memberId: 'someone-else' }), Code.InvalidArgument, "member_id: must be empty or the entitlement's holder fay");
    await expectError(checkout({ amount: SGD(50000n) }), Code.FailedPrecondition, 'amount: the upgrade costs 57500 SGD now');
    await expectError(checkout({ upgrade: { ...upgrade, entitlementId: env.ledger.add(tenant, { memberId: 'fay' }) } }), Code.FailedPrecondition, 'ledger: definition');
    await expectError(checkout({ upgrade: { ...upgrade, entitlementId: env.ledger.add(tenant, { memberId: 'fay', due: 0n }) } }), Code.FailedPrecondition, 'nothing to pay');
    expect((await checkout({ memberId: 'fay', definitionId: 'gold', amount: SGD(57500n) })).payment).toMatchObject({ amount: SGD(57500n), status: PaymentStatus.PENDING });
  });
});

describe('refund of an upgraded package', () => {
  it("splits the refund, the upgrade's payment first up to its amount, then the purchase's; each part paid once, one refund_paid for the whole", async () => {
    const tenant = newTenantId();
    await configureTestpay(tenant);
    const original = await bought(tenant, 'manual', 30000n);
    const gold = await upgraded(tenant, original.entitlementId, 'testpay', 57500n);
    // The ledger's event of the same upgrade, as it arrives in production.
    await arrived(tenant, 'upgraded_in', { entitlementId: gold.entitlementId, origin: original.entitlementId, paymentReference: gold.payment.paymentId });
    const refundId = `rf-${randomUUID()}`;
    await approve(tenant, refundId, gold.entitlementId, 60000n);
    await approve(tenant, refundId, gold.entitlementId, 60000n);

    const planned = await payout(tenant, refundId);
    expect(planned).toMatchObject({ status: RefundPayoutStatus.PENDING, paymentId: gold.payment.paymentId, amount: SGD(60000n) });
    expect(planned.parts.map((p) => [p.paymentId, p.provider, p.amount?.amountMinor, p.status])).toEqual([
      [gold.payment.paymentId, 'testpay', 57500n, RefundPayoutStatus.PENDING],
      [original.payment.paymentId, 'manual', 2500n, RefundPayoutStatus.QUEUED],
    ]);

    await env.app.workers.payouts.runOnce();
    const waiting = await payout(tenant, refundId);
    expect(waiting.status).toBe(RefundPayoutStatus.AWAITING_MANUAL);
    expect(waiting.parts.map((p) => p.status)).toEqual([RefundPayoutStatus.PAID, RefundPayoutStatus.AWAITING_MANUAL]);
    expect(cardPayouts(refundId)).toEqual([{ key: `refund-${refundId}`, checkout: gold.payment.providerReference, amount: '57500' }]);
    expect(await refundEvents(tenant, refundId)).toEqual([]);

    const confirm = { idempotencyKey: 'cash-back', refundId, reference: 'cash back' };
    const { payout: done } = await env.call('confirmManualRefund', confirm, manager(tenant));
    expect(done).toMatchObject({ status: RefundPayoutStatus.PAID, providerReference: `${waiting.parts[0]!.providerReference}, cash back` });
    expect(done!.parts.map((p) => [p.status, p.providerReference])).toEqual([
      [RefundPayoutStatus.PAID, waiting.parts[0]!.providerReference],
      [RefundPayoutStatus.PAID, 'cash back'],
    ]);
    await env.call('confirmManualRefund', confirm, manager(tenant));
    await env.call('confirmManualRefund', { ...confirm, idempotencyKey: 'again' }, manager(tenant));
    await approve(tenant, refundId, gold.entitlementId, 60000n);
    env.clock.advance(24 * 3_600_000);
    await env.app.workers.payouts.runOnce();
    expect(cardPayouts(refundId)).toHaveLength(1);
    expect(await refundEvents(tenant, refundId)).toEqual([['punchcard.billing.refund_paid', 60000n]]);
  });

  it('a processor refusal before any money went out fails the refund; once a part is paid, the rest waits for staff', async () => {
    const tenant = newTenantId();
    await configureTestpay(tenant);
    const original = await bought(tenant, 'testpay', 30000n);
    const gold = await upgraded(tenant, original.entitlementId, 'testpay', 57500n);

    env.testpay.state.refuseRefundsOf.add(gold.payment.providerReference);
    await approve(tenant, 'rf-1', gold.entitlementId, 60000n);
    await env.app.workers.payouts.runOnce();
    const failed = await payout(tenant, 'rf-1');
    expect(failed).toMatchObject({ status: RefundPayoutStatus.FAILED, failureReason: expect.stringContaining('card account closed') });
    expect(failed.parts.map((p) => p.status)).toEqual([RefundPayoutStatus.FAILED, RefundPayoutStatus.FAILED]);
    expect(await refundEvents(tenant, 'rf-1')).toEqual([['punchcard.billing.refund_failed', 60000n]]);

    // The ledger released the hold and a new request was approved: a failed refund took nothing from the payments.
    env.testpay.state.refuseRefundsOf.clear();
    env.testpay.state.refuseRefundsOf.add(original.payment.providerReference);
    await approve(tenant, 'rf-2', gold.entitlementId, 60000n);
    await env.app.workers.payouts.runOnce();
    const stuck = await payout(tenant, 'rf-2');
    expect(stuck.status).toBe(RefundPayoutStatus.AWAITING_MANUAL);
    expect(stuck.parts.map((p) => [p.status, p.amount?.amountMinor])).toEqual([
      [RefundPayoutStatus.PAID, 57500n],
      [RefundPayoutStatus.AWAITING_MANUAL, 2500n],
    ]);
    expect(stuck.failureReason).toMatch(/card account closed; an earlier part is paid/);
    await env.call('confirmManualRefund', { idempotencyKey: 'bank', refundId: 'rf-2', reference: 'bank transfer 88' }, manager(tenant));
    expect(await payout(tenant, 'rf-2')).toMatchObject({ status: RefundPayoutStatus.PAID, failureReason: '' });
    expect(await refundEvents(tenant, 'rf-2')).toEqual([['punchcard.billing.refund_paid', 60000n]]);
    expect(cardPayouts('rf-2')).toEqual([{ key: 'refund-rf-2', checkout: gold.payment.providerReference, amount: '57500' }]);
  });
});
