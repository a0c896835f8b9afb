import type { ExpiryFacts } from './expiry.js';
import type { ExpiryPolicy } from './policy.js';

export type EntitlementStatus = 'ACTIVE' | 'FROZEN' | 'IN_GRACE' | 'EXPIRED' | 'EXHAUSTED' | 'REFUNDED' | 'TRANSFERRED' | 'UPGRADED';

export type EntryKind =
  | 'PURCHASE'
  | 'CONSUME'
  | 'REVERSAL'
  | 'EXPIRE'
  | 'EXTEND'
  | 'FREEZE'
  | 'UNFREEZE'
  | 'GRACE'
  | 'TRANSFER_OUT'
  | 'TRANSFER_IN'
  | 'TOP_UP'
  | 'UPGRADE_OUT'
  | 'UPGRADE_IN'
  | 'REFUND'
  | 'OTHER';

/** One ledger event as the scheduler reads it: the entry and the entitlement as it stands after it. */
export interface LedgerFact {
  readonly tenantId: string;
  readonly entitlementId: string;
  readonly memberId: string;
  readonly version: number;
  readonly status: EntitlementStatus;
  readonly remaining: number;
  readonly policy: ExpiryPolicy;
  readonly timeZone: string;
  readonly purchaseTime: Date;
  readonly activationTime?: Date;
  readonly expiryTime?: Date;
  readonly graceEndTime?: Date;
  readonly frozenUntilTime?: Date;
  readonly frozenDays: number;
  readonly lastUseTime?: Date;
  /** `requestId`: the idempotency key of the call that made the entry (or the ledger's own reference). */
  readonly entry: { readonly kind: EntryKind; readonly occurredTime: Date; readonly requestId: string };
}

/** What the scheduler keeps per entitlement: enough to recompute its schedule from any event. */
export interface EntitlementState extends ExpiryFacts {
  readonly tenantId: string;
  readonly entitlementId: string;
  readonly memberId: string;
  readonly version: number;
  readonly status: EntitlementStatus;
  readonly remaining: number;
}

/** Statuses in which nothing more will happen to the entitlement's clock: its timers are cancelled. */
export const CLOSED: ReadonlySet<EntitlementStatus> = new Set(['EXPIRED', 'EXHAUSTED', 'REFUNDED', 'TRANSFERRED', 'UPGRADED']);

export type Ordering = 'apply' | 'duplicate' | 'gap';

/**
 * Per-entitlement ordering: version n applies only after n - 1 (the first event of an entitlement is
 * version 1); an older or repeated version is a duplicate; anything further ahead waits.
 */
export function ordering(appliedVersion: number | undefined, version: number): Ordering {
  const expected = (appliedVersion ?? 0) + 1;
  if (version < expected) return 'duplicate';
  return version === expected ? 'apply' : 'gap';
}

const min = (a: Date | undefined, b: Date | undefined) => (!a ? b : !b ? a : a <= b ? a : b);
const max = (a: Date | undefined, b: Date | undefined) => (!a ? b : !b ? a : a >= b ? a : b);

/** The state after a ledger event (taken in version order). */
export function applyLedgerFact(prev: EntitlementState | undefined, fact: LedgerFact): EntitlementState {
  const { entry } = fact;
  const consumed = entry.kind === 'CONSUME' ? entry.occurredTime : undefined;
  // The first use is the earliest consume seen; for FIRST_USE packages the ledger's activation says it too.
  const firstUseTime = min(
    min(prev?.firstUseTime, consumed),
    fact.policy.anchor === 'FIRST_USE' && !fact.policy.customRule ? fact.activationTime : undefined,
  );
  const frozen = fact.status === 'FROZEN';
  const freezeFrom = entry.kind === 'FREEZE' ? entry.occurredTime : (prev?.freeze?.from ?? entry.occurredTime);
  return {
    tenantId: fact.tenantId,
    entitlementId: fact.entitlementId,
    memberId: fact.memberId,
    version: fact.version,
    status: fact.status,
    remaining: fact.remaining,
    policy: fact.policy,
    timeZone: fact.timeZone,
    purchaseTime: fact.purchaseTime,
    firstUseTime,
    lastUseTime: max(max(prev?.lastUseTime, fact.lastUseTime), consumed),
    frozenDays: fact.frozenDays,
    freeze: frozen ? { from: freezeFrom, until: fact.frozenUntilTime } : undefined,
    ledgerExpiryTime: fact.expiryTime,
    ledgerGraceEndTime: fact.graceEndTime,
  };
}
