import { RuleViolation } from './errors.js';

/** Plan tiers in ascending order; each includes every feature of the tiers below it. */
export const PLAN_TIERS = ['BASIC', 'ADVANCED', 'EXPERT', 'ENTERPRISE'] as const;
export type PlanTier = (typeof PLAN_TIERS)[number];

/**
 * The product's tier table, the single source of truth for plan gating. Names match the proto
 * `Feature` enum without its prefix. Each tier lists only what it adds.
 */
export const TIER_TABLE = {
  BASIC: ['MANUAL_DEDUCTION', 'HARD_EXPIRY', 'PACKAGE_HISTORY'],
  ADVANCED: ['MULTI_PACKAGE', 'AUTO_DEDUCTION', 'SOFT_EXPIRY', 'BONUS_SESSIONS'],
  EXPERT: ['TRANSFER', 'SHARING', 'REVENUE_DEFERRAL', 'TOP_UP', 'UPGRADE', 'PROFIT_REPORTING'],
  ENTERPRISE: ['MULTI_BRANCH', 'CUSTOM_EXPIRY_RULES', 'REFUNDS', 'ACCOUNTING_INTEGRATION'],
} as const satisfies Record<PlanTier, readonly string[]>;

export type Feature = (typeof TIER_TABLE)[PlanTier][number];

export const FEATURES: readonly Feature[] = PLAN_TIERS.flatMap((tier) => TIER_TABLE[tier]);

export function tierRank(tier: PlanTier): number {
  return PLAN_TIERS.indexOf(tier);
}

/** Every feature the tier allows: its own and those of all lower tiers, in table order. */
export function featuresOf(tier: PlanTier): Feature[] {
  return PLAN_TIERS.slice(0, tierRank(tier) + 1).flatMap((t) => TIER_TABLE[t]);
}

/** The lowest tier that has the feature. */
export function lowestTierWith(feature: Feature): PlanTier {
  const tier = PLAN_TIERS.find((t) => (TIER_TABLE[t] as readonly Feature[]).includes(feature));
  if (!tier) throw new Error(`feature ${feature} is in no tier`);
  return tier;
}

export function tierHas(tier: PlanTier, feature: Feature): boolean {
  return tierRank(tier) >= tierRank(lowestTierWith(feature));
}

/** A feature used above the tenant's plan; the message names the feature and the tier that has it. */
export class FeatureNotInPlan extends RuleViolation {
  readonly requiredTier: PlanTier;
  constructor(
    readonly feature: Feature,
    readonly tenantTier: PlanTier,
    detail?: string,
  ) {
    const requiredTier = lowestTierWith(feature);
    super(`feature ${feature} needs plan tier ${requiredTier} (tenant is ${tenantTier})${detail ? `: ${detail}` : ''}`);
    this.requiredTier = requiredTier;
  }
}

export function requireFeature(tier: PlanTier, feature: Feature, detail?: string): void {
  if (!tierHas(tier, feature)) throw new FeatureNotInPlan(feature, tier, detail);
}
