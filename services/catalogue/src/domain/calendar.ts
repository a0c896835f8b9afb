/**
 * The canonical IANA name of a time zone (e.g. "asia/singapore" -> "Asia/Singapore"), or undefined
 * when the runtime's time zone database does not know it. Fixed offsets like "+08:00" are refused:
 * a branch needs a zone with its daylight-saving rules, not an offset.
 */
export function canonicalTimeZone(name: string): string | undefined {
  if (name.trim() === '' || /^[+-]\d/.test(name)) return undefined;
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A real calendar date written YYYY-MM-DD (no time, no zone). */
export function isCalendarDate(value: string): boolean {
  const m = DATE.exec(value);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(y, mo - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d && y >= 1970;
}
