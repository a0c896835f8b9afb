import { precondition } from './errors.js';
import { finalEnd } from './expiry.js';
import { assertNotHeld, assertOpen, purchase } from './lifecycle.js';
import type { Policies } from './policies.js';
import { remaining, type Entitlement, type EntryDraft, type Terms, type Transition, type UpgradeQuote } from './types.js';
import { openSlots, sessionValues, valueOf, type Slot } from './valuation.js';

/** The definition an entitlement is upgraded to, at its current version. */
export interface UpgradeTarget {
  definitionId: string;
  version: number;
  terms: Terms;
  paidSessions: number;
  bonusSessions: number;
  currency: string;
  price: bigint;
}

/**
 * The numbers of an upgrade: the unused sessions' allocated values (what revenue still holds as
 * deferred for them) are the credit; the member pays the new price minus the credit. Refused when
 * the policy does not list the target, or the target costs less than the credit (not an upgrade).
 */
export function quoteUpgrade(e: Entitlement, p: Policies, slots: readonly Slot[], target: UpgradeTarget, now: Date): UpgradeQuote {
  assertOpen(e, 'upgrade');
  assertNotHeld(e, 'upgrade');
  if (e.status === 'FROZEN') throw precondition(`entitlement ${e.entitlementId} is frozen; unfreeze it to upgrade`);
  const end = finalEnd(e);
  if (!e.terms.expiry.customRule && end !== null && now >= end) throw precondition(`entitlement ${e.entitlementId} expired at ${end.toISOString()}`);
  if (target.definitionId === e.definitionId) throw precondition(`entitlement ${e.entitlementId} is already on definition ${e.definitionId}`);
  if (!p.upgrade.targetDefinitionIds.includes(target.definitionId)) {
    throw precondition(`definition ${e.definitionId} cannot be upgraded to ${target.definitionId} (allowed: ${p.upgrade.targetDefinitionIds.join(', ') || 'none'})`);
  }
  if (target.currency !== p.currency) {
    throw precondition(`definition ${target.definitionId} is priced in ${target.currency}, entitlement ${e.entitlementId} in ${p.currency}`);
  }
  if (target.paidSessions + target.bonusSessions === 0) throw precondition(`definition ${target.definitionId} has no sessions to sell`);
  const unused = sessionValues(openSlots(slots));
  const credit = valueOf(unused);
  if (target.price < credit) {
    throw precondition(`definition ${target.definitionId} costs ${target.price}, less than the credit ${credit} of entitlement ${e.entitlementId}: that is not an upgrade`);
  }
  return {
    entitlementId: e.entitlementId,
    fromDefinitionId: e.definitionId,
    fromDefinitionVersion: e.definitionVersion,
    toDefinitionId: target.definitionId,
    toDefinitionVersion: target.version,
    currency: p.currency,
    remainingSessions: unused,
    credit,
    newPrice: target.price,
    amountDue: target.price - credit,
    newPaidSessions: target.paidSessions,
    newBonusSessions: target.bonusSessions,
  };
}

/**
 * A payment taken for an earlier quote buys the upgrade only at that price: sessions used since the
 * quote lower the credit and raise what is due, and the difference was not paid.
 */
export function assertAmountDue(quote: UpgradeQuote, expected: { currency: string; amountMinor: bigint }): void {
  if (expected.currency !== quote.currency || expected.amountMinor !== quote.amountDue) {
    throw precondition(
      `expected_amount_due: upgrading entitlement ${quote.entitlementId} to ${quote.toDefinitionId} costs ${quote.amountDue} ${quote.currency} now, not ${expected.amountMinor} ${expected.currency}`,
    );
  }
}

export interface UpgradeInput {
  newEntitlementId: string;
  outEntryId: string;
  inEntryId: string;
  branchId: string;
  /** The sale branch's zone: the new package's calendar. */
  timeZone: string;
  reason: string;
  now: Date;
}

/**
 * The old entitlement ends UPGRADED (its unused sessions leave with their value as the credit) and a
 * new one starts on the target definition, as if bought now, for credit + amount due.
 */
export function upgrade(e: Entitlement, quote: UpgradeQuote, target: UpgradeTarget, input: UpgradeInput): { source: Transition; target: Transition } {
  const bought = purchase({
    tenantId: e.tenantId,
    entitlementId: input.newEntitlementId,
    memberId: e.memberId,
    definitionId: target.definitionId,
    definitionVersion: target.version,
    terms: target.terms,
    timeZone: input.timeZone,
    branchId: input.branchId,
    paidSessions: target.paidSessions,
    bonusSessions: target.bonusSessions,
    purchaseTime: input.now,
  });
  const newNext: Entitlement = { ...bought.next, originEntitlementId: e.entitlementId };
  const detail = { kind: 'upgrade' as const, quote };
  const sourceNext: Entitlement = { ...e, status: 'UPGRADED', paidRemaining: 0, bonusRemaining: 0, householdId: null, version: e.version + 1 };
  const out: EntryDraft = {
    kind: 'UPGRADE_OUT',
    sessionsDelta: 0 - remaining(e),
    paidDelta: 0 - e.paidRemaining,
    bonusDelta: 0 - e.bonusRemaining,
    branchId: input.branchId,
    reason: input.reason,
    occurredTime: input.now,
    balanceAfter: 0,
    entitlementVersion: sourceNext.version,
    inGrace: false,
    expiryTime: e.expiryTime,
    memberId: e.memberId,
    counterpartEntitlementId: input.newEntitlementId,
    counterpartEntryId: input.inEntryId,
    amountMinor: quote.credit,
    detail,
  };
  const into: EntryDraft = {
    ...bought.entry,
    kind: 'UPGRADE_IN',
    reason: input.reason,
    counterpartEntitlementId: e.entitlementId,
    counterpartEntryId: input.outEntryId,
    amountMinor: quote.amountDue,
    detail,
  };
  return { source: { next: sourceNext, entry: out }, target: { next: newNext, entry: into } };
}
