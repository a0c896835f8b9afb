import { describe, expect, it } from 'vitest';
import { Book, entitlement, policies, tenant, terms } from '../../test/support/domain-fixtures.js';
import { consume, usability, type ConsumeInput } from './consume.js';
import { RuleViolation } from './errors.js';
import { expire } from './lifecycle.js';
import { requireFeature } from './policies.js';
import { hold, quoteRefund, release, settleRefund } from './refund.js';
import { checkShare, poolRefusal } from './sharing.js';
import { topUp } from './topup.js';
import { checkTransfer, checkUndo, moveSessions } from './transfer.js';
import { assertAmountDue, quoteUpgrade, upgrade, type UpgradeTarget } from './upgrade.js';

const HOUR = 3_600_000;
// Bought 2025-01-10 14:00 Singapore time; 90-day HARD expiry.
const bought = new Date('2025-01-10T06:00:00Z');
const at = new Date('2025-01-20T02:00:00Z');
const visit: ConsumeInput = { memberId: 'm1', branchId: 'b1', serviceCode: 'PHYSIO', occurredTime: at, reason: 'visit' };
const all = tenant('TRANSFER', 'SHARING', 'TOP_UP', 'UPGRADE', 'REFUNDS');

function ruleOf(fn: () => unknown): RuleViolation {
  try {
    fn();
  } catch (err) {
    if (err instanceof RuleViolation) return err;
    throw err;
  }
  throw new Error('expected a rule violation');
}

/** 10 sessions for 1000.00 (100.00 each), `used` of them consumed. */
function tenFor1000(used: number, t = terms({ expiry: { durationDays: 90 } })): Book {
  const b = new Book(entitlement({ paid: 10, bonus: 0, terms: t, purchaseTime: bought }), { priceMinor: 100000n, standalone: 0n, sessionOrder: 'PAID_FIRST' });
  for (let i = 0; i < used; i++) b.apply(consume(b.e, visit, all));
  return b;
}

/** Buy 3 Free 1 for 300.00 with a standalone price of 120.00, `used` consumed. */
function buy3free1(used: number): Book {
  const b = new Book(entitlement({ paid: 3, bonus: 1, purchaseTime: bought }), { priceMinor: 30000n, standalone: 12000n, sessionOrder: 'PAID_FIRST' });
  for (let i = 0; i < used; i++) b.apply(consume(b.e, visit, all));
  return b;
}

