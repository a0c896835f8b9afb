import { addDays, addMonths, compareDates, formatDate, parseDate, type LocalDate } from './calendar.js';
import type { ExpiryRule } from './policy.js';

/** What a custom rule reads: local dates in the purchase branch's zone. */
export interface RuleFacts {
  readonly purchaseDate: LocalDate;
  /** Unset until the first session is used. */
  readonly firstUseDate?: LocalDate;
  /** Unset until a session is used. */
  readonly lastUseDate?: LocalDate;
}

/** The last local date the entitlement is usable, or `NEVER` (no deadline has started yet). */
export type RuleDate = LocalDate | typeof NEVER;
export const NEVER = 'never' as const;

/**
 * Evaluates a custom rule to the last usable local date.
 *
 * - `days_after_first_use` has not started before the first use: it is `NEVER` until then, so
 *   whichever-earlier ignores it and whichever-later waits for it.
 * - `days_after_last_use` counts from the purchase until the first use ("N days of inactivity").
 * - The result is never before the purchase date.
 */
export function evaluateRule(rule: ExpiryRule, facts: RuleFacts): RuleDate {
  const date = evaluate(rule, facts);
  return date === NEVER || compareDates(date, facts.purchaseDate) >= 0 ? date : facts.purchaseDate;
}

function evaluate(rule: ExpiryRule, facts: RuleFacts): RuleDate {
  switch (rule.kind) {
    case 'daysAfterPurchase':
      return addDays(facts.purchaseDate, nonNegative(rule.days));
    case 'monthsAfterPurchase':
      return addMonths(facts.purchaseDate, nonNegative(rule.months));
    case 'daysAfterFirstUse':
      return facts.firstUseDate ? addDays(facts.firstUseDate, nonNegative(rule.days)) : NEVER;
    case 'daysAfterLastUse':
      return addDays(facts.lastUseDate ?? facts.purchaseDate, nonNegative(rule.days));
    case 'fixedDate':
      return parseDate(rule.date) ?? NEVER;
    case 'whicheverLater':
      // An empty combination has no deadline (validation refuses it anyway).
      return rule.rules.length === 0 ? NEVER : rule.rules.map((r) => evaluate(r, facts)).reduce(later);
    case 'whicheverEarlier':
      return rule.rules.map((r) => evaluate(r, facts)).reduce<RuleDate>(earlier, NEVER);
  }
}

export function later(a: RuleDate, b: RuleDate): RuleDate {
  if (a === NEVER || b === NEVER) return NEVER;
  return compareDates(a, b) >= 0 ? a : b;
}

export function earlier(a: RuleDate, b: RuleDate): RuleDate {
  if (a === NEVER) return b;
  if (b === NEVER) return a;
  return compareDates(a, b) <= 0 ? a : b;
}

/** Whether the rule reads the use dates (so each consume may move the expiry). */
export function dependsOnUse(rule: ExpiryRule): boolean {
  switch (rule.kind) {
    case 'daysAfterFirstUse':
    case 'daysAfterLastUse':
      return true;
    case 'whicheverLater':
    case 'whicheverEarlier':
      return rule.rules.some(dependsOnUse);
    default:
      return false;
  }
}

function nonNegative(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.trunc(n) : 0;
}

export const MAX_RULE_DEPTH = 4;
export const MAX_RULE_NODES = 32;
/** About 100 years: anything longer is a typo, not a package. */
export const MAX_RULE_DAYS = 36_600;
export const MAX_RULE_MONTHS = 1_200;

export interface RuleProblem {
  /** Where in the rule, e.g. `custom_rule.whichever_earlier.rules[1].days_after_last_use`. */
  readonly field: string;
  readonly reason: string;
}

/** Problems that make a rule unusable (the catalogue refuses them at publish; the scheduler re-checks). */
export function validateRule(rule: ExpiryRule, field = 'custom_rule'): RuleProblem[] {
  const problems: RuleProblem[] = [];
  let nodes = 0;
  const visit = (r: ExpiryRule, path: string, depth: number) => {
    nodes += 1;
    const amount = (name: string, value: number, max: number) => {
      if (!Number.isInteger(value) || value < 0 || value > max) {
        problems.push({ field: `${path}.${name}`, reason: `must be a whole number from 0 to ${max}, got ${value}` });
      }
    };
    switch (r.kind) {
      case 'daysAfterPurchase':
        return amount('days_after_purchase', r.days, MAX_RULE_DAYS);
      case 'monthsAfterPurchase':
        return amount('months_after_purchase', r.months, MAX_RULE_MONTHS);
      case 'daysAfterFirstUse':
        return amount('days_after_first_use', r.days, MAX_RULE_DAYS);
      case 'daysAfterLastUse':
        return amount('days_after_last_use', r.days, MAX_RULE_DAYS);
      case 'fixedDate': {
        const d = parseDate(r.date);
        if (!d || formatDate(d) !== r.date) problems.push({ field: `${path}.fixed_date`, reason: `must be a calendar date YYYY-MM-DD, got ${JSON.stringify(r.date)}` });
        return;
      }
      case 'whicheverLater':
      case 'whicheverEarlier': {
        const name = r.kind === 'whicheverLater' ? 'whichever_later' : 'whichever_earlier';
        if (depth >= MAX_RULE_DEPTH) {
          problems.push({ field: `${path}.${name}`, reason: `rules nest at most ${MAX_RULE_DEPTH} deep` });
          return;
        }
        if (r.rules.length < 2) problems.push({ field: `${path}.${name}.rules`, reason: 'must combine at least two rules' });
        r.rules.forEach((child, i) => visit(child, `${path}.${name}.rules[${i}]`, depth + 1));
        return;
      }
    }
  };
  visit(rule, field, 0);
  if (nodes > MAX_RULE_NODES) problems.push({ field, reason: `at most ${MAX_RULE_NODES} rules in all, got ${nodes}` });
  return problems;
}
