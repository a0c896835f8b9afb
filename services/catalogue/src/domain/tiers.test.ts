import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FEATURES, FeatureNotInPlan, PLAN_TIERS, featuresOf, lowestTierWith, requireFeature, tierHas, tierRank } from './tiers.js';

describe('tier table', () => {
  it('is exactly the product table', () => {
    expect(featuresOf('BASIC')).toEqual(['MANUAL_DEDUCTION', 'HARD_EXPIRY', 'PACKAGE_HISTORY']);
    expect(featuresOf('ADVANCED').slice(3)).toEqual(['MULTI_PACKAGE', 'AUTO_DEDUCTION', 'SOFT_EXPIRY', 'BONUS_SESSIONS']);
    expect(featuresOf('EXPERT').slice(7)).toEqual(['TRANSFER', 'SHARING', 'REVENUE_DEFERRAL', 'TOP_UP', 'UPGRADE', 'PROFIT_REPORTING']);
    expect(featuresOf('ENTERPRISE').slice(13)).toEqual(['MULTI_BRANCH', 'CUSTOM_EXPIRY_RULES', 'REFUNDS', 'ACCOUNTING_INTEGRATION']);
    expect(featuresOf('ENTERPRISE')).toEqual(FEATURES);
    expect(new Set(FEATURES).size).toBe(17);
  });

  it('names the feature and the lowest tier that has it', () => {
    expect(() => requireFeature('BASIC', 'BONUS_SESSIONS')).toThrow('feature BONUS_SESSIONS needs plan tier ADVANCED (tenant is BASIC)');
    expect(() => requireFeature('EXPERT', 'REFUNDS', 'terms.refund.method is PRO_RATA')).toThrow(
      'feature REFUNDS needs plan tier ENTERPRISE (tenant is EXPERT): terms.refund.method is PRO_RATA',
    );
    expect(new FeatureNotInPlan('TRANSFER', 'ADVANCED').requiredTier).toBe('EXPERT');
    expect(() => requireFeature('ADVANCED', 'BONUS_SESSIONS')).not.toThrow();
  });

  it('higher tiers include everything of lower tiers', () => {
    const tier = fc.constantFrom(...PLAN_TIERS);
    fc.assert(
      fc.property(tier, tier, (a, b) => {
        const [lo, hi] = tierRank(a) <= tierRank(b) ? [a, b] : [b, a];
        expect(featuresOf(hi)).toEqual(expect.arrayContaining(featuresOf(lo)));
      }),
    );
  });

  it('a tier has a feature exactly when it is at or above the lowest tier with it', () => {
    fc.assert(
      fc.property(fc.constantFrom(...PLAN_TIERS), fc.constantFrom(...FEATURES), (tier, feature) => {
        expect(tierHas(tier, feature)).toBe(featuresOf(tier).includes(feature));
        expect(tierHas(tier, feature)).toBe(tierRank(tier) >= tierRank(lowestTierWith(feature)));
      }),
    );
  });
});
