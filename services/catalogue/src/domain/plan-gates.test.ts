import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CURRENCY, basicTerms, validTerms } from '../../test/support/arbitraries.js';
import { assertCanActivate, assertTermsInPlan, featuresUsedBy, planViolations } from './plan-gates.js';
import type { Terms } from './terms.js';
import { PLAN_TIERS, featuresOf, tierRank, type Feature, type PlanTier } from './tiers.js';
import { validateTerms } from './validate-terms.js';

const norm = (t: Terms) => validateTerms(t, { currency: CURRENCY });
const sgd = (amountMinor: bigint) => ({ currencyCode: CURRENCY, amountMinor });

/** One definition per gated feature, each using only that feature above BASIC. */
const gated: Array<[Feature, Terms]> = [
  ['SOFT_EXPIRY', basicTerms({ expiry: { ...basicTerms().expiry!, mode: 'SOFT', graceDays: 7 } })],
  ['BONUS_SESSIONS', basicTerms({ bonusSessions: 1 })],
  ['TRANSFER', basicTerms({ transfer: { scope: 'HOUSEHOLD', maxTransfers: 1, undoWindowHours: 0 } })],
  ['SHARING', basicTerms({ sharing: { householdPool: true, maxMembers: 4, perMemberSessionCap: 0 } })],
  ['TOP_UP', basicTerms({ topUp: { enabled: true, pricePerSession: sgd(4500n), extendExpiryDays: 0 } })],
  ['UPGRADE', basicTerms({ upgrade: { targetDefinitionIds: ['d-gold'] } })],
  ['REVENUE_DEFERRAL', basicTerms({ expectedBreakageBps: 1500 })],
  ['PROFIT_REPORTING', basicTerms({ deliveryCostPerSession: sgd(1200n) })],
  ['PROFIT_REPORTING', basicTerms({ deliveryCostByBranch: [{ branchId: 'branch-1', costPerSession: sgd(1200n) }] })],
  ['MULTI_BRANCH', basicTerms({ branches: { allBranches: true, branchIds: [] } })],
  ['MULTI_BRANCH', basicTerms({ branches: { allBranches: false, branchIds: ['b1', 'b2'] } })],
  [
    'CUSTOM_EXPIRY_RULES',
    basicTerms({ expiry: { ...basicTerms().expiry!, anchor: 'UNSPECIFIED', durationMonths: 0, customRule: { case: 'daysAfterLastUse', value: 30 } } }),
  ],
  ['REFUNDS', basicTerms({ refund: { method: 'PRO_RATA', refundWindowDays: 30 } })],
  ['REFUNDS', basicTerms({ standalonePricePerSession: sgd(6000n), refund: { method: 'USED_AT_STANDALONE_PRICE', refundWindowDays: 0 } })],
];

describe('plan gates on definitions', () => {
  it('BASIC terms pass at every tier', () => {
    for (const tier of PLAN_TIERS) expect(() => assertTermsInPlan(tier, norm(basicTerms()))).not.toThrow();
  });

  it.each(gated)('%s is refused below its tier and allowed from it', (feature, terms) => {
    const t = norm(terms);
    const lowest = PLAN_TIERS.find((tier) => featuresOf(tier).includes(feature))!;
    for (const tier of PLAN_TIERS) {
      if (tierRank(tier) < tierRank(lowest)) {
        expect(() => assertTermsInPlan(tier, t)).toThrow(`feature ${feature} needs plan tier ${lowest} (tenant is ${tier})`);
      } else {
        expect(() => assertTermsInPlan(tier, t)).not.toThrow();
      }
    }
  });

  it('names the field that uses the feature', () => {
    expect(() => assertTermsInPlan('BASIC', norm(basicTerms({ bonusSessions: 1 })))).toThrow(
      'feature BONUS_SESSIONS needs plan tier ADVANCED (tenant is BASIC): terms.bonus_sessions is 1',
    );
  });

  it('reports the lowest missing tier first', () => {
    const t = norm(basicTerms({ bonusSessions: 2, refund: { method: 'PRO_RATA', refundWindowDays: 0 } }));
    expect(planViolations('BASIC', t).map((v) => v.feature)).toEqual(['BONUS_SESSIONS', 'REFUNDS']);
  });

  it('ENTERPRISE allows every valid definition; a tier allows terms exactly when it has every feature they use', () => {
    fc.assert(
      fc.property(validTerms, fc.constantFrom<PlanTier>(...PLAN_TIERS), (terms, tier) => {
        const t = norm(terms);
        expect(planViolations('ENTERPRISE', t)).toEqual([]);
        const allowed = featuresOf(tier);
        expect(planViolations(tier, t).length === 0).toBe(featuresUsedBy(t).every((u) => allowed.includes(u.feature)));
      }),
    );
  });

  it('raising the tier never adds violations', () => {
    fc.assert(
      fc.property(validTerms, (terms) => {
        const t = norm(terms);
        const counts = PLAN_TIERS.map((tier) => planViolations(tier, t).length);
        for (let i = 1; i < counts.length; i++) expect(counts[i]).toBeLessThanOrEqual(counts[i - 1]!);
      }),
    );
  });
});

describe('one active package type on BASIC', () => {
  it('refuses a second active definition below ADVANCED', () => {
    expect(() => assertCanActivate('BASIC', ['TEN-PACK'])).toThrow(
      'feature MULTI_PACKAGE needs plan tier ADVANCED (tenant is BASIC): definition "TEN-PACK" is already active and BASIC allows one active package type',
    );
    expect(() => assertCanActivate('BASIC', [])).not.toThrow();
    expect(() => assertCanActivate('ADVANCED', ['A', 'B'])).not.toThrow();
  });
});
