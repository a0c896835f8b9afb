import { invalid, precondition } from './errors.js';
import { finalEnd } from './expiry.js';
import { assertNotHeld, assertOpen } from './lifecycle.js';
import type { Policies } from './policies.js';
import { remaining, type Entitlement, type EntryDraft, type TransferDetail, type Transition } from './types.js';
import { highestOpen, sessionValues, valueOf, type Slot } from './valuation.js';

export interface TransferInput {
  toMemberId: string;
  /** Whether the holder and the new holder share a household (for the HOUSEHOLD scope). */
  sameHousehold: boolean;
  targetEntitlementId: string;
  outEntryId: string;
  inEntryId: string;
  reason: string;
  now: Date;
}

/** Both sides of a transfer: the giving entitlement closes TRANSFERRED, the new holder's opens at version 1. */
export interface TransferResult {
  source: Transition;
  target: Transition;
  detail: TransferDetail;
}

/** Who may receive the sessions, and how often a package may change hands, per the definition. */
export function checkTransfer(e: Entitlement, p: Policies, input: Pick<TransferInput, 'toMemberId' | 'sameHousehold'>): void {
  if (input.toMemberId === e.memberId) throw invalid('to_member_id', `is already the holder of entitlement ${e.entitlementId}`);
  switch (p.transfer.scope) {
    case 'NONE':
      throw precondition(`definition ${e.definitionId} does not allow transfers`);
    case 'HOUSEHOLD':
      if (!input.sameHousehold) {
        throw precondition(`definition ${e.definitionId} allows transfers within a household only; ${input.toMemberId} shares no household with ${e.memberId}`);
      }
      break;
    case 'ANYONE':
      break;
  }
  if (p.transfer.maxTransfers > 0 && e.transferCount >= p.transfer.maxTransfers) {
    throw precondition(`entitlement ${e.entitlementId} was transferred ${e.transferCount} times; definition ${e.definitionId} allows at most ${p.transfer.maxTransfers}`);
  }
}

/**
 * Moves every remaining session to a new entitlement of `toMemberId` that keeps the terms, the
 * expiry and the purchase time (so the refund window does not restart), carrying each session's
 * allocated value so the deferred revenue moves with it and nothing is recognised.
 */
export function moveSessions(
  e: Entitlement,
  slots: readonly Slot[],
  input: Omit<TransferInput, 'sameHousehold'> & { transferCount: number; undoesTransferId?: string },
): TransferResult {
  const action = input.undoesTransferId ? 'undo a transfer' : 'transfer';
  assertOpen(e, action);
  assertNotHeld(e, action);
  if (e.status === 'FROZEN') throw precondition(`entitlement ${e.entitlementId} is frozen; unfreeze it to ${action}`);
  if (remaining(e) === 0) throw precondition(`entitlement ${e.entitlementId} has no sessions left to transfer`);
  const end = finalEnd(e);
  if (!e.terms.expiry.customRule && end !== null && input.now >= end) {
    throw precondition(`entitlement ${e.entitlementId} expired at ${end.toISOString()}`);
  }
  const moved = highestOpen(slots, e.paidRemaining, e.bonusRemaining);
  const sessions = sessionValues(moved);
  const value = valueOf(sessions);
  const detail: TransferDetail = {
    kind: 'transfer',
    fromEntitlementId: e.entitlementId,
    toEntitlementId: input.targetEntitlementId,
    fromMemberId: e.memberId,
    toMemberId: input.toMemberId,
    paid: e.paidRemaining,
    bonus: e.bonusRemaining,
    sessions,
    value,
    ...(input.undoesTransferId ? { undoesTransferId: input.undoesTransferId } : {}),
  };
  const sourceNext: Entitlement = { ...e, status: 'TRANSFERRED', paidRemaining: 0, bonusRemaining: 0, householdId: null, version: e.version + 1 };
  const targetNext: Entitlement = {
    ...e,
    entitlementId: input.targetEntitlementId,
    memberId: input.toMemberId,
    status: e.status === 'IN_GRACE' ? 'IN_GRACE' : 'ACTIVE',
    paidSessions: e.paidRemaining,
    bonusSessions: e.bonusRemaining,
    frozenAt: null,
    frozenUntilTime: null,
    freezePlannedDays: 0,
    version: 1,
    householdId: null,
    transferCount: input.transferCount,
    originEntitlementId: e.entitlementId,
    pendingRefundId: null,
  };
  const common = {
    branchId: e.purchaseBranchId,
    reason: input.reason,
    occurredTime: input.now,
    inGrace: false,
    expiryTime: e.expiryTime,
    amountMinor: value,
    detail,
  };
  const out: EntryDraft = {
    ...common,
    kind: 'TRANSFER_OUT',
    sessionsDelta: 0 - remaining(e),
    paidDelta: 0 - e.paidRemaining,
    bonusDelta: 0 - e.bonusRemaining,
    balanceAfter: 0,
    entitlementVersion: sourceNext.version,
    memberId: e.memberId,
    counterpartEntitlementId: input.targetEntitlementId,
    counterpartEntryId: input.inEntryId,
  };
  const into: EntryDraft = {
    ...common,
    kind: 'TRANSFER_IN',
    sessionsDelta: remaining(e),
    paidDelta: e.paidRemaining,
    bonusDelta: e.bonusRemaining,
    balanceAfter: remaining(targetNext),
    entitlementVersion: 1,
    memberId: input.toMemberId,
    counterpartEntitlementId: e.entitlementId,
    counterpartEntryId: input.outEntryId,
  };
  return { source: { next: sourceNext, entry: out }, target: { next: targetNext, entry: into }, detail };
}

export interface TransferRecord {
  /** The TRANSFER_OUT entry id (the transfer id). */
  transferId: string;
  kind: EntryDraft['kind'];
  recordTime: Date;
  /** Set when the transfer was itself an undo. */
  undoesTransferId?: string;
}

/**
 * An undo sends the sessions back to the original holder (as a new entitlement: closed packages stay
 * closed), within the policy's window and only while the receiver has not used or changed them.
 */
export function checkUndo(received: Entitlement, p: Policies, t: TransferRecord, now: Date): void {
  if (t.kind !== 'TRANSFER_OUT') throw invalid('transfer_id', `entry ${t.transferId} is a ${t.kind} entry, not a transfer`);
  if (t.undoesTransferId) throw precondition(`transfer ${t.transferId} is itself an undo; it cannot be undone`);
  const hours = p.transfer.undoWindowHours;
  if (hours <= 0) throw precondition(`definition ${received.definitionId} does not allow undoing a transfer`);
  const deadline = new Date(t.recordTime.getTime() + hours * 3_600_000);
  if (now >= deadline) throw precondition(`transfer ${t.transferId} can no longer be undone: its ${hours}-hour undo window ended at ${deadline.toISOString()}`);
  if (received.version !== 1 || received.status === 'TRANSFERRED') {
    throw precondition(`entitlement ${received.entitlementId} changed since transfer ${t.transferId} (version ${received.version}); it cannot be undone`);
  }
}