describe('plan gates', () => {
  it('names the feature and the tier', () => {
    expect(ruleOf(() => requireFeature(tenant(), 'TRANSFER', 'transferring an entitlement')).message).toMatch(/transferring an entitlement needs FEATURE_TRANSFER \(EXPERT plan or higher\)/);
    expect(ruleOf(() => requireFeature(tenant('TRANSFER'), 'REFUNDS', 'refunds')).message).toMatch(/FEATURE_REFUNDS \(ENTERPRISE plan/);
  });
});

describe('refund quotes', () => {
  it('PRO_RATA: the allocated value of the unused sessions minus the admin fee (7 x 100.00 - 25.00 = 675.00)', () => {
    const b = tenFor1000(3);
    const q = quoteRefund(b.e, policies({ refund: { method: 'PRO_RATA', adminFee: 2500n } }), b.slots(), at);
    expect(q).toMatchObject({ refundable: true, unusedSessions: 7, usedSessions: 3, contractValue: 100000n, unusedValue: 70000n, gross: 70000n, adminFee: 2500n, amount: 67500n });
  });

  it('PRO_RATA over an uneven allocation refunds the exact unused values (100.00 over 3, first used: 66.66)', () => {
    const b = new Book(entitlement({ paid: 3, bonus: 0, purchaseTime: bought }), { priceMinor: 10000n, standalone: 0n, sessionOrder: 'PAID_FIRST' });
    b.apply(consume(b.e, visit, all));
    expect(quoteRefund(b.e, policies(), b.slots(), at)).toMatchObject({ unusedValue: 6666n, amount: 6666n });
  });

  it('USED_AT_STANDALONE_PRICE: 300.00 - 2 used x 120.00 - 10.00 fee = 50.00; PRO_RATA on the same package: 2 x 75.00 - 10.00 = 140.00', () => {
    const b = buy3free1(2);
    const standalone = quoteRefund(b.e, policies({ standalonePrice: 12000n, refund: { method: 'USED_AT_STANDALONE_PRICE', adminFee: 1000n } }), b.slots(), at);
    expect(standalone).toMatchObject({ refundable: true, usedSessions: 2, contractValue: 30000n, usedAtStandalonePrice: 24000n, gross: 6000n, amount: 5000n, unusedValue: 15000n });
    const proRata = quoteRefund(b.e, policies({ standalonePrice: 12000n, refund: { method: 'PRO_RATA', adminFee: 1000n } }), b.slots(), at);
    expect(proRata).toMatchObject({ gross: 15000n, amount: 14000n });
  });

  it('never below zero: used sessions repriced above the price, or a fee above the gross, refund nothing', () => {
    const b = buy3free1(3);
    const q = quoteRefund(b.e, policies({ standalonePrice: 12000n, refund: { method: 'USED_AT_STANDALONE_PRICE' } }), b.slots(), at);
    expect(q).toMatchObject({ gross: 0n, amount: 0n, refundable: false });
    expect(q.reason).toMatch(/nothing to refund/);
    const fee = quoteRefund(buy3free1(3).e, policies({ refund: { adminFee: 9000n } }), buy3free1(3).slots(), at);
    expect(fee).toMatchObject({ gross: 7500n, amount: 0n, refundable: false });
    expect(fee.reason).toMatch(/does not exceed the admin fee 9000/);
  });

  it('NON_REFUNDABLE, no policy, and no standalone price to reprice at are not refundable', () => {
    const b = tenFor1000(0);
    expect(quoteRefund(b.e, policies({ refund: { method: 'NON_REFUNDABLE' } }), b.slots(), at)).toMatchObject({ refundable: false, amount: 0n, reason: expect.stringMatching(/non-refundable/) });
    expect(quoteRefund(b.e, policies({ refund: { method: 'UNSPECIFIED' } }), b.slots(), at).reason).toMatch(/no refund policy/);
    expect(quoteRefund(b.e, policies({ refund: { method: 'USED_AT_STANDALONE_PRICE' } }), b.slots(), at).reason).toMatch(/no standalone price/);
  });

  it('the refund window ends at the end of the local day window_days after the purchase date', () => {
    const b = tenFor1000(0);
    const p = policies({ refund: { windowDays: 14 } });
    // Bought 10 Jan (Singapore); 14 days: through 24 Jan, i.e. until 25 Jan 00:00 SGT = 24 Jan 16:00Z.
    const inside = quoteRefund(b.e, p, b.slots(), new Date('2025-01-24T15:59:59Z'));
    expect(inside).toMatchObject({ refundable: true, amount: 100000n, windowEndTime: new Date('2025-01-24T16:00:00Z') });
    const after = quoteRefund(b.e, p, b.slots(), new Date('2025-01-24T16:00:00Z'));
    expect(after).toMatchObject({ refundable: false, amount: 0n });
    expect(after.reason).toMatch(/refund window .* ended at 2025-01-24T16:00:00.000Z/);
  });

  it('a hold blocks consumes, a second request and expiry; settlement closes REFUNDED with a REFUND entry of the amount', () => {
    const b = tenFor1000(3);
    const q = quoteRefund(b.e, policies(), b.slots(), at);
    const held = hold(b.e, 'r1');
    expect(() => hold(held, 'r2')).toThrow(/already has refund r1 pending/);
    const u = usability(held, visit, all);
    expect(u.ok).toBe(false);
    expect(!u.ok && u.violation.message).toMatch(/on hold: refund r1 is pending/);
    expect(expire(held, new Date('2025-06-01T00:00:00Z'), '', new Date('2025-06-01T00:00:00Z'))).toEqual({ noop: 'refund r1 is pending' });
    const t = settleRefund(held, 'r1', q, at);
    expect(t.next).toMatchObject({ status: 'REFUNDED', paidRemaining: 0, pendingRefundId: null, version: b.e.version + 1 });
    expect(t.entry).toMatchObject({ kind: 'REFUND', sessionsDelta: -7, paidDelta: -7, bonusDelta: 0, balanceAfter: 0, amountMinor: 100000n - 30000n, refundId: 'r1' });
    expect(() => settleRefund(b.e, 'r1', q, at)).toThrow(/not on hold for refund r1/);
  });

  it('releasing a hold after the package ran out of time expires it at once', () => {
    const b = tenFor1000(3);
    const held = hold(b.e, 'r1');
    expect(release(held, at)).toMatchObject({ released: { pendingRefundId: null }, expiry: { noop: 'not due' } });
    const late = release(held, new Date('2025-06-01T00:00:00Z'));
    expect('noop' in late.expiry).toBe(false);
    expect(!('noop' in late.expiry) && late.expiry.entry).toMatchObject({ kind: 'EXPIRE', sessionsDelta: -7, reason: 'expired while a refund was pending' });
  });
});

describe('transfer', () => {
  it('moves every remaining session with its value; the new holder keeps terms, expiry and purchase time', () => {
    const b = buy3free1(1);
    const r = moveSessions(b.e, b.slots(), { toMemberId: 'm2', targetEntitlementId: 't1', outEntryId: 'o1', inEntryId: 'i1', reason: 'gift', now: at, transferCount: 1 });
    expect(r.detail).toMatchObject({ paid: 2, bonus: 1, value: 22500n, sessions: [{ bonus: false, value: 7500n }, { bonus: false, value: 7500n }, { bonus: true, value: 7500n }] });
    expect(r.source.next).toMatchObject({ status: 'TRANSFERRED', paidRemaining: 0, bonusRemaining: 0, version: b.e.version + 1 });
    expect(r.source.entry).toMatchObject({ kind: 'TRANSFER_OUT', sessionsDelta: -3, paidDelta: -2, bonusDelta: -1, balanceAfter: 0, amountMinor: 22500n, counterpartEntitlementId: 't1', counterpartEntryId: 'i1', memberId: 'm1' });
    expect(r.target.next).toMatchObject({
      entitlementId: 't1',
      memberId: 'm2',
      status: 'ACTIVE',
      paidSessions: 2,
      bonusSessions: 1,
      paidRemaining: 2,
      bonusRemaining: 1,
      version: 1,
      transferCount: 1,
      originEntitlementId: b.e.entitlementId,
      expiryTime: b.e.expiryTime,
      purchaseTime: bought,
      terms: b.e.terms,
    });
    expect(r.target.entry).toMatchObject({ kind: 'TRANSFER_IN', sessionsDelta: 3, balanceAfter: 3, entitlementVersion: 1, counterpartEntitlementId: b.e.entitlementId, counterpartEntryId: 'o1', memberId: 'm2' });
  });

  it('follows the policy: none, household only, max transfers, not to the holder', () => {
    const e = entitlement();
    expect(ruleOf(() => checkTransfer(e, policies({ transfer: { scope: 'NONE' } }), { toMemberId: 'm2', sameHousehold: true })).message).toMatch(/does not allow transfers/);
    expect(ruleOf(() => checkTransfer(e, policies({ transfer: { scope: 'HOUSEHOLD' } }), { toMemberId: 'm2', sameHousehold: false })).message).toMatch(/within a household only/);
    expect(() => checkTransfer(e, policies({ transfer: { scope: 'HOUSEHOLD' } }), { toMemberId: 'm2', sameHousehold: true })).not.toThrow();
    expect(ruleOf(() => checkTransfer({ ...e, transferCount: 2 }, policies({ transfer: { maxTransfers: 2 } }), { toMemberId: 'm2', sameHousehold: false })).message).toMatch(/transferred 2 times; .* at most 2/);
    expect(ruleOf(() => checkTransfer(e, policies(), { toMemberId: 'm1', sameHousehold: false })).field).toBe('to_member_id');
  });

  it('refuses frozen, exhausted, expired and held packages', () => {
    const input = { toMemberId: 'm2', targetEntitlementId: 't', outEntryId: 'o', inEntryId: 'i', reason: '', now: at, transferCount: 1 };
    const b = tenFor1000(0);
    expect(ruleOf(() => moveSessions({ ...b.e, status: 'FROZEN' }, b.slots(), input)).message).toMatch(/frozen/);
    expect(ruleOf(() => moveSessions({ ...b.e, paidRemaining: 0, status: 'EXHAUSTED' }, [], input)).message).toMatch(/no sessions left/);
    expect(ruleOf(() => moveSessions(b.e, b.slots(), { ...input, now: new Date('2025-06-01T00:00:00Z') })).message).toMatch(/expired at/);
    expect(ruleOf(() => moveSessions(hold(b.e, 'r'), b.slots(), input)).message).toMatch(/on hold/);
  });

  it('an undo needs the window open and the receiver untouched', () => {
    const p = policies({ transfer: { undoWindowHours: 24 } });
    const rec = { transferId: 'o1', kind: 'TRANSFER_OUT' as const, recordTime: at };
    const received = { ...entitlement(), version: 1 };
    expect(() => checkUndo(received, p, rec, new Date(at.getTime() + 23 * HOUR))).not.toThrow();
    expect(ruleOf(() => checkUndo(received, p, rec, new Date(at.getTime() + 24 * HOUR))).message).toMatch(/24-hour undo window ended/);
    expect(ruleOf(() => checkUndo({ ...received, version: 2 }, p, rec, at)).message).toMatch(/changed since transfer o1/);
    expect(ruleOf(() => checkUndo(received, policies(), rec, at)).message).toMatch(/does not allow undoing/);
    expect(ruleOf(() => checkUndo(received, p, { ...rec, undoesTransferId: 'o0' }, at)).message).toMatch(/itself an undo/);
  });
});

describe('top-up', () => {
  it('adds paid sessions at the top-up price, pushes expiry per policy, revives an exhausted package', () => {
    const b = tenFor1000(10);
    expect(b.e.status).toBe('EXHAUSTED');
    const t = topUp(b.e, policies({ topUp: { pricePerSession: 8000n, extendExpiryDays: 30 } }), { sessions: 3, branchId: 'b2', paymentReference: 'pay-9', reason: 'top-up', now: at });
    expect(t.next).toMatchObject({ status: 'ACTIVE', paidSessions: 13, paidRemaining: 3, version: b.e.version + 1 });
    expect(t.next.expiryTime!.getTime() - b.e.expiryTime!.getTime()).toBe(30 * 24 * HOUR);
    expect(t.entry).toMatchObject({ kind: 'TOP_UP', sessionsDelta: 3, paidDelta: 3, bonusDelta: 0, branchId: 'b2', amountMinor: 24000n, detail: { kind: 'top_up', sessions: 3, pricePerSession: 8000n, amountPaid: 24000n, extendExpiryDays: 30, paymentReference: 'pay-9' } });
  });

  it('refuses when the policy disables it, without a price, zero sessions, or once closed', () => {
    const e = entitlement();
    const now = { sessions: 1, branchId: 'b1', paymentReference: '', reason: '', now: at };
    expect(ruleOf(() => topUp(e, policies({ topUp: { enabled: false, pricePerSession: 1n } }), now)).message).toMatch(/does not allow top-ups/);
    expect(ruleOf(() => topUp(e, policies({ topUp: { pricePerSession: 0n } }), now)).message).toMatch(/no top-up price/);
    expect(ruleOf(() => topUp(e, policies({ topUp: { pricePerSession: 1n } }), { ...now, sessions: 0 })).field).toBe('sessions');
    expect(ruleOf(() => topUp({ ...e, status: 'REFUNDED' }, policies({ topUp: { pricePerSession: 1n } }), now)).message).toMatch(/refunded; cannot top up/);
  });
});

describe('upgrade', () => {
  const gold: UpgradeTarget = { definitionId: 'gold', version: 3, terms: terms(), paidSessions: 20, bonusSessions: 2, currency: 'SGD', price: 180000n };

  it('credits the unrecognised value of the remaining sessions: 6 x 100.00 = 600.00 against 1800.00, 1200.00 due', () => {
    const b = tenFor1000(4);
    const q = quoteUpgrade(b.e, policies({ upgrade: { targetDefinitionIds: ['gold'] } }), b.slots(), gold, at);
    expect(q).toMatchObject({ credit: 60000n, newPrice: 180000n, amountDue: 120000n, toDefinitionId: 'gold', toDefinitionVersion: 3, newPaidSessions: 20, newBonusSessions: 2 });
    expect(q.remainingSessions).toHaveLength(6);
    const r = upgrade(b.e, q, gold, { newEntitlementId: 'n1', outEntryId: 'o1', inEntryId: 'i1', branchId: 'b1', timeZone: 'Asia/Singapore', reason: 'upgrade', now: at });
    expect(r.source.next).toMatchObject({ status: 'UPGRADED', paidRemaining: 0 });
    expect(r.source.entry).toMatchObject({ kind: 'UPGRADE_OUT', sessionsDelta: -6, amountMinor: 60000n, counterpartEntitlementId: 'n1', counterpartEntryId: 'i1' });
    expect(r.target.next).toMatchObject({ entitlementId: 'n1', definitionId: 'gold', definitionVersion: 3, status: 'ACTIVE', paidRemaining: 20, bonusRemaining: 2, version: 1, originEntitlementId: b.e.entitlementId, purchaseTime: at });
    expect(r.target.entry).toMatchObject({ kind: 'UPGRADE_IN', sessionsDelta: 22, amountMinor: 120000n, counterpartEntitlementId: b.e.entitlementId, counterpartEntryId: 'o1' });
  });

  it('refuses a target the policy does not list, a cheaper one, another currency, frozen or held packages', () => {
    const b = tenFor1000(0);
    const p = policies({ upgrade: { targetDefinitionIds: ['gold'] } });
    expect(ruleOf(() => quoteUpgrade(b.e, policies(), b.slots(), gold, at)).message).toMatch(/cannot be upgraded to gold/);
    expect(ruleOf(() => quoteUpgrade(b.e, p, b.slots(), { ...gold, price: 99999n }, at)).message).toMatch(/less than the credit 100000.*not an upgrade/);
    expect(ruleOf(() => quoteUpgrade(b.e, p, b.slots(), { ...gold, currency: 'USD' }, at)).message).toMatch(/priced in USD/);
    expect(ruleOf(() => quoteUpgrade({ ...b.e, status: 'FROZEN' }, p, b.slots(), gold, at)).message).toMatch(/frozen/);
    expect(ruleOf(() => quoteUpgrade(hold(b.e, 'r'), p, b.slots(), gold, at)).message).toMatch(/on hold/);
  });

  it('holds a payment to the amount it was quoted: a session used since raises what is due', () => {
    const p = policies({ upgrade: { targetDefinitionIds: ['gold'] } });
    const quoted = quoteUpgrade(tenFor1000(4).e, p, tenFor1000(4).slots(), gold, at);
    const later = tenFor1000(5);
    const now = quoteUpgrade(later.e, p, later.slots(), gold, at);
    expect(() => assertAmountDue(quoted, { currency: 'SGD', amountMinor: 120000n })).not.toThrow();
    expect(ruleOf(() => assertAmountDue(now, { currency: 'SGD', amountMinor: 120000n })).message).toMatch(/expected_amount_due: .* costs 130000 SGD now, not 120000 SGD/);
    expect(ruleOf(() => assertAmountDue(quoted, { currency: 'USD', amountMinor: 120000n })).message).toMatch(/expected_amount_due/);
  });
});

describe('household pool', () => {
  const shared = { ...entitlement({ paid: 10, bonus: 0 }), householdId: 'h1' };
  const both = { member: true, holder: true };

  it('lets household members consume within the per-member cap and max members; the holder is never capped', () => {
    const p = policies({ sharing: { perMemberSessionCap: 2, maxMembers: 2 } });
    expect(poolRefusal(shared, p, 'm2', both, new Map([['m2', 1]]), all)).toBeUndefined();
    expect(poolRefusal(shared, p, 'm2', both, new Map([['m2', 2]]), all)).toMatchObject({ kind: 'resource_exhausted', message: expect.stringMatching(/m2 used 2 of the 2 sessions/) });
    expect(poolRefusal(shared, p, 'm1', both, new Map([['m1', 9]]), all)).toBeUndefined();
    expect(poolRefusal(shared, p, 'm4', both, new Map([['m1', 5], ['m2', 1], ['m3', 1]]), all)).toMatchObject({ kind: 'failed_precondition', message: expect.stringMatching(/already used by 2 household members/) });
    expect(poolRefusal(shared, p, 'm3', both, new Map([['m2', 1], ['m3', 1]]), all)).toBeUndefined();
  });

  it('needs the sharing feature, a shared entitlement, and both the member and the holder in the household', () => {
    const p = policies();
    expect(poolRefusal({ ...shared, householdId: null }, p, 'm2', both, new Map(), all)?.message).toMatch(/belongs to another member than m2/);
    expect(poolRefusal(shared, p, 'm2', both, new Map(), tenant())?.message).toMatch(/needs FEATURE_SHARING \(EXPERT/);
    expect(poolRefusal(shared, p, 'm2', { member: false, holder: true }, new Map(), all)?.message).toMatch(/m2 is not in household h1/);
    expect(poolRefusal(shared, p, 'm2', { member: true, holder: false }, new Map(), all)?.message).toMatch(/holder m1 left household h1/);
  });

  it('shares only what the definition allows, with a household of the holder', () => {
    const e = entitlement();
    expect(ruleOf(() => checkShare(e, policies({ sharing: { householdPool: false } }), 'h1', true)).message).toMatch(/does not allow sharing/);
    expect(ruleOf(() => checkShare(e, policies(), 'h1', false)).message).toMatch(/is not a member of household h1/);
    expect(ruleOf(() => checkShare({ ...e, householdId: 'h1' }, policies(), 'h1', true)).message).toMatch(/already shared/);
  });
});
