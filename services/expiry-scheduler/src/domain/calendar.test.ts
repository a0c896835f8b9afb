import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addDays,
  addMonths,
  ceilDays,
  compareDates,
  daysInMonth,
  endOfLocalDay,
  formatDate,
  fromEpochDay,
  isTimeZone,
  lastDayBefore,
  localDateOf,
  parseDate,
  startOfLocalDay,
  toEpochDay,
  type LocalDate,
} from './calendar.js';

const d = (s: string): LocalDate => parseDate(s) ?? expect.fail(`bad date ${s}`);
const iso = (t: Date) => t.toISOString();
const HOUR = 3_600_000;

/** Zones with DST, half-hour DST, far-from-UTC offsets, and midnight DST gaps. */
const ZONES = [
  'UTC',
  'Europe/London',
  'America/New_York',
  'Asia/Singapore',
  'Australia/Lord_Howe',
  'Pacific/Chatham',
  'Pacific/Kiritimati',
  'America/Havana',
  'America/Sao_Paulo',
  'America/Santiago',
  'Asia/Beirut',
] as const;

const dates = fc.integer({ min: toEpochDay(d('1990-01-01')), max: toEpochDay(d('2060-12-31')) }).map(fromEpochDay);

describe('calendar months', () => {
  it('clamps to the last day of a shorter month', () => {
    expect(formatDate(addMonths(d('2025-01-31'), 1))).toBe('2025-02-28');
    expect(formatDate(addMonths(d('2024-01-31'), 1))).toBe('2024-02-29');
    expect(formatDate(addMonths(d('2025-03-31'), 1))).toBe('2025-04-30');
    expect(formatDate(addMonths(d('2025-01-31'), 13))).toBe('2026-02-28');
    expect(formatDate(addMonths(d('2025-08-31'), 6))).toBe('2026-02-28');
    expect(formatDate(addMonths(d('2025-01-15'), 12))).toBe('2026-01-15');
    expect(formatDate(addMonths(d('2025-12-31'), -1))).toBe('2025-11-30');
  });

  it('keeps the day when it exists, else lands on the month end, and advances exactly n months', () => {
    fc.assert(
      fc.property(dates, fc.integer({ min: 0, max: 240 }), (date, n) => {
        const r = addMonths(date, n);
        expect((r.year - date.year) * 12 + (r.month - date.month)).toBe(n);
        if (date.day <= daysInMonth(r.year, r.month)) expect(r.day).toBe(date.day);
        else expect(r.day).toBe(daysInMonth(r.year, r.month));
      }),
    );
  });

  it('is monotone: a later start never gives an earlier result', () => {
    fc.assert(
      fc.property(dates, dates, fc.integer({ min: 0, max: 120 }), (a, b, n) => {
        if (compareDates(a, b) <= 0) expect(compareDates(addMonths(a, n), addMonths(b, n))).toBeLessThanOrEqual(0);
      }),
    );
  });
});

describe('days and parsing', () => {
  it('adds days across month and year ends', () => {
    expect(formatDate(addDays(d('2024-12-31'), 1))).toBe('2025-01-01');
    expect(formatDate(addDays(d('2024-02-28'), 1))).toBe('2024-02-29');
    expect(formatDate(addDays(d('2025-01-10'), 30))).toBe('2025-02-09');
  });

  it('round-trips epoch days and undoes itself', () => {
    fc.assert(
      fc.property(dates, fc.integer({ min: -5000, max: 5000 }), (date, n) => {
        expect(fromEpochDay(toEpochDay(date))).toEqual(date);
        expect(addDays(addDays(date, n), -n)).toEqual(date);
        expect(parseDate(formatDate(date))).toEqual(date);
      }),
    );
  });

  it('refuses dates that do not exist', () => {
    expect(parseDate('2025-02-29')).toBeUndefined();
    expect(parseDate('2025-13-01')).toBeUndefined();
    expect(parseDate('2025-1-01')).toBeUndefined();
    expect(parseDate('')).toBeUndefined();
    expect(parseDate('2024-02-29')).toEqual({ year: 2024, month: 2, day: 29 });
  });

  it('rounds day counts up', () => {
    expect(ceilDays(new Date('2025-01-01T00:00:00Z'), new Date('2025-01-01T00:00:00Z'))).toBe(0);
    expect(ceilDays(new Date('2025-01-01T00:00:00Z'), new Date('2025-01-01T00:00:01Z'))).toBe(1);
    expect(ceilDays(new Date('2025-01-01T00:00:00Z'), new Date('2025-01-08T00:00:00Z'))).toBe(7);
  });

  it('knows IANA zones and refuses offsets', () => {
    expect(isTimeZone('Europe/London')).toBe(true);
    expect(isTimeZone('+08:00')).toBe(false);
    expect(isTimeZone('Mars/Olympus')).toBe(false);
    expect(isTimeZone('')).toBe(false);
  });
});

