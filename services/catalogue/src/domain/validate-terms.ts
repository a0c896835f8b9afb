import { isCalendarDate } from './calendar.js';
import { assertValid, type Violation } from './errors.js';
import type {
  BranchPolicy,
  ExpiryPolicy,
  ExpiryRule,
  Money,
  NormalizedTerms,
  RefundPolicy,
  SharingPolicy,
  Terms,
  TopUpPolicy,
  TransferPolicy,
} from './terms.js';

/** Bounds that keep definitions sane; generous for real packages, tight enough to stop typos. */
export const LIMITS = {
  codeLength: 64,
  nameLength: 200,
  descriptionLength: 4000,
  sessions: 10_000,
  serviceCodes: 100,
  branchIds: 500,
  upgradeTargets: 50,
  reminders: 10,
  days: 3650,
  months: 120,
  graceDays: 365,
  undoWindowHours: 720,
  householdMembers: 100,
  breakageBps: 10_000,
  amountMinor: 1_000_000_000_000_000n,
  ruleDepth: 4,
  ruleNodes: 32,
} as const;

/** Codes (definition, service, branch) are short identifiers a POS can key on. */
export const CODE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export interface TermsContext {
  /** The tenant's currency; every amount of the definition must use it. */
  currency: string;
  /** The definition being edited, when there is one (it cannot be its own upgrade target). */
  definitionId?: string | undefined;
}

class Checker {
  readonly violations: Violation[] = [];

  add(field: string, reason: string): void {
    this.violations.push({ field, reason });
  }

  int(field: string, value: number, min: number, max: number): void {
    if (!Number.isInteger(value)) this.add(field, 'must be a whole number');
    else if (value < min) this.add(field, min === 0 ? 'must not be negative' : `must be at least ${min}`);
    else if (value > max) this.add(field, `must be at most ${max}`);
  }

  code(field: string, value: string): void {
    if (value === '') this.add(field, 'required');
    else if (value.length > LIMITS.codeLength) this.add(field, `must be at most ${LIMITS.codeLength} characters`);
    else if (!CODE.test(value)) this.add(field, 'letters, digits, "_", "-" and "." only, starting with a letter or digit');
  }

  text(field: string, value: string, max: number, required: boolean): void {
    if (required && value.trim() === '') this.add(field, 'required');
    else if (value.length > max) this.add(field, `must be at most ${max} characters`);
  }

  money(field: string, value: Money | undefined, currency: string, required: boolean): void {
    if (!value) {
      if (required) this.add(field, 'required');
      return;
    }
    if (value.currencyCode !== currency) {
      this.add(`${field}.currency_code`, `must equal the tenant currency ${currency}${value.currencyCode ? ` (got ${value.currencyCode})` : ''}`);
    }
    if (value.amountMinor < 0n) this.add(`${field}.amount_minor`, 'must not be negative');
    else if (value.amountMinor > LIMITS.amountMinor) this.add(`${field}.amount_minor`, `must be at most ${LIMITS.amountMinor}`);
  }

  /** Non-empty, unique entries; `each` checks one entry at its indexed path. */
  list<T>(field: string, values: readonly T[], max: number, each: (path: string, v: T) => void, key: (v: T) => string = String): void {
    if (values.length > max) this.add(field, `at most ${max} entries`);
    const seen = new Set<string>();
    values.forEach((v, i) => {
      const path = `${field}[${i}]`;
      each(path, v);
      const k = key(v);
      if (seen.has(k)) this.add(path, `duplicate ${JSON.stringify(k)}`);
      seen.add(k);
    });
  }
}

/**
 * Checks a definition's terms against the tenant's currency and returns them normalized (defaults
 * filled in), or throws `ValidationFailed` listing every violation with its field path.
 * References to branches and other definitions are checked separately (`referenceViolations`).
 */
