import { addDays, addMonths, ceilDays, compareDates, endOfLocalDay, lastDayBefore, localDateOf, parseDate, type LocalDate } from './calendar.js';
import type { ExpiryPolicy } from './policy.js';
import { evaluateRule, NEVER } from './rules.js';

/** The facts about one entitlement that its expiry depends on. */
export interface ExpiryFacts {
  readonly policy: ExpiryPolicy;
  /** The purchase branch's IANA zone. */
  readonly timeZone: string;
  readonly purchaseTime: Date;
  /** The first session used (activation of FIRST_USE packages). */
  readonly firstUseTime?: Date;
  readonly lastUseTime?: Date;
  /** Days of completed freezes. */
  readonly frozenDays: number;
  /** The freeze in force, if any; no `until` = frozen until further notice. */
  readonly freeze?: { readonly from: Date; readonly until?: Date };
  /** The expiry the ledger recorded (its own computation, manager overrides, freeze pushes). */
  readonly ledgerExpiryTime?: Date;
  /** The grace end the ledger recorded (set once in grace). */
  readonly ledgerGraceEndTime?: Date;
}

/**
 * The last local date the policy allows, before freezes: anchor + duration (days, or calendar months
 * clamped to month end), a fixed date, or the custom rule; then pushed by the rolling extension.
 * Undefined when there is no deadline (yet): no anchor, or FIRST_USE before the first use.
 */
export function policyLastDate(f: ExpiryFacts): LocalDate | undefined {
  const p = f.policy;
  const date = (t: Date | undefined) => (t ? localDateOf(t, f.timeZone) : undefined);
  let last: LocalDate | undefined;
  if (p.customRule) {
    const purchaseDate = localDateOf(f.purchaseTime, f.timeZone);
    const evaluated = evaluateRule(p.customRule, { purchaseDate, firstUseDate: date(f.firstUseTime), lastUseDate: date(f.lastUseTime) });
    last = evaluated === NEVER ? undefined : evaluated;
  } else if (p.anchor === 'FIXED_DATE') {
    last = parseDate(p.fixedDate);
  } else if (p.anchor === 'PURCHASE' || p.anchor === 'FIRST_USE') {
    const anchor = date(p.anchor === 'PURCHASE' ? f.purchaseTime : f.firstUseTime);
    if (anchor && p.durationMonths > 0) last = addMonths(anchor, p.durationMonths);
    else if (anchor && p.durationDays > 0) last = addDays(anchor, p.durationDays);
  }
  const lastUse = date(f.lastUseTime);
  if (last && lastUse && p.rollingExtensionDays > 0) {
    const rolled = addDays(lastUse, p.rollingExtensionDays);
    if (compareDates(rolled, last) > 0) last = rolled;
  }
  return last;
}

/**
 * Days a freeze pushes expiry out: completed freezes plus the one in force, capped at the policy's
 * maximum; undefined while an open-ended freeze lasts (the expiry is not known until it ends).
 */
export function freezePushDays(f: ExpiryFacts): number | undefined {
  if (!f.policy.freezeExtendsExpiry) return 0;
  if (f.freeze && !f.freeze.until) return undefined;
  const current = f.freeze?.until ? ceilDays(f.freeze.from, f.freeze.until) : 0;
  const total = Math.max(0, f.frozenDays) + current;
  return f.policy.maxFreezeDays > 0 ? Math.min(total, f.policy.maxFreezeDays) : total;
}

/** The expiry instant by the scheduler's own reading of the policy: the end of the last usable local day. */
export function computedExpiry(f: ExpiryFacts): Date | undefined {
  const last = policyLastDate(f);
  const push = freezePushDays(f);
  if (!last || push === undefined) return undefined;
  return endOfLocalDay(addDays(last, push), f.timeZone);
}

/**
 * The expiry the timers act on. The ledger records expiry for standard policies (including manager
 * overrides and freeze pushes) and refuses a stale instant, so its value wins when it has one. For a
 * custom rule the ledger leaves the evaluation to the scheduler; a manager extension it records still
 * counts, so the later of the two wins.
 */
export function effectiveExpiry(f: ExpiryFacts): Date | undefined {
  const computed = computedExpiry(f);
  if (!f.policy.customRule) return f.ledgerExpiryTime ?? computed;
  if (!computed) return f.ledgerExpiryTime;
  if (!f.ledgerExpiryTime) return computed;
  return computed > f.ledgerExpiryTime ? computed : f.ledgerExpiryTime;
}

/** SOFT expiry: the end of the local day `grace_days` after the last usable day. Undefined for HARD. */
export function graceEnd(f: ExpiryFacts, expiry: Date | undefined): Date | undefined {
  if (f.policy.mode !== 'SOFT' || !expiry) return undefined;
  // A grace end recorded before a later extension no longer applies.
  if (f.ledgerGraceEndTime && f.ledgerGraceEndTime >= expiry) return f.ledgerGraceEndTime;
  return endOfLocalDay(addDays(lastDayBefore(expiry, f.timeZone), Math.max(0, f.policy.graceDays)), f.timeZone);
}
