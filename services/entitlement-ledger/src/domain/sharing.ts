import { exhausted, precondition, type RuleViolation } from './errors.js';
import { assertNotHeld, assertOpen } from './lifecycle.js';
import type { Policies } from './policies.js';
import type { Entitlement, TenantFacts } from './types.js';

/** Sharing an entitlement with a household pool the holder belongs to, as the definition allows. */
export function checkShare(e: Entitlement, p: Policies, householdId: string, holderIsMember: boolean): void {
  assertOpen(e, 'share');
  assertNotHeld(e, 'share');
  if (!p.sharing.householdPool) throw precondition(`definition ${e.definitionId} does not allow sharing with a household pool`);
  if (!holderIsMember) throw precondition(`holder ${e.memberId} of entitlement ${e.entitlementId} is not a member of household ${householdId}`);
  if (e.householdId === householdId) throw precondition(`entitlement ${e.entitlementId} is already shared with household ${householdId}`);
}

/** Sessions each member has used from a shared entitlement (consumes net of their reversals). */
export type PoolUsage = ReadonlyMap<string, number>;

export interface PoolMembership {
  /** The consuming member belongs to the entitlement's household. */
  member: boolean;
  /** The holder still belongs to it (leaving the household ends the sharing). */
  holder: boolean;
}

/**
 * Whether `memberId` may consume one session of someone else's entitlement through its household
 * pool: the tenant has sharing, the member and the holder are in the household, the member is
 * under the per-member cap, and a new user does not exceed the definition's max_members. The holder
 * is never limited by the pool rules. Undefined = allowed. Decided under the entitlement's row
 * lock, with usage counted from its entries under that same lock, so racing members cannot pass a
 * cap together.
 */
export function poolRefusal(
  e: Entitlement,
  p: Policies,
  memberId: string,
  membership: PoolMembership,
  usage: PoolUsage,
  tenant: TenantFacts,
): RuleViolation | undefined {
  if (memberId === e.memberId) return undefined;
  if (e.householdId === null) return precondition(`entitlement ${e.entitlementId} belongs to another member than ${memberId}`);
  if (!tenant.features.has('SHARING')) {
    return precondition(`consuming from household pool of entitlement ${e.entitlementId} needs FEATURE_SHARING (EXPERT plan or higher)`);
  }
  if (!membership.member) return precondition(`member ${memberId} is not in household ${e.householdId}, which entitlement ${e.entitlementId} is shared with`);
  if (!membership.holder) return precondition(`holder ${e.memberId} left household ${e.householdId}; entitlement ${e.entitlementId} is no longer shared`);
  const used = usage.get(memberId) ?? 0;
  const cap = p.sharing.perMemberSessionCap;
  if (cap > 0 && used >= cap) {
    return exhausted(`member ${memberId} used ${used} of the ${cap} sessions one member may take from entitlement ${e.entitlementId}`);
  }
  const max = p.sharing.maxMembers;
  if (max > 0 && used === 0) {
    const others = [...usage].filter(([m, n]) => m !== e.memberId && n > 0).length;
    if (others >= max) return precondition(`entitlement ${e.entitlementId} is already used by ${others} household members, the most its definition allows`);
  }
  return undefined;
}