export function validateTerms(terms: Terms, ctx: TermsContext): NormalizedTerms {
  const c = new Checker();
  c.code('terms.code', terms.code);
  c.text('terms.name', terms.name, LIMITS.nameLength, true);
  c.text('terms.description', terms.description, LIMITS.descriptionLength, false);
  c.money('terms.price', terms.price, ctx.currency, true);
  c.int('terms.paid_sessions', terms.paidSessions, 1, LIMITS.sessions);
  c.int('terms.bonus_sessions', terms.bonusSessions, 0, LIMITS.sessions);
  const total = terms.paidSessions + terms.bonusSessions;

  if (terms.serviceCodes.length === 0) c.add('terms.service_codes', 'list at least one service code a session covers');
  c.list('terms.service_codes', terms.serviceCodes, LIMITS.serviceCodes, (path, v) => c.code(path, v));

  c.money('terms.standalone_price_per_session', terms.standalonePricePerSession, ctx.currency, false);
  c.money('terms.delivery_cost_per_session', terms.deliveryCostPerSession, ctx.currency, false);
  c.list(
    'terms.delivery_cost_by_branch',
    terms.deliveryCostByBranch,
    LIMITS.branchIds,
    (path, v) => {
      if (v.branchId === '') c.add(`${path}.branch_id`, 'required');
      c.money(`${path}.cost_per_session`, v.costPerSession, ctx.currency, true);
    },
    (v) => v.branchId,
  );

  const expiry = terms.expiry ? checkExpiry(c, terms.expiry) : undefined;
  const transfer = checkTransfer(c, terms.transfer);
  const sharing = checkSharing(c, terms.sharing, total);
  const branches = checkBranches(c, terms.branches);
  const refund = checkRefund(c, terms, ctx.currency);
  const topUp = checkTopUp(c, terms.topUp, ctx.currency);

  const upgrade = { targetDefinitionIds: [...(terms.upgrade?.targetDefinitionIds ?? [])] };
  c.list('terms.upgrade.target_definition_ids', upgrade.targetDefinitionIds, LIMITS.upgradeTargets, (path, id) => {
    if (id === '') c.add(path, 'required');
    else if (id === ctx.definitionId) c.add(path, 'a definition cannot be its own upgrade target');
  });

  c.int('terms.expected_breakage_bps', terms.expectedBreakageBps, 0, LIMITS.breakageBps);
  c.int('terms.redemption_priority', terms.redemptionPriority, 0, 1_000_000);

  assertValid(c.violations);
  return {
    code: terms.code,
    name: terms.name.trim(),
    description: terms.description,
    price: terms.price!,
    paidSessions: terms.paidSessions,
    bonusSessions: terms.bonusSessions,
    serviceCodes: [...terms.serviceCodes],
    standalonePricePerSession: terms.standalonePricePerSession,
    deliveryCostPerSession: terms.deliveryCostPerSession,
    deliveryCostByBranch: terms.deliveryCostByBranch.map((d) => ({ ...d })),
    expiry,
    transfer,
    sharing,
    branches,
    refund,
    upgrade,
    topUp,
    expectedBreakageBps: terms.expectedBreakageBps,
    redemptionPriority: terms.redemptionPriority,
    sessionOrder: terms.sessionOrder === 'UNSPECIFIED' ? 'PAID_FIRST' : terms.sessionOrder,
  };
}

function checkExpiry(c: Checker, e: ExpiryPolicy): ExpiryPolicy {
  const p = 'terms.expiry';
  if (e.customRule) {
    if (countRules([e.customRule]) > LIMITS.ruleNodes) c.add(`${p}.custom_rule`, `a custom rule may have at most ${LIMITS.ruleNodes} parts`);
    checkRule(c, `${p}.custom_rule`, e.customRule, 1);
    if (e.anchor !== 'UNSPECIFIED') c.add(`${p}.anchor`, 'must be unset when custom_rule decides the expiry');
    if (e.durationDays !== 0) c.add(`${p}.duration_days`, 'must be unset when custom_rule decides the expiry');
    if (e.durationMonths !== 0) c.add(`${p}.duration_months`, 'must be unset when custom_rule decides the expiry');
    if (e.fixedDate !== '') c.add(`${p}.fixed_date`, 'must be unset when custom_rule decides the expiry');
  } else if (e.anchor === 'UNSPECIFIED') {
    c.add(`${p}.anchor`, 'required (PURCHASE, FIRST_USE or FIXED_DATE), or set custom_rule');
  } else if (e.anchor === 'FIXED_DATE') {
    if (!isCalendarDate(e.fixedDate)) c.add(`${p}.fixed_date`, `must be a calendar date YYYY-MM-DD for anchor FIXED_DATE${e.fixedDate ? ` (got ${JSON.stringify(e.fixedDate)})` : ''}`);
    if (e.durationDays !== 0) c.add(`${p}.duration_days`, 'must be unset for anchor FIXED_DATE');
    if (e.durationMonths !== 0) c.add(`${p}.duration_months`, 'must be unset for anchor FIXED_DATE');
  } else {
    if (e.fixedDate !== '') c.add(`${p}.fixed_date`, 'only for anchor FIXED_DATE');
    if (e.durationDays !== 0 && e.durationMonths !== 0) {
      c.add(`${p}.duration_months`, 'set duration_days or duration_months, not both');
    } else if (e.durationDays === 0 && e.durationMonths === 0) {
      c.add(`${p}.duration_days`, `set duration_days or duration_months for anchor ${e.anchor}`);
    } else if (e.durationDays !== 0) {
      c.int(`${p}.duration_days`, e.durationDays, 1, LIMITS.days);
    } else {
      c.int(`${p}.duration_months`, e.durationMonths, 1, LIMITS.months);
    }
  }

  const mode = e.mode === 'UNSPECIFIED' ? 'HARD' : e.mode;
  c.int(`${p}.grace_days`, e.graceDays, 0, LIMITS.graceDays);
  if (mode === 'HARD' && e.graceDays > 0) c.add(`${p}.grace_days`, 'grace needs SOFT expiry mode');
  if (mode === 'SOFT' && e.graceDays === 0) c.add(`${p}.grace_days`, 'SOFT expiry needs at least 1 grace day');
  c.int(`${p}.rolling_extension_days`, e.rollingExtensionDays, 0, LIMITS.days);
  c.int(`${p}.max_freeze_days`, e.maxFreezeDays, 0, LIMITS.days);
  if (e.freezeExtendsExpiry && e.maxFreezeDays === 0) c.add(`${p}.freeze_extends_expiry`, 'needs max_freeze_days above 0');
  c.list(`${p}.reminder_offsets_days`, e.reminderOffsetsDays, LIMITS.reminders, (path, d) => c.int(path, d, 1, LIMITS.days));

  return {
    ...e,
    customRule: e.customRule,
    mode,
    // Reminders fire earliest first; a stable order keeps equal terms equal.
    reminderOffsetsDays: [...e.reminderOffsetsDays].sort((a, b) => b - a),
  };
}

