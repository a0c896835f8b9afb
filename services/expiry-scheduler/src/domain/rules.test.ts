import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { addDays, compareDates, formatDate, fromEpochDay, parseDate, toEpochDay, type LocalDate } from './calendar.js';
import type { ExpiryRule } from './policy.js';
import { dependsOnUse, evaluateRule, NEVER, validateRule, type RuleDate, type RuleFacts } from './rules.js';

const d = (s: string): LocalDate => parseDate(s) ?? expect.fail(`bad date ${s}`);
const show = (r: RuleDate) => (r === NEVER ? NEVER : formatDate(r));
/** NEVER sorts after every date. */
const cmp = (a: RuleDate, b: RuleDate) => (a === NEVER ? (b === NEVER ? 0 : 1) : b === NEVER ? -1 : compareDates(a, b));

const purchase = d('2025-01-31');
const facts = (over: Partial<RuleFacts> = {}): RuleFacts => ({ purchaseDate: purchase, ...over });

describe('custom expiry rules', () => {
  it('evaluates each kind', () => {
    expect(show(evaluateRule({ kind: 'daysAfterPurchase', days: 30 }, facts()))).toBe('2025-03-02');
    expect(show(evaluateRule({ kind: 'monthsAfterPurchase', months: 1 }, facts()))).toBe('2025-02-28');
    expect(show(evaluateRule({ kind: 'daysAfterFirstUse', days: 10 }, facts()))).toBe(NEVER);
    expect(show(evaluateRule({ kind: 'daysAfterFirstUse', days: 10 }, facts({ firstUseDate: d('2025-02-05') })))).toBe('2025-02-15');
    expect(show(evaluateRule({ kind: 'daysAfterLastUse', days: 30 }, facts()))).toBe('2025-03-02');
    expect(show(evaluateRule({ kind: 'daysAfterLastUse', days: 30 }, facts({ lastUseDate: d('2025-03-01') })))).toBe('2025-03-31');
    expect(show(evaluateRule({ kind: 'fixedDate', date: '2025-12-31' }, facts()))).toBe('2025-12-31');
  });

  it('"30 days after the last visit, never beyond 180 days after purchase"', () => {
    const rule: ExpiryRule = {
      kind: 'whicheverEarlier',
      rules: [
        { kind: 'daysAfterLastUse', days: 30 },
        { kind: 'daysAfterPurchase', days: 180 },
      ],
    };
    expect(show(evaluateRule(rule, facts()))).toBe('2025-03-02');
    expect(show(evaluateRule(rule, facts({ lastUseDate: d('2025-04-10') })))).toBe('2025-05-10');
    // Capped at purchase + 180 = 2025-07-30.
    expect(show(evaluateRule(rule, facts({ lastUseDate: d('2025-07-20') })))).toBe('2025-07-30');
  });

  it('whichever-later waits for a first use that has not happened', () => {
    const rule: ExpiryRule = {
      kind: 'whicheverLater',
      rules: [
        { kind: 'daysAfterPurchase', days: 90 },
        { kind: 'daysAfterFirstUse', days: 60 },
      ],
    };
    expect(show(evaluateRule(rule, facts()))).toBe(NEVER);
    expect(show(evaluateRule(rule, facts({ firstUseDate: d('2025-02-01') })))).toBe('2025-05-01');
    expect(show(evaluateRule(rule, facts({ firstUseDate: d('2025-04-01') })))).toBe('2025-05-31');
  });

  it('is never before the purchase', () => {
    expect(show(evaluateRule({ kind: 'fixedDate', date: '2024-12-31' }, facts()))).toBe('2025-01-31');
  });

  it('knows which rules read use dates', () => {
    expect(dependsOnUse({ kind: 'daysAfterPurchase', days: 1 })).toBe(false);
    expect(dependsOnUse({ kind: 'whicheverEarlier', rules: [{ kind: 'fixedDate', date: '2025-01-01' }, { kind: 'daysAfterLastUse', days: 3 }] })).toBe(true);
  });
});

const day = fc.integer({ min: toEpochDay(d('2020-01-01')), max: toEpochDay(d('2030-12-31')) });

const ruleArb: fc.Arbitrary<ExpiryRule> = fc.letrec<{ rule: ExpiryRule }>((tie) => ({
  rule: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.integer({ min: 0, max: 800 }).map((days) => ({ kind: 'daysAfterPurchase' as const, days })),
    fc.integer({ min: 0, max: 36 }).map((months) => ({ kind: 'monthsAfterPurchase' as const, months })),
    fc.integer({ min: 0, max: 400 }).map((days) => ({ kind: 'daysAfterFirstUse' as const, days })),
    fc.integer({ min: 0, max: 400 }).map((days) => ({ kind: 'daysAfterLastUse' as const, days })),
    day.map((n) => ({ kind: 'fixedDate' as const, date: formatDate(fromEpochDay(n)) })),
    fc.array(tie('rule'), { minLength: 1, maxLength: 3 }).map((rules) => ({ kind: 'whicheverLater' as const, rules })),
    fc.array(tie('rule'), { minLength: 1, maxLength: 3 }).map((rules) => ({ kind: 'whicheverEarlier' as const, rules })),
  ),
})).rule;