describe('local days in a time zone', () => {
  it('Europe/London: the spring-forward day is 23 hours, the fall-back day 25', () => {
    expect(iso(startOfLocalDay(d('2025-03-30'), 'Europe/London'))).toBe('2025-03-30T00:00:00.000Z');
    expect(iso(endOfLocalDay(d('2025-03-30'), 'Europe/London'))).toBe('2025-03-30T23:00:00.000Z');
    expect(iso(endOfLocalDay(d('2025-03-31'), 'Europe/London'))).toBe('2025-03-31T23:00:00.000Z');
    expect(iso(startOfLocalDay(d('2025-10-26'), 'Europe/London'))).toBe('2025-10-25T23:00:00.000Z');
    expect(iso(endOfLocalDay(d('2025-10-26'), 'Europe/London'))).toBe('2025-10-27T00:00:00.000Z');
  });

  it('America/New_York: end of day follows EST/EDT', () => {
    expect(iso(endOfLocalDay(d('2025-03-08'), 'America/New_York'))).toBe('2025-03-09T05:00:00.000Z');
    expect(iso(endOfLocalDay(d('2025-03-09'), 'America/New_York'))).toBe('2025-03-10T04:00:00.000Z');
    expect(iso(endOfLocalDay(d('2025-11-02'), 'America/New_York'))).toBe('2025-11-03T05:00:00.000Z');
  });

  it('a day whose midnight falls in a DST gap starts at the end of the gap', () => {
    // Havana springs forward at 00:00 -> 01:00.
    expect(iso(startOfLocalDay(d('2025-03-09'), 'America/Havana'))).toBe('2025-03-09T05:00:00.000Z');
    expect(localDateOf(new Date('2025-03-09T05:00:00.000Z'), 'America/Havana')).toEqual(d('2025-03-09'));
    expect(iso(startOfLocalDay(d('2018-11-04'), 'America/Sao_Paulo'))).toBe('2018-11-04T03:00:00.000Z');
  });

  it('far from UTC the local date differs from the UTC one', () => {
    expect(iso(endOfLocalDay(d('2025-06-30'), 'Asia/Singapore'))).toBe('2025-06-30T16:00:00.000Z');
    expect(localDateOf(new Date('2025-06-30T16:00:00.000Z'), 'Asia/Singapore')).toEqual(d('2025-07-01'));
    expect(localDateOf(new Date('2025-06-30T15:59:59.999Z'), 'Asia/Singapore')).toEqual(d('2025-06-30'));
  });

  it('a date a zone skipped entirely is an empty day at the start of the next one', () => {
    // Kiritimati moved across the date line: 1994-12-31 never happened there.
    const start = startOfLocalDay(d('1994-12-31'), 'Pacific/Kiritimati');
    expect(start).toEqual(startOfLocalDay(d('1995-01-01'), 'Pacific/Kiritimati'));
    expect(localDateOf(start, 'Pacific/Kiritimati')).toEqual(d('1995-01-01'));
  });

  it('every local day starts exactly where the previous one ends, 22 to 26 hours long', () => {
    const skipped = new Set(['Pacific/Kiritimati 1994-12-31', 'Pacific/Kiritimati 1995-01-01']);
    fc.assert(
      fc.property(dates, fc.constantFrom(...ZONES), (date, zone) => {
        fc.pre(!skipped.has(`${zone} ${formatDate(date)}`));
        const start = startOfLocalDay(date, zone);
        const end = endOfLocalDay(date, zone);
        expect(localDateOf(start, zone)).toEqual(date);
        expect(localDateOf(new Date(start.getTime() - 1), zone)).toEqual(addDays(date, -1));
        expect(localDateOf(new Date(end.getTime() - 1), zone)).toEqual(date);
        expect(localDateOf(end, zone)).toEqual(addDays(date, 1));
        expect(lastDayBefore(end, zone)).toEqual(date);
        const hours = (end.getTime() - start.getTime()) / HOUR;
        expect(hours).toBeGreaterThanOrEqual(22);
        expect(hours).toBeLessThanOrEqual(26);
      }),
      { numRuns: 300 },
    );
  });
});
