/**
 * Calendar arithmetic in a branch's IANA time zone with nothing but `Intl`: "30 days", "1 month" and
 * "end of the day" are local notions and must hold across DST changes and far from UTC.
 *
 * Convention shared with the ledger: a package usable through local date D has
 * `expiry_time` = the instant D ends = 00:00 local of D + 1 (so "unusable from expiry_time").
 */

export const DAY_MS = 86_400_000;

/** A calendar date without a zone. */
export interface LocalDate {
  readonly year: number;
  /** 1-12 */
  readonly month: number;
  /** 1-31 */
  readonly day: number;
}

/** Days since 1970-01-01 (negative before); lets dates be compared and shifted as integers. */
export function toEpochDay(d: LocalDate): number {
  return Math.floor(Date.UTC(d.year, d.month - 1, d.day) / DAY_MS);
}

export function fromEpochDay(n: number): LocalDate {
  const t = new Date(n * DAY_MS);
  return { year: t.getUTCFullYear(), month: t.getUTCMonth() + 1, day: t.getUTCDate() };
}

export function compareDates(a: LocalDate, b: LocalDate): number {
  return toEpochDay(a) - toEpochDay(b);
}

export function addDays(d: LocalDate, days: number): LocalDate {
  return fromEpochDay(toEpochDay(d) + days);
}

export function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** Calendar months, clamped to the target month's last day: 31 Jan + 1 month = 28 (or 29) Feb. */
export function addMonths(d: LocalDate, months: number): LocalDate {
  const index = d.year * 12 + (d.month - 1) + months;
  const year = Math.floor(index / 12);
  const month = index - year * 12 + 1;
  return { year, month, day: Math.min(d.day, daysInMonth(year, month)) };
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Parses `YYYY-MM-DD`; undefined when malformed or not a real date (e.g. 2025-02-30). */
export function parseDate(s: string): LocalDate | undefined {
  const m = ISO_DATE.exec(s);
  if (!m) return undefined;
  const d = { year: Number(m[1]), month: Number(m[2]), day: Number(m[3]) };
  if (d.month < 1 || d.month > 12 || d.day < 1 || d.day > daysInMonth(d.year, d.month)) return undefined;
  return d;
}

export function formatDate(d: LocalDate): string {
  return `${String(d.year).padStart(4, '0')}-${String(d.month).padStart(2, '0')}-${String(d.day).padStart(2, '0')}`;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True when the runtime's time zone database knows the IANA name (offsets like "+08:00" are refused). */
export function isTimeZone(timeZone: string): boolean {
  if (timeZone.trim() === '' || /^[+-]\d/.test(timeZone)) return false;
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

interface WallTime extends LocalDate {
  hour: number;
  minute: number;
  second: number;
}

function wallTime(instant: number, timeZone: string): WallTime {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(new Date(instant))) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return {
    year: parts.year ?? 1970,
    month: parts.month ?? 1,
    day: parts.day ?? 1,
    hour: parts.hour ?? 0,
    minute: parts.minute ?? 0,
    second: parts.second ?? 0,
  };
}

/** Local wall clock minus UTC at `instant`, in ms (whole seconds; sub-second offsets do not exist). */
function offsetAt(instant: number, timeZone: string): number {
  const w = wallTime(instant, timeZone);
  const asUtc = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return asUtc - (instant - (((instant % 1000) + 1000) % 1000));
}

/** The local calendar date at an instant. */
export function localDateOf(instant: Date, timeZone: string): LocalDate {
  const { year, month, day } = wallTime(instant.getTime(), timeZone);
  return { year, month, day };
}

/**
 * The first instant of local date `d`: normally 00:00 local; when a DST gap swallows midnight
 * (e.g. America/Havana, historic America/Sao_Paulo) the day starts at the end of the gap.
 */
export function startOfLocalDay(d: LocalDate, timeZone: string): Date {
  const wall = Date.UTC(d.year, d.month - 1, d.day);
  // Every offset in force within a day of midnight gives a candidate; the earliest one that falls on
  // `d` while the millisecond before it does not is the start of the day.
  const offsets = new Set([offsetAt(wall - DAY_MS, timeZone), offsetAt(wall, timeZone), offsetAt(wall + DAY_MS, timeZone)]);
  const target = toEpochDay(d);
  const startsDay = (t: number) =>
    toEpochDay(localDateOf(new Date(t), timeZone)) === target && toEpochDay(localDateOf(new Date(t - 1), timeZone)) < target;
  const candidates = [...offsets].map((o) => wall - o).sort((a, b) => a - b);
  for (const c of candidates) {
    if (startsDay(c)) return new Date(c);
  }
  // Midnight lies in a gap: the day begins at the transition, found by bisection between the
  // last instant of the previous day and a candidate already on `d`.
  let lo = Math.min(...candidates) - DAY_MS;
  let hi = Math.max(...candidates) + DAY_MS;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (toEpochDay(localDateOf(new Date(mid), timeZone)) >= target) hi = mid;
    else lo = mid;
  }
  return new Date(hi);
}

/** The instant local date `d` ends, i.e. the start of the next local day: an entitlement's `expiry_time`. */
export function endOfLocalDay(d: LocalDate, timeZone: string): Date {
  return startOfLocalDay(addDays(d, 1), timeZone);
}

/** The last local date on which something that ends at `end` is still usable. */
export function lastDayBefore(end: Date, timeZone: string): LocalDate {
  return localDateOf(new Date(end.getTime() - 1), timeZone);
}

/** Whole days from `from` to `to`, rounded up; 0 when `to` is not after `from`. */
export function ceilDays(from: Date, to: Date): number {
  const ms = to.getTime() - from.getTime();
  return ms <= 0 ? 0 : Math.ceil(ms / DAY_MS);
}