function checkRule(c: Checker, path: string, rule: ExpiryRule, depth: number): void {
  switch (rule.case) {
    case undefined:
      c.add(path, 'choose a rule kind (e.g. days_after_purchase, whichever_earlier)');
      return;
    case 'daysAfterPurchase':
      return c.int(`${path}.days_after_purchase`, rule.value, 1, LIMITS.days);
    case 'monthsAfterPurchase':
      return c.int(`${path}.months_after_purchase`, rule.value, 1, LIMITS.months);
    case 'daysAfterFirstUse':
      return c.int(`${path}.days_after_first_use`, rule.value, 1, LIMITS.days);
    case 'daysAfterLastUse':
      return c.int(`${path}.days_after_last_use`, rule.value, 1, LIMITS.days);
    case 'fixedDate':
      if (!isCalendarDate(rule.value)) c.add(`${path}.fixed_date`, `must be a calendar date YYYY-MM-DD (got ${JSON.stringify(rule.value)})`);
      return;
    case 'whicheverLater':
    case 'whicheverEarlier': {
      const listPath = `${path}.${rule.case === 'whicheverLater' ? 'whichever_later' : 'whichever_earlier'}.rules`;
      if (depth >= LIMITS.ruleDepth) {
        c.add(listPath, `custom rules nest at most ${LIMITS.ruleDepth} levels`);
        return;
      }
      if (rule.value.length < 2) c.add(listPath, 'must combine at least 2 rules');
      rule.value.forEach((r, i) => checkRule(c, `${listPath}[${i}]`, r, depth + 1));
      return;
    }
  }
}

function countRules(rules: readonly ExpiryRule[]): number {
  return rules.reduce((n, r) => n + 1 + (r.case === 'whicheverLater' || r.case === 'whicheverEarlier' ? countRules(r.value) : 0), 0);
}

function checkTransfer(c: Checker, t: TransferPolicy | undefined): TransferPolicy {
  const p = 'terms.transfer';
  const policy = { scope: t?.scope ?? 'NONE', maxTransfers: t?.maxTransfers ?? 0, undoWindowHours: t?.undoWindowHours ?? 0 };
  if (policy.scope === 'UNSPECIFIED') policy.scope = 'NONE';
  c.int(`${p}.max_transfers`, policy.maxTransfers, 0, 1000);
  c.int(`${p}.undo_window_hours`, policy.undoWindowHours, 0, LIMITS.undoWindowHours);
  if (policy.scope === 'NONE') {
    if (policy.maxTransfers > 0) c.add(`${p}.max_transfers`, 'needs transfer scope HOUSEHOLD or ANYONE');
    if (policy.undoWindowHours > 0) c.add(`${p}.undo_window_hours`, 'needs transfer scope HOUSEHOLD or ANYONE');
  }
  return policy;
}

function checkSharing(c: Checker, s: SharingPolicy | undefined, totalSessions: number): SharingPolicy {
  const p = 'terms.sharing';
  const policy = { householdPool: s?.householdPool ?? false, maxMembers: s?.maxMembers ?? 0, perMemberSessionCap: s?.perMemberSessionCap ?? 0 };
  c.int(`${p}.max_members`, policy.maxMembers, 0, LIMITS.householdMembers);
  c.int(`${p}.per_member_session_cap`, policy.perMemberSessionCap, 0, LIMITS.sessions);
  if (!policy.householdPool) {
    if (policy.maxMembers > 0) c.add(`${p}.max_members`, 'needs household_pool');
    if (policy.perMemberSessionCap > 0) c.add(`${p}.per_member_session_cap`, 'needs household_pool');
  } else if (policy.perMemberSessionCap > totalSessions && totalSessions > 0) {
    c.add(`${p}.per_member_session_cap`, `must not exceed the package's ${totalSessions} sessions`);
  }
  return policy;
}

