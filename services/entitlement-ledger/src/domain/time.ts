/**
 * Calendar arithmetic in a branch's IANA time zone, without a date library: "30 days" and "end of
 * the day" are local notions, so they must survive DST changes and zones far from UTC.
 */

export const DAY_MS = 86_400_000;

export interface LocalDate {
  year: number;
  /** 1-12 */
  month: number;
  /** 1-31 */
  day: number;
}

interface LocalDateTime extends LocalDate {
  hour: number;
  minute: number;
  second: number;
  millisecond: number;
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

/** True when the runtime knows the IANA zone. */
export function isValidTimeZone(timeZone: string): boolean {
  if (timeZone === '') return false;
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

function localDateTime(instant: Date, timeZone: string): LocalDateTime {
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(instant)) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return {
    year: parts.year ?? 0,
    month: parts.month ?? 1,
    day: parts.day ?? 1,
    hour: parts.hour ?? 0,
    minute: parts.minute ?? 0,
    second: parts.second ?? 0,
    millisecond: instant.getUTCMilliseconds(),
  };
}

/** Local wall time minus UTC at `instant`, in ms. */
function offsetMs(instant: Date, timeZone: string): number {
  const l = localDateTime(instant, timeZone);
  const asUtc = Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second, l.millisecond);
  return asUtc - instant.getTime();
}

/**
 * The instant a local wall time names. In a DST gap (the wall time does not exist) the result is
 * shifted forward by the gap; in an overlap the earlier instant wins.
 */
function fromLocal(l: LocalDateTime, timeZone: string): Date {
  const wall = Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second, l.millisecond);
  const first = wall - offsetMs(new Date(wall), timeZone);
  const second = wall - offsetMs(new Date(first), timeZone);
  if (first === second) return new Date(first);
  // Offsets differ around a transition: prefer a candidate that maps back to the same wall time.
  const candidates = [Math.min(first, second), Math.max(first, second)];
  for (const c of candidates) {
    if (c + offsetMs(new Date(c), timeZone) === wall) return new Date(c);
  }
  return new Date(Math.max(first, second));
}

export function localDate(instant: Date, timeZone: string): LocalDate {
  const { year, month, day } = localDateTime(instant, timeZone);
  return { year, month, day };
}

export function addDaysToDate(d: LocalDate, days: number): LocalDate {
  const t = new Date(Date.UTC(d.year, d.month - 1, d.day) + days * DAY_MS);
  return { year: t.getUTCFullYear(), month: t.getUTCMonth() + 1, day: t.getUTCDate() };
}

/** Adds calendar months, clamping to the month's last day (31 Jan + 1 month = 28/29 Feb). */
export function addMonthsToDate(d: LocalDate, months: number): LocalDate {
  const index = d.year * 12 + (d.month - 1) + months;
  const year = Math.floor(index / 12);
  const month = (index % 12) + 1;
  const lastDay = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return { year, month, day: Math.min(d.day, lastDay) };
}

/** 00:00 local time of a calendar date. */
export function startOfLocalDay(d: LocalDate, timeZone: string): Date {
  return fromLocal({ ...d, hour: 0, minute: 0, second: 0, millisecond: 0 }, timeZone);
}

/** The instant the local day `d` ends (= 00:00 of the next local day). */
export function endOfLocalDay(d: LocalDate, timeZone: string): Date {
  return startOfLocalDay(addDaysToDate(d, 1), timeZone);
}

/** The same local wall time `days` calendar days later (a day may be 23 or 25 hours long). */
export function addLocalDays(instant: Date, days: number, timeZone: string): Date {
  const l = localDateTime(instant, timeZone);
  const d = addDaysToDate(l, days);
  return fromLocal({ ...l, ...d }, timeZone);
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Parses YYYY-MM-DD; undefined when malformed or not a real date. */
export function parseIsoDate(s: string): LocalDate | undefined {
  const m = ISO_DATE.exec(s);
  if (!m) return undefined;
  const d = { year: Number(m[1]), month: Number(m[2]), day: Number(m[3]) };
  const check = addDaysToDate(d, 0);
  return check.year === d.year && check.month === d.month && check.day === d.day ? d : undefined;
}

/** Whole days, rounded up, from `from` to `to` (0 when `to` is not after `from`). */
export function ceilDays(from: Date, to: Date): number {
  const ms = to.getTime() - from.getTime();
  return ms <= 0 ? 0 : Math.ceil(ms / DAY_MS);
}
