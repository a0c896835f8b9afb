import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { advance, confirmManualPayout, partFailed, partPaid, planRefund, refundStatus, summarise, type RefundPart, type SourcePayment } from './refund.js';

const card = (over: Partial<SourcePayment> = {}): SourcePayment => ({ paymentId: 'p1', provider: 'testpay', status: 'fulfilled', currency: 'SGD', amountMinor: 30000n, refundedMinor: 0n, ...over });
const refund = (amountMinor: bigint, currency = 'SGD') => ({ refundId: 'r1', currency, amountMinor });
const partsOf = (plan: ReturnType<typeof planRefund>): RefundPart[] => {
  if (!('parts' in plan)) throw new Error(`planned to fail: ${plan.failed}`);
  return plan.parts;
};
const shape = (parts: readonly RefundPart[]) => parts.map((p) => [p.paymentId, p.amountMinor, p.status]);

describe('planning a refund payout', () => {
  it('pays back through the provider that took the money; manual waits for staff', () => {
    expect(shape(partsOf(planRefund(refund(15000n), [card()])))).toEqual([['p1', 15000n, 'pending']]);
    expect(shape(partsOf(planRefund(refund(15000n), [card({ provider: 'manual' })])))).toEqual([['p1', 15000n, 'awaiting_manual']]);
  });

  it('fails what it cannot pay back, with the reason', () => {
    expect(planRefund(refund(100n), [])).toEqual({ failed: expect.stringContaining('no billing payment') });
    expect(planRefund(refund(30001n), [card()])).toEqual({ failed: expect.stringContaining('exceeds the captured 30000') });
    expect(planRefund(refund(100n, 'USD'), [card()])).toEqual({ failed: expect.stringContaining('currency') });
    expect(planRefund(refund(100n), [card({ status: 'failed' })])).toEqual({ failed: 'payment p1 is failed; nothing was captured to refund' });
    expect(planRefund(refund(0n), [card()])).toEqual({ failed: 'refund amount must be positive' });
  });

  it("an upgraded package: the upgrade's payment first, up to its amount, then the purchase's", () => {
    const upgrade = card({ paymentId: 'up', amountMinor: 57500n });
    const purchase = card({ paymentId: 'buy', provider: 'manual' });
    expect(shape(partsOf(planRefund(refund(50000n), [upgrade, purchase])))).toEqual([['up', 50000n, 'pending']]);
    expect(shape(partsOf(planRefund(refund(60000n), [upgrade, purchase])))).toEqual([
      ['up', 57500n, 'pending'],
      ['buy', 2500n, 'queued'],
    ]);
    expect(planRefund(refund(87501n), [upgrade, purchase])).toEqual({ failed: expect.stringContaining('exceeds the captured 87500') });
  });

  it('counts what earlier refunds took from a payment, and skips the ones with nothing captured', () => {
    const plan = planRefund(refund(20000n), [card({ paymentId: 'up', amountMinor: 10000n, refundedMinor: 10000n }), card({ paymentId: 'x', status: 'pending' }), card({ paymentId: 'buy', refundedMinor: 5000n })]);
    expect(shape(partsOf(plan))).toEqual([['buy', 20000n, 'pending']]);
    expect(planRefund(refund(25001n), [card({ refundedMinor: 5000n })])).toEqual({ failed: expect.stringContaining('p1: 25000 of 30000') });
  });

  it('property: the parts add up to the refund, each within what its payment can still return, in the payments’ order', () => {
    const payment = fc.record({
      provider: fc.constantFrom('testpay', 'manual'),
      status: fc.constantFrom('fulfilled', 'captured', 'pending', 'failed'),
      currency: fc.constantFrom('SGD', 'SGD', 'SGD', 'USD'),
      amountMinor: fc.bigInt({ min: 1n, max: 50_000n }),
      refundedShare: fc.integer({ min: 0, max: 100 }),
    });
    fc.assert(
      fc.property(fc.array(payment, { maxLength: 4 }), fc.bigInt({ min: -10n, max: 150_000n }), (raw, amount) => {
        const payments = raw.map((p, i) => ({ ...p, paymentId: `p${i}`, refundedMinor: (p.amountMinor * BigInt(p.refundedShare)) / 100n }));
        const plan = planRefund(refund(amount), payments);
        const usable = payments.filter((p) => p.status === 'fulfilled' || p.status === 'captured');
        const available = usable.reduce((sum, p) => sum + p.amountMinor - p.refundedMinor, 0n);
        if ('failed' in plan) {
          expect(amount <= 0n || usable.length === 0 || usable.some((p) => p.currency !== 'SGD') || available < amount).toBe(true);
          return;
        }
        expect(plan.parts.reduce((sum, p) => sum + p.amountMinor, 0n)).toBe(amount);
        const order = plan.parts.map((part) => payments.findIndex((p) => p.paymentId === part.paymentId));
        expect(order).toEqual([...order].sort((a, b) => a - b));
        for (const part of plan.parts) {
          const p = payments.find((q) => q.paymentId === part.paymentId)!;
          expect(part.amountMinor).toBeGreaterThan(0n);
          expect(part.amountMinor).toBeLessThanOrEqual(p.amountMinor - p.refundedMinor);
          expect(['fulfilled', 'captured']).toContain(p.status);
        }
      }),
    );
  });
});

