import type { NormalizedTerms } from './terms.js';
import { FeatureNotInPlan, tierHas, tierRank, lowestTierWith, type Feature, type PlanTier } from './tiers.js';

export interface FeatureUse {
  feature: Feature;
  /** What in the terms uses it, e.g. `terms.bonus_sessions is 1`. */
  because: string;
}

/**
 * The plan features a definition's terms use. Deduction, history, revenue deferral of the plain kind
 * and accounting integration are enforced where they happen (ledger, revenue, billing) from
 * `Tenant.features`; here are the ones a definition itself turns on.
 *
 * Multi-branch: a definition whose branch policy covers more than one branch (all_branches, or more
 * than one listed branch) needs MULTI_BRANCH. A tenant may have several branches at any tier, each
 * selling packages usable only at that branch.
 */
export function featuresUsedBy(terms: NormalizedTerms): FeatureUse[] {
  const uses: FeatureUse[] = [];
  const use = (feature: Feature, because: string) => uses.push({ feature, because });
  const e = terms.expiry;
  if (e?.mode === 'HARD') use('HARD_EXPIRY', 'terms.expiry.mode is HARD');
  if (e?.mode === 'SOFT') use('SOFT_EXPIRY', 'terms.expiry.mode is SOFT');
  if (e?.customRule) use('CUSTOM_EXPIRY_RULES', 'terms.expiry.custom_rule is set');
  if (terms.bonusSessions > 0) use('BONUS_SESSIONS', `terms.bonus_sessions is ${terms.bonusSessions}`);
  if (terms.transfer.scope !== 'NONE') use('TRANSFER', `terms.transfer.scope is ${terms.transfer.scope}`);
  if (terms.sharing.householdPool) use('SHARING', 'terms.sharing.household_pool is set');
  if (terms.topUp.enabled) use('TOP_UP', 'terms.top_up.enabled is set');
  if (terms.upgrade.targetDefinitionIds.length > 0) use('UPGRADE', 'terms.upgrade.target_definition_ids is not empty');
  if (terms.expectedBreakageBps > 0) use('REVENUE_DEFERRAL', 'terms.expected_breakage_bps is set (proportional breakage)');
  if (terms.deliveryCostPerSession) use('PROFIT_REPORTING', 'terms.delivery_cost_per_session is set');
  if (terms.deliveryCostByBranch.length > 0) use('PROFIT_REPORTING', 'terms.delivery_cost_by_branch is set');
  if (terms.branches.allBranches) use('MULTI_BRANCH', 'terms.branches.all_branches is set');
  if (terms.branches.branchIds.length > 1) use('MULTI_BRANCH', `terms.branches lists ${terms.branches.branchIds.length} branches`);
  if (terms.refund.method !== 'NON_REFUNDABLE') use('REFUNDS', `terms.refund.method is ${terms.refund.method}`);
  return uses;
}

/** Uses of features above the tier, lowest required tier first. */
export function planViolations(tier: PlanTier, terms: NormalizedTerms): FeatureUse[] {
  return featuresUsedBy(terms)
    .filter((u) => !tierHas(tier, u.feature))
    .sort((a, b) => tierRank(lowestTierWith(a.feature)) - tierRank(lowestTierWith(b.feature)));
}

/** Throws `FeatureNotInPlan` for the first feature the terms use above the tenant's tier. */
export function assertTermsInPlan(tier: PlanTier, terms: NormalizedTerms): void {
  const [first] = planViolations(tier, terms);
  if (first) throw new FeatureNotInPlan(first.feature, tier, first.because);
}

/**
 * BASIC sells one package type: publishing a definition while another is active needs MULTI_PACKAGE.
 * `otherActiveCodes` are the codes of the tenant's other ACTIVE definitions.
 */
export function assertCanActivate(tier: PlanTier, otherActiveCodes: readonly string[]): void {
  const [other] = otherActiveCodes;
  if (other !== undefined && !tierHas(tier, 'MULTI_PACKAGE')) {
    throw new FeatureNotInPlan('MULTI_PACKAGE', tier, `definition ${JSON.stringify(other)} is already active and ${tier} allows one active package type`);
  }
}