/** Purchase, then (maybe) a first use, then (maybe) a last use at or after it. */
const factsArb = fc
  .record({
    purchase: day,
    firstGap: fc.option(fc.integer({ min: 0, max: 400 })),
    lastGap: fc.integer({ min: 0, max: 400 }),
  })
  .map(({ purchase, firstGap, lastGap }): RuleFacts => {
    const purchaseDate = fromEpochDay(purchase);
    if (firstGap === null) return { purchaseDate };
    const firstUseDate = addDays(purchaseDate, firstGap);
    return { purchaseDate, firstUseDate, lastUseDate: addDays(firstUseDate, lastGap) };
  });

describe('custom expiry rule properties', () => {
  it('whichever-earlier is at or before each operand, whichever-later at or after', () => {
    fc.assert(
      fc.property(fc.array(ruleArb, { minLength: 1, maxLength: 4 }), factsArb, (rules, f) => {
        const earliest = evaluateRule({ kind: 'whicheverEarlier', rules }, f);
        const latest = evaluateRule({ kind: 'whicheverLater', rules }, f);
        for (const r of rules) {
          const operand = evaluateRule(r, f);
          expect(cmp(earliest, operand)).toBeLessThanOrEqual(0);
          expect(cmp(latest, operand)).toBeGreaterThanOrEqual(0);
        }
      }),
    );
  });

  it('is never before the purchase date', () => {
    fc.assert(
      fc.property(ruleArb, factsArb, (rule, f) => {
        expect(cmp(evaluateRule(rule, f), f.purchaseDate)).toBeGreaterThanOrEqual(0);
      }),
    );
  });

  it('is monotone in the last use: a later visit never brings expiry forward', () => {
    fc.assert(
      fc.property(ruleArb, day, fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 200 }), (rule, p, gap, used, more) => {
        const purchaseDate = fromEpochDay(p);
        const firstUseDate = addDays(purchaseDate, gap);
        const lastUseDate = addDays(firstUseDate, used);
        const a = evaluateRule(rule, { purchaseDate, firstUseDate, lastUseDate });
        const b = evaluateRule(rule, { purchaseDate, firstUseDate, lastUseDate: addDays(lastUseDate, more) });
        expect(cmp(a, b)).toBeLessThanOrEqual(0);
      }),
    );
  });

  it('is monotone in the first use: using earlier never pushes expiry later', () => {
    fc.assert(
      fc.property(ruleArb, day, fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 100 }), (rule, p, gap, more) => {
        const purchaseDate = fromEpochDay(p);
        const early = addDays(purchaseDate, gap);
        const late = addDays(early, more);
        // The same last use, so only the first use differs.
        const lastUseDate = addDays(late, 1);
        const a = evaluateRule(rule, { purchaseDate, firstUseDate: early, lastUseDate });
        const b = evaluateRule(rule, { purchaseDate, firstUseDate: late, lastUseDate });
        expect(cmp(a, b)).toBeLessThanOrEqual(0);
      }),
    );
  });

  it('does not depend on use dates when the rule does not read them', () => {
    fc.assert(
      fc.property(ruleArb, factsArb, (rule, f) => {
        fc.pre(!dependsOnUse(rule));
        expect(evaluateRule(rule, f)).toEqual(evaluateRule(rule, { purchaseDate: f.purchaseDate }));
      }),
    );
  });

  it('every generated rule with at least two operands per combination validates', () => {
    fc.assert(
      fc.property(ruleArb, (rule) => {
        const combos = (r: ExpiryRule): boolean =>
          r.kind === 'whicheverLater' || r.kind === 'whicheverEarlier' ? r.rules.length >= 2 && r.rules.every(combos) : true;
        const depth = (r: ExpiryRule): number =>
          r.kind === 'whicheverLater' || r.kind === 'whicheverEarlier' ? 1 + Math.max(...r.rules.map(depth)) : 0;
        const size = (r: ExpiryRule): number =>
          r.kind === 'whicheverLater' || r.kind === 'whicheverEarlier' ? 1 + r.rules.reduce((n, c) => n + size(c), 0) : 1;
        fc.pre(combos(rule) && depth(rule) <= 4 && size(rule) <= 32);
        expect(validateRule(rule)).toEqual([]);
      }),
    );
  });
});

describe('rule validation', () => {
  it('names the field at fault', () => {
    expect(validateRule({ kind: 'daysAfterPurchase', days: -1 })).toEqual([
      { field: 'custom_rule.days_after_purchase', reason: 'must be a whole number from 0 to 36600, got -1' },
    ]);
    expect(validateRule({ kind: 'whicheverEarlier', rules: [{ kind: 'fixedDate', date: '2025-02-30' }] })).toEqual([
      { field: 'custom_rule.whichever_earlier.rules', reason: 'must combine at least two rules' },
      { field: 'custom_rule.whichever_earlier.rules[0].fixed_date', reason: 'must be a calendar date YYYY-MM-DD, got "2025-02-30"' },
    ]);
  });

  it('limits nesting', () => {
    let rule: ExpiryRule = { kind: 'daysAfterPurchase', days: 1 };
    for (let i = 0; i < 5; i++) rule = { kind: 'whicheverLater', rules: [rule, { kind: 'daysAfterFirstUse', days: 1 }] };
    expect(validateRule(rule).map((p) => p.reason)).toContain('rules nest at most 4 deep');
  });
});
