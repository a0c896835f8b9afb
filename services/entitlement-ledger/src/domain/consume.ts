import { exhausted, precondition, type RuleViolation } from './errors.js';
import { afterUse, finalEnd } from './expiry.js';
import { remaining, type Entitlement, type TenantFacts, type Transition } from './types.js';

export interface ConsumeInput {
  /** The member using the session. */
  memberId: string;
  /** Delivering branch. */
  branchId: string;
  /** The visit type; empty = not checked (an explicit entitlement was named). */
  serviceCode: string;
  /** When the visit happened; expiry and grace are judged at this instant. */
  occurredTime: Date;
  reason: string;
  visitId?: string;
}

export type Usability =
  | { ok: true; inGrace: boolean }
  | { ok: false; violation: RuleViolation; rank: number };

/**
 * Ranks say which refusal explains best why nothing could be consumed, lowest first: the member's
 * frozen package is a better answer than a package for another service.
 */
const RANK = { frozen: 1, expired: 2, branch: 3, exhausted: 4, closed: 5, service: 6 } as const;

function refuse(rank: number, violation: RuleViolation): Usability {
  return { ok: false, violation, rank };
}

export function coversService(e: Entitlement, serviceCode: string): boolean {
  return serviceCode === '' || e.terms.serviceCodes.length === 0 || e.terms.serviceCodes.includes(serviceCode);
}

export function usableAtBranch(e: Entitlement, branchId: string): boolean {
  if (branchId === e.purchaseBranchId || e.terms.allBranches) return true;
  return e.terms.branchIds.includes(branchId);
}

/** Whether one session of `e` may be consumed as `input` describes, and if so whether in grace. */
export function usability(e: Entitlement, input: ConsumeInput, tenant: TenantFacts): Usability {
  const id = e.entitlementId;
  if (!coversService(e, input.serviceCode)) {
    return refuse(RANK.service, precondition(`entitlement ${id} does not cover service code ${input.serviceCode}`));
  }
  switch (e.status) {
    case 'FROZEN':
      return refuse(RANK.frozen, precondition(`entitlement ${id} is frozen until ${e.frozenUntilTime?.toISOString() ?? 'unfrozen'}`));
    case 'EXPIRED':
      return refuse(RANK.expired, precondition(`entitlement ${id} has expired`));
    case 'REFUNDED':
    case 'TRANSFERRED':
    case 'UPGRADED':
      return refuse(RANK.closed, precondition(`entitlement ${id} was ${e.status.toLowerCase()}`));
    case 'ACTIVE':
    case 'IN_GRACE':
    case 'EXHAUSTED':
      break;
  }
  if (e.pendingRefundId !== null) {
    return refuse(RANK.closed, precondition(`entitlement ${id} is on hold: refund ${e.pendingRefundId} is pending`));
  }
  if (!usableAtBranch(e, input.branchId)) {
    return refuse(RANK.branch, precondition(`entitlement ${id} is not usable at branch ${input.branchId}`));
  }
  if (input.branchId !== e.purchaseBranchId && !tenant.features.has('MULTI_BRANCH')) {
    return refuse(
      RANK.branch,
      precondition(`entitlement ${id} was bought at branch ${e.purchaseBranchId}; use at branch ${input.branchId} needs multi-branch (ENTERPRISE plan)`),
    );
  }
  let inGrace = e.status === 'IN_GRACE';
  // A custom rule's deadline is the expiry scheduler's to evaluate: its calls set the status.
  if (e.expiryTime !== null && !e.terms.expiry.customRule && input.occurredTime >= e.expiryTime) {
    const end = finalEnd(e);
    if (e.terms.expiry.mode === 'HARD' || end === null || input.occurredTime >= end) {
      return refuse(RANK.expired, precondition(`entitlement ${id} expired at ${(end ?? e.expiryTime).toISOString()}`));
    }
    inGrace = true;
  }
  if (remaining(e) <= 0) {
    return refuse(RANK.exhausted, exhausted(`entitlement ${id} has no sessions left`));
  }
  return { ok: true, inGrace };
}

/** Consumes one session of `e`, which must be usable (see {@link usability}); the paid/bonus order is the definition's. */
export function consume(e: Entitlement, input: ConsumeInput, tenant: TenantFacts): Transition {
  const u = usability(e, input, tenant);
  if (!u.ok) throw u.violation;
  const bonusFirst = e.terms.sessionOrder === 'BONUS_FIRST';
  const useBonus = bonusFirst ? e.bonusRemaining > 0 : e.paidRemaining === 0;
  const paidDelta = useBonus ? 0 : -1;
  const bonusDelta = useBonus ? -1 : 0;
  const { activationTime, expiryTime } = afterUse(e, input.occurredTime);
  const paidRemaining = e.paidRemaining + paidDelta;
  const bonusRemaining = e.bonusRemaining + bonusDelta;
  let status = e.status;
  let graceEndTime = e.graceEndTime;
  // A rolling extension can carry a package in grace back into its validity period.
  if (status === 'IN_GRACE' && expiryTime !== null && expiryTime > input.occurredTime) {
    status = 'ACTIVE';
    graceEndTime = null;
  }
  if (paidRemaining + bonusRemaining === 0) status = 'EXHAUSTED';
  const lastUseTime = e.lastUseTime === null || input.occurredTime > e.lastUseTime ? input.occurredTime : e.lastUseTime;
  const next: Entitlement = {
    ...e,
    status,
    paidRemaining,
    bonusRemaining,
    activationTime,
    expiryTime,
    graceEndTime,
    lastUseTime,
    version: e.version + 1,
  };
  return {
    next,
    entry: {
      kind: 'CONSUME',
      sessionsDelta: -1,
      paidDelta,
      bonusDelta,
      branchId: input.branchId,
      reason: input.reason,
      occurredTime: input.occurredTime,
      balanceAfter: remaining(next),
      entitlementVersion: next.version,
      inGrace: u.inGrace,
      expiryTime,
      serviceCode: input.serviceCode,
      memberId: input.memberId,
      ...(input.visitId ? { visitId: input.visitId } : {}),
    },
  };
}

/**
 * Redemption order when the ledger picks: lower definition priority, then soonest expiry (FEFO;
 * unknown expiry last), then oldest purchase, then id for a total order.
 */
export function redemptionOrder(a: Entitlement, b: Entitlement): number {
  return (
    a.terms.redemptionPriority - b.terms.redemptionPriority ||
    (a.expiryTime?.getTime() ?? Infinity) - (b.expiryTime?.getTime() ?? Infinity) ||
    a.purchaseTime.getTime() - b.purchaseTime.getTime() ||
    (a.entitlementId < b.entitlementId ? -1 : a.entitlementId > b.entitlementId ? 1 : 0)
  );
}

/**
 * Picks the entitlement a consume should draw from among the member's, or throws the refusal that
 * best explains why none can be used.
 */
export function pick(candidates: readonly Entitlement[], input: ConsumeInput, tenant: TenantFacts): Entitlement {
  const usable: Entitlement[] = [];
  let best: { violation: RuleViolation; rank: number } | undefined;
  for (const e of candidates) {
    const u = usability(e, input, tenant);
    if (u.ok) usable.push(e);
    else if (!best || u.rank < best.rank) best = u;
  }
  if (usable.length > 0) return usable.sort(redemptionOrder)[0]!;
  if (best && best.rank !== RANK.service) throw best.violation;
  throw precondition(
    `member ${input.memberId} has no entitlement covering service code ${input.serviceCode} at branch ${input.branchId}`,
  );
}
