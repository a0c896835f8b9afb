import type { BranchPolicy } from './terms.js';

/**
 * Who acts, as far as branch scope goes. `branchIds` comes from the token's `branch_ids`: absent, the
 * caller acts for the whole tenant; present, only for those branches (an empty list: for none).
 */
export interface ScopedCaller {
  subject: string;
  branchIds?: readonly string[] | undefined;
}

/** The caller may not do this for the branches it would touch; the API maps it to PermissionDenied. */
export class AccessDenied extends Error {
  override readonly name = 'AccessDenied';
}

/**
 * The branches of `policy` the caller may not act for: `'all'` when the policy covers every branch
 * (present and future, so only a whole-tenant caller may decide it), otherwise the listed branches
 * outside the caller's scope, in policy order without repeats. Empty: the caller may act for it.
 */
export function branchesOutsideScope(caller: ScopedCaller, policy: BranchPolicy): 'all' | string[] {
  const scope = caller.branchIds;
  if (scope === undefined) return [];
  if (policy.allBranches) return 'all';
  return [...new Set(policy.branchIds.filter((id) => !scope.includes(id)))];
}

/**
 * A branch-scoped caller runs its branches, not the tenant: creating the tenant, changing its
 * name, tier, currency or earning rule, and opening branches need a whole-tenant caller.
 */
export function assertTenantWide(caller: ScopedCaller, action: string): void {
  if (caller.branchIds === undefined) return;
  throw new AccessDenied(`${action} needs a caller for the whole tenant; ${describeCaller(caller)}`);
}

/** A branch-scoped caller may change only its own branches. */
export function assertMayChangeBranch(caller: ScopedCaller, branchId: string): void {
  if (caller.branchIds === undefined || caller.branchIds.includes(branchId)) return;
  throw new AccessDenied(`branch ${branchId} is outside the caller's branches; ${describeCaller(caller)}`);
}

/**
 * A branch-scoped caller may create, edit, publish or retire a definition only when its branch
 * policy lists nothing but the caller's branches. `what` names the policy checked, e.g.
 * `terms.branches` for the requested terms or `definition "TEN-PACK" version 2` for the stored one.
 */
export function assertMayChangeDefinition(caller: ScopedCaller, policy: BranchPolicy, what: string): void {
  const outside = branchesOutsideScope(caller, policy);
  if (outside === 'all') {
    throw new AccessDenied(`${what} is usable at all branches, which needs a caller for the whole tenant; ${describeCaller(caller)}`);
  }
  if (outside.length > 0) {
    const noun = outside.length === 1 ? 'branch' : 'branches';
    throw new AccessDenied(`${what} lists ${noun} ${outside.join(', ')} outside the caller's branches; ${describeCaller(caller)}`);
  }
}

function describeCaller(caller: ScopedCaller): string {
  const scope = caller.branchIds ?? [];
  return `caller ${caller.subject} is limited to ${scope.length === 0 ? 'no branches' : `branches ${scope.join(', ')}`}`;
}
