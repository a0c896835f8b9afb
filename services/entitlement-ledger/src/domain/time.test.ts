import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addLocalDays,
  addMonthsToDate,
  ceilDays,
  endOfLocalDay,
  isValidTimeZone,
  localDate,
  parseIsoDate,
  startOfLocalDay,
} from './time.js';

const ZONES = ['Asia/Singapore', 'Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'Pacific/Kiritimati', 'UTC'];

describe('calendar arithmetic in a zone', () => {
  it('ends a local day at the next local midnight', () => {
    expect(endOfLocalDay({ year: 2025, month: 2, day: 9 }, 'Asia/Singapore').toISOString()).toBe('2025-02-09T16:00:00.000Z');
    expect(endOfLocalDay({ year: 2025, month: 2, day: 9 }, 'America/New_York').toISOString()).toBe('2025-02-10T05:00:00.000Z');
  });

  it('handles the day DST starts (23 hours) and ends (25 hours)', () => {
    const berlin = 'Europe/Berlin';
    const spring = startOfLocalDay({ year: 2025, month: 3, day: 30 }, berlin);
    expect(endOfLocalDay({ year: 2025, month: 3, day: 30 }, berlin).getTime() - spring.getTime()).toBe(23 * 3_600_000);
    const autumn = startOfLocalDay({ year: 2025, month: 10, day: 26 }, berlin);
    expect(endOfLocalDay({ year: 2025, month: 10, day: 26 }, berlin).getTime() - autumn.getTime()).toBe(25 * 3_600_000);
    // Same wall time across the spring change.
    expect(addLocalDays(new Date('2025-03-29T09:00:00Z'), 1, berlin).toISOString()).toBe('2025-03-30T08:00:00.000Z');
  });

  it('clamps months to the last day', () => {
    expect(addMonthsToDate({ year: 2025, month: 1, day: 31 }, 1)).toEqual({ year: 2025, month: 2, day: 28 });
    expect(addMonthsToDate({ year: 2024, month: 1, day: 31 }, 1)).toEqual({ year: 2024, month: 2, day: 29 });
    expect(addMonthsToDate({ year: 2025, month: 11, day: 15 }, 3)).toEqual({ year: 2026, month: 2, day: 15 });
  });

  it('parses only real ISO dates', () => {
    expect(parseIsoDate('2025-12-31')).toEqual({ year: 2025, month: 12, day: 31 });
    expect(parseIsoDate('2025-02-30')).toBeUndefined();
    expect(parseIsoDate('31/12/2025')).toBeUndefined();
  });

  it('rounds day counts up', () => {
    expect(ceilDays(new Date(0), new Date(1))).toBe(1);
    expect(ceilDays(new Date(0), new Date(86_400_000))).toBe(1);
    expect(ceilDays(new Date(10), new Date(0))).toBe(0);
  });

  it('knows IANA zones', () => {
    expect(isValidTimeZone('Asia/Singapore')).toBe(true);
    expect(isValidTimeZone('Mars/Olympus')).toBe(false);
    expect(isValidTimeZone('')).toBe(false);
  });

  it('property: an instant lies within its local day, in any zone', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date('2000-01-01Z'), max: new Date('2060-01-01Z'), noInvalidDate: true }),
        fc.constantFrom(...ZONES),
        (instant, zone) => {
          const d = localDate(instant, zone);
          expect(startOfLocalDay(d, zone).getTime()).toBeLessThanOrEqual(instant.getTime());
          expect(endOfLocalDay(d, zone).getTime()).toBeGreaterThan(instant.getTime());
          expect(localDate(startOfLocalDay(d, zone), zone)).toEqual(d);
        },
      ),
    );
  });

  it('property: adding local days moves the calendar date by exactly that many days', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date('2000-01-01Z'), max: new Date('2060-01-01Z'), noInvalidDate: true }),
        fc.integer({ min: -400, max: 400 }),
        fc.constantFrom(...ZONES),
        (instant, days, zone) => {
          const moved = addLocalDays(instant, days, zone);
          const from = localDate(instant, zone);
          const to = localDate(moved, zone);
          const diff = (Date.UTC(to.year, to.month - 1, to.day) - Date.UTC(from.year, from.month - 1, from.day)) / 86_400_000;
          expect(diff).toBe(days);
        },
      ),
    );
  });
});
