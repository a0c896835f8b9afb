import { invalid, precondition } from './errors.js';
import { atPurchase, finalEnd, graceEnd } from './expiry.js';
import { addLocalDays, ceilDays } from './time.js';
import { CLOSED_STATUSES, remaining, type Entitlement, type EntryDraft, type Terms, type Transition } from './types.js';

/** A transition, or nothing to do (a stale or repeated scheduler call) with the reason. */
export type MaybeTransition = Transition | { noop: string };

export interface PurchaseInput {
  tenantId: string;
  entitlementId: string;
  memberId: string;
  definitionId: string;
  definitionVersion: number;
  terms: Terms;
  timeZone: string;
  branchId: string;
  paidSessions: number;
  bonusSessions: number;
  purchaseTime: Date;
}

export function purchase(p: PurchaseInput): Transition {
  if (p.paidSessions < 0 || p.bonusSessions < 0 || p.paidSessions + p.bonusSessions === 0) {
    throw precondition(`definition ${p.definitionId} version ${p.definitionVersion} has no sessions to sell`);
  }
  const { activationTime, expiryTime } = atPurchase(p.terms.expiry, p.purchaseTime, p.timeZone);
  const next: Entitlement = {
    tenantId: p.tenantId,
    entitlementId: p.entitlementId,
    memberId: p.memberId,
    definitionId: p.definitionId,
    definitionVersion: p.definitionVersion,
    terms: p.terms,
    timeZone: p.timeZone,
    purchaseBranchId: p.branchId,
    status: 'ACTIVE',
    paidSessions: p.paidSessions,
    bonusSessions: p.bonusSessions,
    paidRemaining: p.paidSessions,
    bonusRemaining: p.bonusSessions,
    purchaseTime: p.purchaseTime,
    activationTime,
    expiryTime,
    graceEndTime: null,
    frozenAt: null,
    frozenUntilTime: null,
    freezePlannedDays: 0,
    frozenDays: 0,
    lastUseTime: null,
    version: 1,
    householdId: null,
    transferCount: 0,
    originEntitlementId: null,
    pendingRefundId: null,
  };
  return {
    next,
    entry: {
      kind: 'PURCHASE',
      sessionsDelta: p.paidSessions + p.bonusSessions,
      paidDelta: p.paidSessions,
      bonusDelta: p.bonusSessions,
      branchId: p.branchId,
      reason: 'purchase',
      occurredTime: p.purchaseTime,
      balanceAfter: remaining(next),
      entitlementVersion: 1,
      inGrace: false,
      expiryTime,
      memberId: p.memberId,
    },
  };
}

/** Negation without -0, which would leak into protobuf and equality checks. */
function negate(n: number): number {
  return 0 - n;
}

/** A state entry that moves no sessions. */
function marker(e: Entitlement, next: Entitlement, kind: EntryDraft['kind'], reason: string, at: Date): EntryDraft {
  return {
    kind,
    sessionsDelta: 0,
    paidDelta: 0,
    bonusDelta: 0,
    branchId: e.purchaseBranchId,
    reason,
    occurredTime: at,
    balanceAfter: remaining(next),
    entitlementVersion: next.version,
    inGrace: false,
    expiryTime: next.expiryTime,
    memberId: e.memberId,
  };
}

export function assertOpen(e: Entitlement, action: string): void {
  if (CLOSED_STATUSES.has(e.status)) {
    throw precondition(`entitlement ${e.entitlementId} is ${e.status.toLowerCase()}; cannot ${action}`);
  }
}

/** A pending refund freezes the sessions the refund was quoted on. */
export function assertNotHeld(e: Entitlement, action: string): void {
  if (e.pendingRefundId !== null) {
    throw precondition(`entitlement ${e.entitlementId} is on hold: refund ${e.pendingRefundId} is pending; reject it to ${action}`);
  }
}

/** The consume entry a reversal undoes, as stored. */
export interface ReversibleEntry {
  entryId: string;
  entitlementId: string;
  kind: EntryDraft['kind'];
  paidDelta: number;
  bonusDelta: number;
  branchId: string;
  visitId?: string;
  serviceCode?: string;
  memberId?: string;
  /** The reversal that already undid it, if any. */
  reversedBy?: string;
}

