import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CURRENCY, basicTerms, validTerms } from '../../test/support/arbitraries.js';
import { ValidationFailed } from './errors.js';
import type { ExpiryPolicy, ExpiryRule, Terms } from './terms.js';
import { referenceViolations, validateTerms } from './validate-terms.js';

const ctx = { currency: CURRENCY };

function problems(terms: Terms, definitionId?: string): string[] {
  try {
    validateTerms(terms, { ...ctx, definitionId });
    return [];
  } catch (err) {
    if (!(err instanceof ValidationFailed)) throw err;
    return err.violations.map((v) => `${v.field}: ${v.reason}`);
  }
}

const expiry = (e: Partial<ExpiryPolicy>): Terms => basicTerms({ expiry: { ...basicTerms().expiry!, ...e } });
const rule = (r: ExpiryRule): Terms => expiry({ anchor: 'UNSPECIFIED', durationMonths: 0, customRule: r });

describe('validateTerms', () => {
  it('normalizes defaults', () => {
    const t = validateTerms(basicTerms(), ctx);
    expect(t.sessionOrder).toBe('PAID_FIRST');
    expect(t.transfer).toEqual({ scope: 'NONE', maxTransfers: 0, undoWindowHours: 0 });
    expect(t.sharing).toEqual({ householdPool: false, maxMembers: 0, perMemberSessionCap: 0 });
    expect(t.refund).toEqual({ method: 'NON_REFUNDABLE', adminFee: undefined, refundWindowDays: 0 });
    expect(t.topUp).toEqual({ enabled: false, pricePerSession: undefined, extendExpiryDays: 0 });
    expect(t.upgrade).toEqual({ targetDefinitionIds: [] });
    expect(validateTerms(expiry({ mode: 'UNSPECIFIED' }), ctx).expiry?.mode).toBe('HARD');
  });

  it('names the field of each basic problem', () => {
    expect(problems(basicTerms({ price: { currencyCode: CURRENCY, amountMinor: -1n } }))).toEqual(['terms.price.amount_minor: must not be negative']);
    expect(problems(basicTerms({ paidSessions: 0 }))).toEqual(['terms.paid_sessions: must be at least 1']);
    expect(problems(basicTerms({ bonusSessions: -2 }))).toEqual(['terms.bonus_sessions: must not be negative']);
    expect(problems(basicTerms({ price: { currencyCode: 'MYR', amountMinor: 1n } }))).toEqual([
      'terms.price.currency_code: must equal the tenant currency SGD (got MYR)',
    ]);
    expect(problems(basicTerms({ price: undefined }))).toEqual(['terms.price: required']);
    expect(problems(basicTerms({ code: '' }))).toEqual(['terms.code: required']);
    expect(problems(basicTerms({ code: 'a b' }))[0]).toMatch(/^terms\.code: /);
    expect(problems(basicTerms({ name: '  ' }))).toEqual(['terms.name: required']);
    expect(problems(basicTerms({ serviceCodes: [] }))).toEqual(['terms.service_codes: list at least one service code a session covers']);
    expect(problems(basicTerms({ serviceCodes: ['A', 'A'] }))).toEqual(['terms.service_codes[1]: duplicate "A"']);
    expect(problems(basicTerms({ expectedBreakageBps: 10_001 }))).toEqual(['terms.expected_breakage_bps: must be at most 10000']);
  });

  it('reports every problem at once', () => {
    expect(problems(basicTerms({ paidSessions: 0, price: { currencyCode: CURRENCY, amountMinor: -5n } }))).toEqual([
      'terms.price.amount_minor: must not be negative',
      'terms.paid_sessions: must be at least 1',
    ]);
  });

  it('checks the expiry policy shape', () => {
    expect(problems(expiry({ graceDays: 7 }))).toEqual(['terms.expiry.grace_days: grace needs SOFT expiry mode']);
    expect(problems(expiry({ mode: 'SOFT' }))).toEqual(['terms.expiry.grace_days: SOFT expiry needs at least 1 grace day']);
    expect(problems(expiry({ durationDays: 30 }))).toEqual(['terms.expiry.duration_months: set duration_days or duration_months, not both']);
    expect(problems(expiry({ durationMonths: 0 }))).toEqual(['terms.expiry.duration_days: set duration_days or duration_months for anchor PURCHASE']);
    expect(problems(expiry({ anchor: 'UNSPECIFIED' }))[0]).toMatch(/^terms\.expiry\.anchor: required/);
    expect(problems(expiry({ anchor: 'FIXED_DATE', durationMonths: 0, fixedDate: '2025-02-30' }))).toEqual([
      'terms.expiry.fixed_date: must be a calendar date YYYY-MM-DD for anchor FIXED_DATE (got "2025-02-30")',
    ]);
    expect(problems(expiry({ anchor: 'FIXED_DATE', fixedDate: '2025-12-31' }))).toEqual(['terms.expiry.duration_months: must be unset for anchor FIXED_DATE']);
    expect(problems(expiry({ fixedDate: '2025-12-31' }))).toEqual(['terms.expiry.fixed_date: only for anchor FIXED_DATE']);
    expect(problems(expiry({ freezeExtendsExpiry: true }))).toEqual(['terms.expiry.freeze_extends_expiry: needs max_freeze_days above 0']);
    expect(problems(expiry({ reminderOffsetsDays: [14, 0] }))).toEqual(['terms.expiry.reminder_offsets_days[1]: must be at least 1']);
    expect(validateTerms(expiry({ reminderOffsetsDays: [3, 14, 7] }), ctx).expiry?.reminderOffsetsDays).toEqual([14, 7, 3]);
  });

  it('checks custom rule structure', () => {
    expect(problems(rule({ case: 'whicheverEarlier', value: [{ case: 'daysAfterLastUse', value: 30 }, { case: 'daysAfterPurchase', value: 180 }] }))).toEqual([]);
    expect(problems(rule({ case: undefined }))[0]).toMatch(/^terms\.expiry\.custom_rule: choose a rule kind/);
    expect(problems(rule({ case: 'whicheverLater', value: [{ case: 'daysAfterFirstUse', value: 10 }] }))).toEqual([
      'terms.expiry.custom_rule.whichever_later.rules: must combine at least 2 rules',
    ]);
    expect(
      problems(rule({ case: 'whicheverEarlier', value: [{ case: 'daysAfterLastUse', value: 0 }, { case: 'fixedDate', value: 'soon' }] })),
    ).toEqual([
      'terms.expiry.custom_rule.whichever_earlier.rules[0].days_after_last_use: must be at least 1',
      'terms.expiry.custom_rule.whichever_earlier.rules[1].fixed_date: must be a calendar date YYYY-MM-DD (got "soon")',
    ]);
    expect(problems(expiry({ customRule: { case: 'daysAfterPurchase', value: 30 } }))).toEqual([
      'terms.expiry.anchor: must be unset when custom_rule decides the expiry',
      'terms.expiry.duration_months: must be unset when custom_rule decides the expiry',
    ]);
    let deep: ExpiryRule = { case: 'daysAfterPurchase', value: 1 };
    for (let i = 0; i < 5; i++) deep = { case: 'whicheverLater', value: [deep, { case: 'daysAfterPurchase', value: 2 }] };
    expect(problems(rule(deep))).toContain('terms.expiry.custom_rule.whichever_later.rules[0].whichever_later.rules[0].whichever_later.rules[0].whichever_later.rules: custom rules nest at most 4 levels');
  });

  it('checks policy combinations', () => {
    expect(problems(basicTerms({ transfer: { scope: 'NONE', maxTransfers: 2, undoWindowHours: 0 } }))).toEqual([
      'terms.transfer.max_transfers: needs transfer scope HOUSEHOLD or ANYONE',
    ]);
    expect(problems(basicTerms({ sharing: { householdPool: false, maxMembers: 3, perMemberSessionCap: 0 } }))).toEqual([
      'terms.sharing.max_members: needs household_pool',
    ]);
    expect(problems(basicTerms({ sharing: { householdPool: true, maxMembers: 0, perMemberSessionCap: 11 } }))).toEqual([
      "terms.sharing.per_member_session_cap: must not exceed the package's 10 sessions",
    ]);
    expect(problems(basicTerms({ branches: undefined }))).toEqual(['terms.branches: set all_branches or list at least one branch_id']);
    expect(problems(basicTerms({ branches: { allBranches: true, branchIds: ['b'] } }))).toEqual([
      'terms.branches.branch_ids: must be empty when all_branches is set',
    ]);
    expect(problems(basicTerms({ refund: { method: 'USED_AT_STANDALONE_PRICE', refundWindowDays: 0 } }))).toEqual([
      'terms.standalone_price_per_session: required for refund method USED_AT_STANDALONE_PRICE',
    ]);
    expect(problems(basicTerms({ refund: { method: 'NON_REFUNDABLE', refundWindowDays: 14 } }))).toEqual([
      'terms.refund.refund_window_days: needs a refund method other than NON_REFUNDABLE',
    ]);
    expect(problems(basicTerms({ refund: { method: 'PRO_RATA', adminFee: { currencyCode: CURRENCY, amountMinor: 60_000n }, refundWindowDays: 0 } }))).toEqual([
      'terms.refund.admin_fee.amount_minor: must not exceed the price',
    ]);
    expect(problems(basicTerms({ topUp: { enabled: true, extendExpiryDays: 0 } }))).toEqual(['terms.top_up.price_per_session: required']);
    expect(problems(basicTerms({ topUp: { enabled: false, extendExpiryDays: 30 } }))).toEqual(['terms.top_up.extend_expiry_days: needs top_up.enabled']);
    expect(problems(basicTerms({ upgrade: { targetDefinitionIds: ['d1'] } }), 'd1')).toEqual([
      'terms.upgrade.target_definition_ids[0]: a definition cannot be its own upgrade target',
    ]);
    expect(
      problems(basicTerms({ deliveryCostByBranch: [{ branchId: 'b1', costPerSession: { currencyCode: 'USD', amountMinor: 5n } }] })),
    ).toEqual(['terms.delivery_cost_by_branch[0].cost_per_session.currency_code: must equal the tenant currency SGD (got USD)']);
  });

  it('finds references to unknown branches and definitions', () => {
    const terms = basicTerms({
      branches: { allBranches: false, branchIds: ['b1', 'b2'] },
      deliveryCostByBranch: [{ branchId: 'b3', costPerSession: { currencyCode: CURRENCY, amountMinor: 1n } }],
      upgrade: { targetDefinitionIds: ['d1', 'd2'] },
    });
    expect(referenceViolations(terms, { branches: new Set(['b1']), definitions: new Set(['d2']) })).toEqual([
      { field: 'terms.branches.branch_ids[1]', reason: 'unknown branch "b2"' },
      { field: 'terms.delivery_cost_by_branch[0].branch_id', reason: 'unknown branch "b3"' },
      { field: 'terms.upgrade.target_definition_ids[0]', reason: 'unknown definition "d1"' },
    ]);
  });

  it('accepts every generated valid definition, and normalizing is idempotent', () => {
    fc.assert(
      fc.property(validTerms, (terms) => {
        const once = validateTerms(terms, ctx);
        expect(validateTerms(once, ctx)).toEqual(once);
      }),
    );
  });

  it('rejects any negative price, naming terms.price.amount_minor', () => {
    fc.assert(
      fc.property(validTerms, fc.bigInt({ min: -(10n ** 12n), max: -1n }), (terms, amount) => {
        const p = problems({ ...terms, price: { currencyCode: CURRENCY, amountMinor: amount } });
        expect(p).toContain('terms.price.amount_minor: must not be negative');
      }),
    );
  });

  it('rejects any amount in another currency, naming its field', () => {
    fc.assert(
      fc.property(validTerms, fc.constantFrom('USD', 'MYR', 'EUR'), (terms, currency) => {
        expect(problems({ ...terms, price: { currencyCode: currency, amountMinor: 1n } })).toContain(
          `terms.price.currency_code: must equal the tenant currency SGD (got ${currency})`,
        );
      }),
    );
  });

  it('rejects grace on any HARD policy', () => {
    fc.assert(
      fc.property(validTerms, fc.integer({ min: 1, max: 365 }), (terms, grace) => {
        fc.pre(terms.expiry !== undefined);
        const p = problems({ ...terms, expiry: { ...terms.expiry!, mode: 'HARD', graceDays: grace } });
        expect(p).toContain('terms.expiry.grace_days: grace needs SOFT expiry mode');
      }),
    );
  });
});
