import { isKnownCurrency } from '@punchcard/money';
import { canonicalTimeZone } from './calendar.js';
import { assertValid, RuleViolation, type Violation } from './errors.js';
import { PLAN_TIERS, featuresOf, type Feature, type PlanTier } from './tiers.js';
import { CODE, LIMITS } from './validate-terms.js';

export type EarningRule = 'DELIVERING_BRANCH' | 'PURCHASING_BRANCH';

export interface TenantFields {
  name: string;
  planTier: PlanTier;
  defaultCurrency: string;
  earningRule: EarningRule;
}

/** What a caller sent; empty / UNSPECIFIED means "not given". */
export interface TenantInput {
  name: string;
  planTier: PlanTier | 'UNSPECIFIED';
  defaultCurrency: string;
  earningRule: EarningRule | 'UNSPECIFIED';
}

export function newTenant(input: TenantInput): TenantFields {
  const v: Violation[] = [];
  if (input.name.trim() === '') v.push({ field: 'name', reason: 'required' });
  if (input.planTier === 'UNSPECIFIED') v.push({ field: 'plan_tier', reason: `required (one of ${PLAN_TIERS.join(', ')})` });
  if (input.defaultCurrency === '') v.push({ field: 'default_currency', reason: 'required (ISO 4217 code, e.g. SGD)' });
  v.push(...commonChecks(input));
  assertValid(v);
  return {
    name: input.name.trim(),
    planTier: input.planTier as PlanTier,
    defaultCurrency: input.defaultCurrency,
    earningRule: input.earningRule === 'UNSPECIFIED' ? 'DELIVERING_BRANCH' : input.earningRule,
  };
}

/**
 * Applies the given fields. The currency is fixed once the tenant has definitions: their prices are
 * in it, and sold entitlements carry it.
 */
export function updateTenant(current: TenantFields, input: TenantInput, state: { definitionCount: number }): TenantFields {
  assertValid(commonChecks(input));
  const next: TenantFields = {
    name: input.name.trim() === '' ? current.name : input.name.trim(),
    planTier: input.planTier === 'UNSPECIFIED' ? current.planTier : input.planTier,
    defaultCurrency: input.defaultCurrency === '' ? current.defaultCurrency : input.defaultCurrency,
    earningRule: input.earningRule === 'UNSPECIFIED' ? current.earningRule : input.earningRule,
  };
  if (next.defaultCurrency !== current.defaultCurrency && state.definitionCount > 0) {
    throw new RuleViolation(
      `default_currency cannot change from ${current.defaultCurrency} to ${next.defaultCurrency}: the tenant has ${state.definitionCount} package definition(s) priced in ${current.defaultCurrency}`,
    );
  }
  return next;
}

function commonChecks(input: TenantInput): Violation[] {
  const v: Violation[] = [];
  if (input.name.length > LIMITS.nameLength) v.push({ field: 'name', reason: `must be at most ${LIMITS.nameLength} characters` });
  if (input.defaultCurrency !== '' && !isKnownCurrency(input.defaultCurrency)) {
    v.push({ field: 'default_currency', reason: `unknown ISO 4217 currency ${JSON.stringify(input.defaultCurrency)}` });
  }
  return v;
}

/** The features a tenant has, for `Tenant.features`. */
export function tenantFeatures(tenant: Pick<TenantFields, 'planTier'>): Feature[] {
  return featuresOf(tenant.planTier);
}

export interface BranchFields {
  code: string;
  name: string;
  timeZone: string;
  active: boolean;
}

export interface BranchInput {
  code: string;
  name: string;
  timeZone: string;
}

export function newBranch(input: BranchInput): BranchFields {
  const v: Violation[] = [];
  if (input.code === '') v.push({ field: 'code', reason: 'required' });
  else if (input.code.length > LIMITS.codeLength || !CODE.test(input.code)) {
    v.push({ field: 'code', reason: `letters, digits, "_", "-" and "." only, at most ${LIMITS.codeLength} characters` });
  }
  if (input.name.trim() === '') v.push({ field: 'name', reason: 'required' });
  if (input.timeZone === '') v.push({ field: 'time_zone', reason: 'required (IANA time zone, e.g. Asia/Singapore)' });
  const zone = checkBranchText(v, input);
  assertValid(v);
  return { code: input.code, name: input.name.trim(), timeZone: zone!, active: true };
}

/** Empty name / time zone keep their value; `active` undefined keeps it. */
export function updateBranch(current: BranchFields, input: Omit<BranchInput, 'code'> & { active?: boolean | undefined }): BranchFields {
  const v: Violation[] = [];
  const zone = checkBranchText(v, input);
  assertValid(v);
  return {
    code: current.code,
    name: input.name.trim() === '' ? current.name : input.name.trim(),
    timeZone: zone ?? current.timeZone,
    active: input.active ?? current.active,
  };
}

function checkBranchText(v: Violation[], input: { name: string; timeZone: string }): string | undefined {
  if (input.name.length > LIMITS.nameLength) v.push({ field: 'name', reason: `must be at most ${LIMITS.nameLength} characters` });
  if (input.timeZone === '') return undefined;
  const zone = canonicalTimeZone(input.timeZone);
  if (!zone) v.push({ field: 'time_zone', reason: `unknown IANA time zone ${JSON.stringify(input.timeZone)}` });
  return zone;
}
