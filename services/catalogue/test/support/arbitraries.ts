import fc from 'fast-check';
import type { ExpiryPolicy, ExpiryRule, Money, Terms } from '../../src/domain/terms.js';

export const CURRENCY = 'SGD';

export const money = (currency = CURRENCY, max = 10_000_000n): fc.Arbitrary<Money> =>
  fc.bigInt({ min: 0n, max }).map((amountMinor) => ({ currencyCode: currency, amountMinor }));

export const code = fc.stringMatching(/^[A-Z0-9][A-Z0-9_-]{0,15}$/);

const leafRule: fc.Arbitrary<ExpiryRule> = fc.oneof(
  fc.integer({ min: 1, max: 3650 }).map((value) => ({ case: 'daysAfterPurchase' as const, value })),
  fc.integer({ min: 1, max: 120 }).map((value) => ({ case: 'monthsAfterPurchase' as const, value })),
  fc.integer({ min: 1, max: 3650 }).map((value) => ({ case: 'daysAfterFirstUse' as const, value })),
  fc.integer({ min: 1, max: 3650 }).map((value) => ({ case: 'daysAfterLastUse' as const, value })),
  fc.date({ min: new Date('2020-01-01'), max: new Date('2040-12-31'), noInvalidDate: true }).map((d) => ({
    case: 'fixedDate' as const,
    value: d.toISOString().slice(0, 10),
  })),
);

/** Valid custom rules: at most 3 levels, 2..3 rules per list. */
export const expiryRule: fc.Arbitrary<ExpiryRule> = fc.letrec<{ rule: ExpiryRule }>((tie) => ({
  rule: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leafRule,
    fc.record({
      case: fc.constantFrom('whicheverLater' as const, 'whicheverEarlier' as const),
      value: fc.array(tie('rule'), { minLength: 2, maxLength: 3 }),
    }),
  ),
})).rule.filter((r) => depth(r) <= 3);

function depth(r: ExpiryRule): number {
  return r.case === 'whicheverLater' || r.case === 'whicheverEarlier' ? 1 + Math.max(...r.value.map(depth)) : 1;
}

export const expiryPolicy: fc.Arbitrary<ExpiryPolicy> = fc
  .record({
    shape: fc.constantFrom('days', 'months', 'fixed', 'custom'),
    anchor: fc.constantFrom('PURCHASE' as const, 'FIRST_USE' as const),
    days: fc.integer({ min: 1, max: 3650 }),
    months: fc.integer({ min: 1, max: 120 }),
    soft: fc.boolean(),
    graceDays: fc.integer({ min: 1, max: 365 }),
    rolling: fc.integer({ min: 0, max: 365 }),
    maxFreezeDays: fc.integer({ min: 0, max: 90 }),
    freezeExtends: fc.boolean(),
    customRule: expiryRule,
    reminders: fc.uniqueArray(fc.integer({ min: 1, max: 60 }), { maxLength: 4 }),
  })
  .map((r) => ({
    anchor: r.shape === 'custom' ? 'UNSPECIFIED' : r.shape === 'fixed' ? 'FIXED_DATE' : r.anchor,
    durationDays: r.shape === 'days' ? r.days : 0,
    durationMonths: r.shape === 'months' ? r.months : 0,
    fixedDate: r.shape === 'fixed' ? '2030-06-30' : '',
    mode: r.soft ? 'SOFT' : 'HARD',
    graceDays: r.soft ? r.graceDays : 0,
    rollingExtensionDays: r.rolling,
    maxFreezeDays: r.maxFreezeDays,
    freezeExtendsExpiry: r.maxFreezeDays > 0 && r.freezeExtends,
    customRule: r.shape === 'custom' ? r.customRule : undefined,
    reminderOffsetsDays: r.reminders,
  }));

