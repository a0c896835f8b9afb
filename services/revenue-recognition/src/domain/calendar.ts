import { RevenueRuleError } from './errors.js';

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
    } catch {
      throw new RevenueRuleError('time_zone', `${JSON.stringify(timeZone)} is not an IANA time zone`);
    }
    formatters.set(timeZone, f);
  }
  return f;
}

/** The calendar date (YYYY-MM-DD) of `instant` in `timeZone`: the accounting date of what happened then. */
export function accountingDate(instant: Date, timeZone: string): string {
  if (Number.isNaN(instant.getTime())) throw new RevenueRuleError('occurred_time', 'is not a valid instant');
  const parts = formatterFor(timeZone || 'UTC').formatToParts(instant);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')}`;
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** True for a real calendar date written YYYY-MM-DD. */
export function isCalendarDate(text: string): boolean {
  const m = DATE.exec(text);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.toISOString().slice(0, 10) === text;
}

export interface DateRange {
  /** Inclusive. */
  start: string;
  /** Exclusive. */
  end: string;
}

/** Validates a report period: both dates YYYY-MM-DD, start before end. */
export function parsePeriod(start: string, end: string, field = 'period'): DateRange {
  if (!isCalendarDate(start)) throw new RevenueRuleError(`${field}.start_date`, `must be a date YYYY-MM-DD, got ${JSON.stringify(start)}`);
  if (!isCalendarDate(end)) throw new RevenueRuleError(`${field}.end_date`, `must be a date YYYY-MM-DD, got ${JSON.stringify(end)}`);
  if (start >= end) throw new RevenueRuleError(`${field}.end_date`, `must be after start_date (${start}), got ${end}`);
  return { start, end };
}
