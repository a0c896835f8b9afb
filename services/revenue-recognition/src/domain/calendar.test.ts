import { describe, expect, it } from 'vitest';
import { accountingDate, isCalendarDate, parsePeriod } from './calendar.js';

describe('accounting dates', () => {
  it('uses the branch time zone, not UTC', () => {
    const instant = new Date('2025-03-31T17:30:00Z');
    expect(accountingDate(instant, 'Asia/Singapore')).toBe('2025-04-01');
    expect(accountingDate(instant, 'America/New_York')).toBe('2025-03-31');
    expect(accountingDate(instant, '')).toBe('2025-03-31');
  });

  it('names the field for a bad zone or period', () => {
    expect(() => accountingDate(new Date(), 'Mars/Olympus')).toThrow(/time_zone/);
    expect(() => parsePeriod('2025-02-30', '2025-03-01')).toThrow(/period.start_date/);
    expect(() => parsePeriod('2025-03-01', '2025-03-01')).toThrow(/period.end_date/);
    expect(parsePeriod('2025-03-01', '2025-04-01')).toEqual({ start: '2025-03-01', end: '2025-04-01' });
    expect(isCalendarDate('2024-02-29')).toBe(true);
    expect(isCalendarDate('2025-2-01')).toBe(false);
  });
});