/** Terms that validate for a tenant in {@link CURRENCY}, using any feature. */
export const validTerms: fc.Arbitrary<Terms> = fc
  .record({
    code,
    name: fc.string({ minLength: 1, maxLength: 40 }).filter((s) => s.trim() !== ''),
    price: money(),
    paidSessions: fc.integer({ min: 1, max: 100 }),
    bonusSessions: fc.integer({ min: 0, max: 10 }),
    serviceCodes: fc.uniqueArray(code, { minLength: 1, maxLength: 3 }),
    standalone: fc.option(money(), { nil: undefined }),
    deliveryCost: fc.option(money(), { nil: undefined }),
    expiry: fc.option(expiryPolicy, { nil: undefined }),
    transferScope: fc.constantFrom('NONE' as const, 'HOUSEHOLD' as const, 'ANYONE' as const),
    maxTransfers: fc.integer({ min: 0, max: 5 }),
    pool: fc.boolean(),
    branchIds: fc.uniqueArray(fc.uuid(), { maxLength: 3 }),
    refund: fc.constantFrom('PRO_RATA' as const, 'USED_AT_STANDALONE_PRICE' as const, 'NON_REFUNDABLE' as const),
    upgradeTargets: fc.uniqueArray(fc.uuid(), { maxLength: 2 }),
    topUp: fc.boolean(),
    breakage: fc.integer({ min: 0, max: 10_000 }),
    priority: fc.integer({ min: 0, max: 100 }),
    order: fc.constantFrom('PAID_FIRST' as const, 'BONUS_FIRST' as const),
  })
  .map((r) => ({
    code: r.code,
    name: r.name.trim(),
    description: '',
    price: r.price,
    paidSessions: r.paidSessions,
    bonusSessions: r.bonusSessions,
    serviceCodes: r.serviceCodes,
    standalonePricePerSession: r.refund === 'USED_AT_STANDALONE_PRICE' ? (r.standalone ?? { currencyCode: CURRENCY, amountMinor: 1000n }) : r.standalone,
    deliveryCostPerSession: r.deliveryCost,
    deliveryCostByBranch: [],
    expiry: r.expiry,
    transfer: { scope: r.transferScope, maxTransfers: r.transferScope === 'NONE' ? 0 : r.maxTransfers, undoWindowHours: 0 },
    sharing: { householdPool: r.pool, maxMembers: 0, perMemberSessionCap: 0 },
    branches: r.branchIds.length === 0 ? { allBranches: true, branchIds: [] } : { allBranches: false, branchIds: r.branchIds },
    refund: { method: r.refund, adminFee: undefined, refundWindowDays: 0 },
    upgrade: { targetDefinitionIds: r.upgradeTargets },
    topUp: { enabled: r.topUp, pricePerSession: r.topUp ? { currencyCode: CURRENCY, amountMinor: 2500n } : undefined, extendExpiryDays: 0 },
    expectedBreakageBps: r.breakage,
    redemptionPriority: r.priority,
    sessionOrder: r.order,
  }));

/** Minimal valid terms a BASIC tenant may publish. */
export function basicTerms(overrides: Partial<Terms> = {}): Terms {
  return {
    code: 'TEN-PACK',
    name: '10-session pass',
    description: '',
    price: { currencyCode: CURRENCY, amountMinor: 50_000n },
    paidSessions: 10,
    bonusSessions: 0,
    serviceCodes: ['CHIRO_ADJUST'],
    deliveryCostByBranch: [],
    expiry: {
      anchor: 'PURCHASE',
      durationDays: 0,
      durationMonths: 6,
      fixedDate: '',
      mode: 'HARD',
      graceDays: 0,
      rollingExtensionDays: 0,
      maxFreezeDays: 0,
      freezeExtendsExpiry: false,
      reminderOffsetsDays: [],
    },
    branches: { allBranches: false, branchIds: ['branch-1'] },
    expectedBreakageBps: 0,
    redemptionPriority: 0,
    sessionOrder: 'UNSPECIFIED',
    ...overrides,
  };
}
