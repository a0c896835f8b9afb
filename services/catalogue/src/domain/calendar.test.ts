import { describe, expect, it } from 'vitest';
import { canonicalTimeZone, isCalendarDate } from './calendar.js';

describe('calendar', () => {
  it('knows IANA zones and canonicalizes their spelling', () => {
    expect(canonicalTimeZone('Asia/Singapore')).toBe('Asia/Singapore');
    expect(canonicalTimeZone('asia/kuala_lumpur')).toBe('Asia/Kuala_Lumpur');
    expect(canonicalTimeZone('UTC')).toBe('UTC');
    expect(canonicalTimeZone('Mars/Base')).toBeUndefined();
    expect(canonicalTimeZone('+08:00')).toBeUndefined();
    expect(canonicalTimeZone('')).toBeUndefined();
  });

  it('accepts real calendar dates only', () => {
    expect(isCalendarDate('2024-02-29')).toBe(true);
    expect(isCalendarDate('2023-02-29')).toBe(false);
    expect(isCalendarDate('2024-13-01')).toBe(false);
    expect(isCalendarDate('2024-1-01')).toBe(false);
    expect(isCalendarDate('2024-01-01T00:00:00Z')).toBe(false);
  });
});