function checkBranches(c: Checker, b: BranchPolicy | undefined): BranchPolicy {
  const p = 'terms.branches';
  const policy = { allBranches: b?.allBranches ?? false, branchIds: [...(b?.branchIds ?? [])] };
  if (!policy.allBranches && policy.branchIds.length === 0) c.add(p, 'set all_branches or list at least one branch_id');
  if (policy.allBranches && policy.branchIds.length > 0) c.add(`${p}.branch_ids`, 'must be empty when all_branches is set');
  c.list(`${p}.branch_ids`, policy.branchIds, LIMITS.branchIds, (path, id) => {
    if (id === '') c.add(path, 'required');
  });
  return policy;
}

function checkRefund(c: Checker, terms: Terms, currency: string): RefundPolicy {
  const p = 'terms.refund';
  const r = terms.refund;
  const method = !r || r.method === 'UNSPECIFIED' ? 'NON_REFUNDABLE' : r.method;
  const policy = { method, adminFee: r?.adminFee, refundWindowDays: r?.refundWindowDays ?? 0 };
  c.money(`${p}.admin_fee`, policy.adminFee, currency, false);
  c.int(`${p}.refund_window_days`, policy.refundWindowDays, 0, LIMITS.days);
  if (method === 'NON_REFUNDABLE') {
    if (policy.adminFee && policy.adminFee.amountMinor > 0n) c.add(`${p}.admin_fee`, 'needs a refund method other than NON_REFUNDABLE');
    if (policy.refundWindowDays > 0) c.add(`${p}.refund_window_days`, 'needs a refund method other than NON_REFUNDABLE');
  }
  if (policy.adminFee && terms.price && policy.adminFee.amountMinor > terms.price.amountMinor) {
    c.add(`${p}.admin_fee.amount_minor`, 'must not exceed the price');
  }
  if (method === 'USED_AT_STANDALONE_PRICE' && !terms.standalonePricePerSession) {
    c.add('terms.standalone_price_per_session', 'required for refund method USED_AT_STANDALONE_PRICE');
  }
  return policy;
}

function checkTopUp(c: Checker, t: TopUpPolicy | undefined, currency: string): TopUpPolicy {
  const p = 'terms.top_up';
  const policy = { enabled: t?.enabled ?? false, pricePerSession: t?.pricePerSession, extendExpiryDays: t?.extendExpiryDays ?? 0 };
  c.int(`${p}.extend_expiry_days`, policy.extendExpiryDays, 0, LIMITS.days);
  if (policy.enabled) {
    c.money(`${p}.price_per_session`, policy.pricePerSession, currency, true);
  } else {
    if (policy.pricePerSession) c.add(`${p}.price_per_session`, 'needs top_up.enabled');
    if (policy.extendExpiryDays > 0) c.add(`${p}.extend_expiry_days`, 'needs top_up.enabled');
  }
  return policy;
}

/** The branches and definitions the terms refer to, with the field path of each reference. */
export function referencesOf(terms: Terms): { branches: Map<string, string>; definitions: Map<string, string> } {
  const branches = new Map<string, string>();
  terms.branches?.branchIds.forEach((id, i) => branches.set(id, `terms.branches.branch_ids[${i}]`));
  terms.deliveryCostByBranch.forEach((d, i) => {
    if (!branches.has(d.branchId)) branches.set(d.branchId, `terms.delivery_cost_by_branch[${i}].branch_id`);
  });
  const definitions = new Map<string, string>();
  terms.upgrade?.targetDefinitionIds.forEach((id, i) => definitions.set(id, `terms.upgrade.target_definition_ids[${i}]`));
  return { branches, definitions };
}

/** A violation for each reference to a branch or definition that does not exist in the tenant. */
export function referenceViolations(
  terms: Terms,
  existing: { branches: ReadonlySet<string>; definitions: ReadonlySet<string> },
): Violation[] {
  const refs = referencesOf(terms);
  const out: Violation[] = [];
  for (const [id, field] of refs.branches) if (!existing.branches.has(id)) out.push({ field, reason: `unknown branch ${JSON.stringify(id)}` });
  for (const [id, field] of refs.definitions) if (!existing.definitions.has(id)) out.push({ field, reason: `unknown definition ${JSON.stringify(id)}` });
  return out;
}
