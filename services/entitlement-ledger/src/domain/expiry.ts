import type { Entitlement, ExpiryTerms } from './types.js';
import { addDaysToDate, addLocalDays, addMonthsToDate, endOfLocalDay, localDate, parseIsoDate } from './time.js';

/**
 * Expiry dates the ledger sets itself (the expiry scheduler only sets timers from them):
 * a package with a duration is usable through the END of the local calendar day `anchor + duration`
 * in the purchase branch's zone, so `expiry_time` is 00:00 local of the following day.
 * Bought 10 Jan with 30 days: usable through 9 Feb, expiry_time = 10 Feb 00:00 local.
 * FIXED_DATE: usable through that date. Custom rules are left to the scheduler (expiry unset).
 */
export function expiryFromAnchor(terms: ExpiryTerms, anchorTime: Date, timeZone: string): Date | null {
  if (terms.customRule) return null;
  if (terms.anchor === 'FIXED_DATE') {
    const d = parseIsoDate(terms.fixedDate);
    return d ? endOfLocalDay(d, timeZone) : null;
  }
  if (terms.anchor === 'NONE') return null;
  const start = localDate(anchorTime, timeZone);
  if (terms.durationMonths > 0) return endOfLocalDay(addMonthsToDate(start, terms.durationMonths), timeZone);
  if (terms.durationDays > 0) return endOfLocalDay(addDaysToDate(start, terms.durationDays), timeZone);
  return null;
}

/** Activation and expiry at purchase: FIRST_USE packages stay unactivated until their first consume. */
export function atPurchase(terms: ExpiryTerms, purchaseTime: Date, timeZone: string): { activationTime: Date | null; expiryTime: Date | null } {
  if (terms.anchor === 'FIRST_USE') return { activationTime: null, expiryTime: null };
  return { activationTime: purchaseTime, expiryTime: expiryFromAnchor(terms, purchaseTime, timeZone) };
}

/**
 * Activation and expiry after a session is used at `useTime`: the first use of a FIRST_USE package
 * starts its clock; a rolling extension pushes expiry to the end of the day N days after the use,
 * never earlier than it was.
 */
export function afterUse(e: Entitlement, useTime: Date): { activationTime: Date | null; expiryTime: Date | null } {
  const t = e.terms.expiry;
  let activationTime = e.activationTime;
  let expiryTime = e.expiryTime;
  if (activationTime === null) {
    activationTime = useTime;
    if (t.anchor === 'FIRST_USE') expiryTime = expiryFromAnchor(t, useTime, e.timeZone);
  }
  if (t.rollingExtensionDays > 0 && expiryTime !== null) {
    const rolled = endOfLocalDay(addDaysToDate(localDate(useTime, e.timeZone), t.rollingExtensionDays), e.timeZone);
    if (rolled > expiryTime) expiryTime = rolled;
  }
  return { activationTime, expiryTime };
}

/** SOFT expiry: when the grace period ends (grace_days after expiry, same local wall time). */
export function graceEnd(e: Entitlement, expiryTime: Date): Date {
  return addLocalDays(expiryTime, e.terms.expiry.graceDays, e.timeZone);
}

/**
 * When the entitlement stops being usable at all: the expiry for HARD, the grace end for SOFT;
 * null when not known to the ledger.
 */
export function finalEnd(e: Entitlement): Date | null {
  if (e.graceEndTime !== null) return e.graceEndTime;
  if (e.expiryTime === null) return null;
  return e.terms.expiry.mode === 'SOFT' ? graceEnd(e, e.expiryTime) : e.expiryTime;
}
