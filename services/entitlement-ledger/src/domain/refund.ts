import { precondition } from './errors.js';
import { expire, type MaybeTransition } from './lifecycle.js';
import { finalEnd } from './expiry.js';
import type { Policies } from './policies.js';
import { addDaysToDate, endOfLocalDay, localDate } from './time.js';
import { CLOSED_STATUSES, remaining, type Entitlement, type RefundQuote, type Transition } from './types.js';
import { contractValue, openSlots, sessionValues, usedCount, valueOf, type Slot } from './valuation.js';

/** End of the refund window: the end of the local day `window_days` after the purchase date. */
export function refundWindowEnd(e: Entitlement, windowDays: number): Date | null {
  if (windowDays <= 0) return null;
  return endOfLocalDay(addDaysToDate(localDate(e.purchaseTime, e.timeZone), windowDays), e.timeZone);
}

/**
 * What a refund would pay back, by the definition's policy:
 * - PRO_RATA: the allocated value of the unused sessions;
 * - USED_AT_STANDALONE_PRICE: the value paid minus the used sessions (bonus ones too: the promotion
 *   is forfeited) at the standalone price;
 * - NON_REFUNDABLE (or no policy): nothing.
 * Minus the admin fee, never below zero. `refundable` is false (with the reason) when nothing can
 * be paid back now; the numbers are still shown.
 */
export function quoteRefund(e: Entitlement, p: Policies, slots: readonly Slot[], now: Date): RefundQuote {
  const unused = sessionValues(openSlots(slots));
  const unusedValue = valueOf(unused);
  const value = contractValue(slots);
  const used = usedCount(slots);
  const method = p.refund.method;
  const usedAtStandalone = method === 'USED_AT_STANDALONE_PRICE' ? p.standalonePrice * BigInt(used) : 0n;
  let gross = 0n;
  if (method === 'PRO_RATA') gross = unusedValue;
  if (method === 'USED_AT_STANDALONE_PRICE') gross = value > usedAtStandalone ? value - usedAtStandalone : 0n;
  const adminFee = p.refund.adminFee;
  const amount = gross > adminFee ? gross - adminFee : 0n;
  const windowEndTime = refundWindowEnd(e, p.refund.windowDays);

  let reason = '';
  if (CLOSED_STATUSES.has(e.status)) reason = `entitlement ${e.entitlementId} is ${e.status.toLowerCase()}`;
  else if (e.pendingRefundId !== null) reason = `refund ${e.pendingRefundId} is already pending`;
  else if (method === 'NON_REFUNDABLE') reason = `definition ${e.definitionId} is non-refundable`;
  else if (method === 'UNSPECIFIED') reason = `definition ${e.definitionId} has no refund policy`;
  else if (method === 'USED_AT_STANDALONE_PRICE' && p.standalonePrice <= 0n) {
    reason = `definition ${e.definitionId} has no standalone price per session to reprice used sessions at`;
  } else if (windowEndTime !== null && now >= windowEndTime) reason = `the refund window of entitlement ${e.entitlementId} ended at ${windowEndTime.toISOString()}`;
  else if (amount === 0n) reason = `nothing to refund: ${gross} refundable ${adminFee > 0n ? `does not exceed the admin fee ${adminFee}` : 'by the policy'}`;

  const refundable = reason === '';
  return {
    entitlementId: e.entitlementId,
    method,
    refundable,
    reason,
    currency: p.currency,
    unusedSessions: unused.length,
    usedSessions: used,
    contractValue: value,
    unusedValue,
    usedAtStandalonePrice: usedAtStandalone,
    gross,
    adminFee,
    amount: refundable ? amount : 0n,
    windowEndTime,
    unused,
  };
}

export function assertRefundable(q: RefundQuote): void {
  if (!q.refundable) throw precondition(`entitlement ${q.entitlementId} cannot be refunded: ${q.reason}`);
}

/** A request puts the entitlement on hold, so the sessions the quote counted stay as they are. */
export function hold(e: Entitlement, refundId: string): Entitlement {
  if (e.pendingRefundId !== null) throw precondition(`entitlement ${e.entitlementId} already has refund ${e.pendingRefundId} pending`);
  return { ...e, pendingRefundId: refundId };
}

/**
 * A rejected or failed refund releases the hold; an entitlement whose time ran out meanwhile (expiry
 * waited for the refund) expires now.
 */
export function release(e: Entitlement, now: Date): { released: Entitlement; expiry: MaybeTransition } {
  const released: Entitlement = { ...e, pendingRefundId: null };
  const end = finalEnd(released);
  const due = !released.terms.expiry.customRule && end !== null && now >= end;
  return {
    released,
    expiry: due ? expire(released, end, 'expired while a refund was pending', now) : { noop: 'not due' },
  };
}

/** The payout arrived: the unused sessions leave with the refund, and the entitlement closes REFUNDED. */
export function settleRefund(e: Entitlement, refundId: string, quote: RefundQuote, now: Date): Transition {
  if (e.pendingRefundId !== refundId) {
    throw precondition(`entitlement ${e.entitlementId} is not on hold for refund ${refundId}`);
  }
  if (CLOSED_STATUSES.has(e.status)) throw precondition(`entitlement ${e.entitlementId} is ${e.status.toLowerCase()}`);
  const next: Entitlement = {
    ...e,
    status: 'REFUNDED',
    paidRemaining: 0,
    bonusRemaining: 0,
    frozenAt: null,
    frozenUntilTime: null,
    householdId: null,
    pendingRefundId: null,
    version: e.version + 1,
  };
  return {
    next,
    entry: {
      kind: 'REFUND',
      sessionsDelta: 0 - remaining(e),
      paidDelta: 0 - e.paidRemaining,
      bonusDelta: 0 - e.bonusRemaining,
      branchId: e.purchaseBranchId,
      reason: `refund ${refundId}`,
      occurredTime: now,
      balanceAfter: 0,
      entitlementVersion: next.version,
      inGrace: false,
      expiryTime: e.expiryTime,
      memberId: e.memberId,
      amountMinor: quote.amount,
      refundId,
      detail: { kind: 'refund', quote },
    },
  };
}