describe('paying the parts out', () => {
  const part = (paymentId: string, provider: string, status: RefundPart['status'] = 'queued'): RefundPart => ({ paymentId, provider, amountMinor: 100n, status, providerReference: '', failureReason: '' });

  it('one after another: the next part starts once the one before is paid; manual parts in a row wait together', () => {
    let parts = advance([part('a', 'testpay'), part('b', 'manual'), part('c', 'manual'), part('d', 'testpay')]);
    expect(parts.map((p) => p.status)).toEqual(['pending', 'queued', 'queued', 'queued']);
    parts = partPaid(parts, 0, 're_1');
    expect(parts.map((p) => p.status)).toEqual(['paid', 'awaiting_manual', 'awaiting_manual', 'queued']);
    expect(refundStatus(parts)).toBe('awaiting_manual');
    const confirmed = confirmManualPayout(parts, 'cash back');
    if (!confirmed.changed) throw new Error('expected a change');
    expect(confirmed.parts.map((p) => p.status)).toEqual(['paid', 'paid', 'paid', 'pending']);
    parts = partPaid(confirmed.parts, 3, 're_2');
    expect(refundStatus(parts)).toBe('paid');
    expect(summarise(parts)).toMatchObject({ status: 'paid', paymentId: 'a', provider: 'testpay', providerReference: 're_1, cash back, re_2', failureReason: '' });
    expect(confirmManualPayout(parts, 'again')).toEqual({ changed: false });
  });

  it('a refusal before any money went out fails the refund; after a part is paid, the rest is paid out by hand', () => {
    const first = partFailed(advance([part('a', 'testpay'), part('b', 'testpay')]), 0, 'card closed');
    expect(first.map((p) => p.status)).toEqual(['failed', 'failed']);
    expect(summarise(first)).toMatchObject({ status: 'failed', failureReason: 'card closed' });

    const later = partFailed(partPaid(advance([part('a', 'testpay'), part('b', 'testpay'), part('c', 'manual')]), 0, 're_1'), 1, 'card closed');
    expect(later.map((p) => p.status)).toEqual(['paid', 'awaiting_manual', 'awaiting_manual']);
    expect(summarise(later)).toMatchObject({ status: 'awaiting_manual', failureReason: expect.stringMatching(/^card closed; an earlier part is paid/) });
    expect(() => confirmManualPayout(first, 'x')).toThrow(/only one awaiting a manual payout/);
    expect(() => confirmManualPayout(advance([part('a', 'testpay')]), 'x')).toThrow(/refund payout is pending/);
    expect(() => partPaid(later, 0, 'x')).toThrow(/only a pending part/);
  });

  it('property: whatever the processors answer, a refund ends paid in full or failed with nothing paid, never between', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('testpay', 'manual'), { minLength: 1, maxLength: 5 }), fc.array(fc.boolean(), { maxLength: 10 }), (providers, answers) => {
        let parts = advance(providers.map((p, i) => part(`p${i}`, p)));
        let turn = 0;
        for (let step = 0; step < 20 && (refundStatus(parts) === 'pending' || refundStatus(parts) === 'awaiting_manual'); step++) {
          const i = parts.findIndex((p) => p.status === 'pending');
          if (i >= 0) parts = answers[turn++] === false ? partFailed(parts, i, 'refused') : partPaid(parts, i, `re_${i}`);
          else {
            const confirmed = confirmManualPayout(parts, 'cash');
            if (confirmed.changed) parts = confirmed.parts;
          }
        }
        const status = refundStatus(parts);
        expect(['paid', 'failed']).toContain(status);
        if (status === 'failed') expect(parts.some((p) => p.status === 'paid')).toBe(false);
        if (status === 'paid') expect(parts.every((p) => p.status === 'paid')).toBe(true);
      }),
    );
  });
});