/** Restores exactly the session (paid or bonus) a consume took. */
export function reverse(e: Entitlement, consumed: ReversibleEntry, reason: string, now: Date): Transition {
  if (consumed.kind !== 'CONSUME') {
    throw invalid('entry_id', `entry ${consumed.entryId} is a ${consumed.kind} entry; only CONSUME entries can be reversed`);
  }
  if (consumed.reversedBy !== undefined) {
    throw precondition(`entry ${consumed.entryId} was already reversed by entry ${consumed.reversedBy}`);
  }
  if (e.status === 'EXPIRED') {
    throw precondition(`entitlement ${e.entitlementId} has expired; its sessions can no longer be restored`);
  }
  assertOpen(e, 'reverse a consume');
  assertNotHeld(e, 'reverse a consume');
  const paidDelta = negate(consumed.paidDelta);
  const bonusDelta = negate(consumed.bonusDelta);
  let status = e.status;
  if (status === 'EXHAUSTED') status = e.graceEndTime !== null ? 'IN_GRACE' : 'ACTIVE';
  const next: Entitlement = {
    ...e,
    status,
    paidRemaining: e.paidRemaining + paidDelta,
    bonusRemaining: e.bonusRemaining + bonusDelta,
    version: e.version + 1,
  };
  return {
    next,
    entry: {
      kind: 'REVERSAL',
      sessionsDelta: paidDelta + bonusDelta,
      paidDelta,
      bonusDelta,
      branchId: consumed.branchId,
      reason,
      occurredTime: now,
      balanceAfter: remaining(next),
      entitlementVersion: next.version,
      inGrace: false,
      expiryTime: next.expiryTime,
      reversesEntryId: consumed.entryId,
      ...(consumed.visitId ? { visitId: consumed.visitId } : {}),
      ...(consumed.serviceCode ? { serviceCode: consumed.serviceCode } : {}),
      memberId: consumed.memberId ?? e.memberId,
    },
  };
}

/**
 * Freezes until `until`. Whole days (rounded up) count against the definition's max_freeze_days;
 * when freezes extend expiry the booked days push expiry out now, so the scheduler's timers follow.
 */
export function freeze(e: Entitlement, until: Date, reason: string, now: Date): Transition {
  assertOpen(e, 'freeze');
  assertNotHeld(e, 'freeze');
  if (e.status !== 'ACTIVE') throw precondition(`entitlement ${e.entitlementId} is ${e.status.toLowerCase()}; only an active entitlement can be frozen`);
  const max = e.terms.expiry.maxFreezeDays;
  if (max <= 0) throw precondition(`definition ${e.definitionId} does not allow freezing`);
  if (until <= now) throw invalid('until_time', 'must be in the future');
  if (e.expiryTime !== null && now >= e.expiryTime) throw precondition(`entitlement ${e.entitlementId} expired at ${e.expiryTime.toISOString()}`);
  const days = ceilDays(now, until);
  if (e.frozenDays + days > max) {
    throw invalid('until_time', `a ${days}-day freeze exceeds the ${max - e.frozenDays} freeze days left (max_freeze_days ${max})`);
  }
  const extends_ = e.terms.expiry.freezeExtendsExpiry && e.expiryTime !== null;
  const next: Entitlement = {
    ...e,
    status: 'FROZEN',
    frozenAt: now,
    frozenUntilTime: until,
    freezePlannedDays: days,
    expiryTime: extends_ && e.expiryTime ? addLocalDays(e.expiryTime, days, e.timeZone) : e.expiryTime,
    version: e.version + 1,
  };
  return { next, entry: marker(e, next, 'FREEZE', reason, now) };
}

/** Ends a freeze; an early unfreeze counts only the days used and gives back the unused expiry push. */
export function unfreeze(e: Entitlement, reason: string, now: Date): Transition {
  if (e.status !== 'FROZEN' || e.frozenAt === null) throw precondition(`entitlement ${e.entitlementId} is not frozen`);
  const used = Math.min(e.freezePlannedDays, ceilDays(e.frozenAt, now));
  const unused = e.freezePlannedDays - used;
  const extends_ = e.terms.expiry.freezeExtendsExpiry && e.expiryTime !== null;
  const next: Entitlement = {
    ...e,
    status: remaining(e) === 0 ? 'EXHAUSTED' : 'ACTIVE',
    frozenAt: null,
    frozenUntilTime: null,
    freezePlannedDays: 0,
    frozenDays: e.frozenDays + used,
    expiryTime: extends_ && e.expiryTime && unused > 0 ? addLocalDays(e.expiryTime, -unused, e.timeZone) : e.expiryTime,
    version: e.version + 1,
  };
  return { next, entry: marker(e, next, 'UNFREEZE', reason, now) };
}

export interface ExtendInput {
  newExpiryTime?: Date;
  extendDays?: number;
  reason: string;
}

/** Manager override: a later expiry. A package in grace whose new expiry is ahead becomes active again. */
export function extend(e: Entitlement, input: ExtendInput, now: Date): Transition {
  if (input.reason.trim() === '') throw invalid('reason', 'is required for an extension');
  const hasDate = input.newExpiryTime !== undefined;
  const hasDays = input.extendDays !== undefined && input.extendDays !== 0;
  if (hasDate === hasDays) throw invalid('new_expiry_time', 'set exactly one of new_expiry_time and extend_days');
  if (hasDays && (input.extendDays ?? 0) < 0) throw invalid('extend_days', 'must be positive');
  assertOpen(e, 'extend');
  if (e.expiryTime === null && !(hasDate && e.terms.expiry.customRule)) {
    throw precondition(
      e.terms.expiry.customRule
        ? `entitlement ${e.entitlementId} expires by a custom rule; give new_expiry_time rather than extend_days`
        : e.activationTime === null && e.terms.expiry.anchor === 'FIRST_USE'
          ? `entitlement ${e.entitlementId} has no expiry until its first use`
          : `entitlement ${e.entitlementId} never expires`,
    );
  }
  const newExpiry = hasDate ? input.newExpiryTime! : addLocalDays(e.expiryTime!, input.extendDays!, e.timeZone);
  if (hasDate && e.expiryTime !== null && newExpiry <= e.expiryTime) {
    throw invalid('new_expiry_time', `must be after the current expiry ${e.expiryTime.toISOString()}`);
  }
  if (newExpiry <= now) throw precondition(`the extended expiry ${newExpiry.toISOString()} is still in the past`);
  const revived = e.status === 'IN_GRACE';
  const next: Entitlement = {
    ...e,
    status: revived ? 'ACTIVE' : e.status,
    graceEndTime: null,
    expiryTime: newExpiry,
    version: e.version + 1,
  };
  return { next, entry: marker(e, next, 'EXTEND', input.reason, now) };
}

/**
 * SOFT expiry reached: the scheduler moves the entitlement into grace. Idempotent: a stale expiry
 * (extended since), a package already in grace, frozen, exhausted or closed changes nothing.
 * For a custom rule the scheduler's evaluation decides and a manager's explicit date is a floor
 * (the later of the two wins), so only an expiry before the recorded one is stale there.
 */
export function enterGrace(e: Entitlement, expiryTime: Date, graceEndTime: Date | undefined, now: Date): MaybeTransition {
  if (e.terms.expiry.mode !== 'SOFT') throw precondition(`entitlement ${e.entitlementId} has HARD expiry; it has no grace period`);
  if (e.status !== 'ACTIVE') return { noop: `entitlement is ${e.status.toLowerCase()}` };
  const recorded = e.expiryTime;
  if (recorded !== null && (e.terms.expiry.customRule ? expiryTime < recorded : expiryTime.getTime() !== recorded.getTime())) {
    return { noop: `stale: the expiry is now ${recorded.toISOString()}` };
  }
  if (expiryTime > now) throw precondition(`expiry_time ${expiryTime.toISOString()} has not passed yet`);
  if (graceEndTime !== undefined && graceEndTime <= expiryTime) throw invalid('grace_end_time', 'must be after expiry_time');
  const end = graceEndTime ?? graceEnd(e, expiryTime);
  const next: Entitlement = { ...e, status: 'IN_GRACE', expiryTime, graceEndTime: end, version: e.version + 1 };
  return { next, entry: marker(e, next, 'GRACE', 'grace period started', now) };
}

/**
 * Time is up: the remaining sessions are forfeited (breakage) by an EXPIRE entry that takes the
 * balance to zero. Idempotent: a stale due time (the end moved later) or a closed entitlement
 * changes nothing.
 */
export function expire(e: Entitlement, dueTime: Date, reason: string, now: Date): MaybeTransition {
  if (CLOSED_STATUSES.has(e.status)) return { noop: `entitlement is ${e.status.toLowerCase()}` };
  if (dueTime > now) throw invalid('due_time', `${dueTime.toISOString()} is in the future`);
  // The member asked for the refund in time; releasing the hold expires it if its time is up by then.
  if (e.pendingRefundId !== null) return { noop: `refund ${e.pendingRefundId} is pending` };
  const end = finalEnd(e);
  if (end !== null && dueTime < end) return { noop: `stale: the entitlement is usable until ${end.toISOString()}` };
  const next: Entitlement = {
    ...e,
    status: 'EXPIRED',
    paidRemaining: 0,
    bonusRemaining: 0,
    frozenAt: null,
    frozenUntilTime: null,
    version: e.version + 1,
  };
  const entry = marker(e, next, 'EXPIRE', reason === '' ? 'expired' : reason, now);
  return { next, entry: { ...entry, sessionsDelta: negate(remaining(e)), paidDelta: negate(e.paidRemaining), bonusDelta: negate(e.bonusRemaining) } };
}
