import fc from 'fast-check';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { parseTimestamptz } from './timestamptz.js';

const byPg = pg.types.getTypeParser(1184) as (text: string) => unknown;

const pad = (v: number, width: number) => String(v).padStart(width, '0');

/** A timestamptz as Postgres prints it with DateStyle ISO: the local time at `offsetSeconds`, then the offset. */
function printed(utcMs: number, micros: number, fractionDigits: number, offsetSeconds: number): string {
  const local = new Date(utcMs + offsetSeconds * 1000);
  const fraction = fractionDigits === 0 ? '' : `.${pad(micros, 6).slice(0, fractionDigits)}`;
  const abs = Math.abs(offsetSeconds);
  const [h, m, s] = [Math.floor(abs / 3600), Math.floor((abs % 3600) / 60), abs % 60];
  const offset = `${offsetSeconds < 0 ? '-' : '+'}${pad(h, 2)}${m || s ? `:${pad(m, 2)}` : ''}${s ? `:${pad(s, 2)}` : ''}`;
  return (
    `${pad(local.getUTCFullYear(), 4)}-${pad(local.getUTCMonth() + 1, 2)}-${pad(local.getUTCDate(), 2)} ` +
    `${pad(local.getUTCHours(), 2)}:${pad(local.getUTCMinutes(), 2)}:${pad(local.getUTCSeconds(), 2)}${fraction}${offset}`
  );
}

describe('parseTimestamptz', () => {
  it('reads what Postgres prints into the Date pg would', () => {
    expect(parseTimestamptz('2026-12-07 11:00:44.123456+00')).toEqual(new Date('2026-12-07T11:00:44.123Z'));
    expect(parseTimestamptz('2026-12-07 16:30:44+05:30')).toEqual(new Date('2026-12-07T11:00:44Z'));
    expect(parseTimestamptz('2026-12-07 07:30:44.5-03:30')).toEqual(new Date('2026-12-07T11:00:44.500Z'));
    // Amsterdam's local mean time: an offset with seconds.
    expect(parseTimestamptz('1900-01-01 00:19:32+00:19:32')).toEqual(new Date('1900-01-01T00:00:00Z'));
  });

  it('agrees with pg on every instant, fraction and offset Postgres can print', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: Date.UTC(1000, 0, 2), max: Date.UTC(9999, 11, 30) }),
        fc.integer({ min: 0, max: 999_999 }),
        fc.integer({ min: 0, max: 6 }),
        fc.oneof(fc.constant(0), fc.integer({ min: -15, max: 15 }).map((h) => h * 3600), fc.integer({ min: -15 * 3600, max: 15 * 3600 })),
        (seconds, micros, fractionDigits, offsetSeconds) => {
          const utcMs = Math.floor(seconds / 1000) * 1000;
          const text = printed(utcMs, micros, fractionDigits, offsetSeconds);
          const ours = parseTimestamptz(text);
          expect(ours).toBeInstanceOf(Date);
          expect((ours as Date).getTime()).toBe((byPg(text) as Date).getTime());
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("leaves every other shape to pg's parser", () => {
    for (const text of [
      'infinity',
      '-infinity',
      '0044-03-15 12:00:00+00 BC',
      '0099-06-01 00:00:00+00',
      '12026-01-01 00:00:00+00',
      '2026-12-07T11:00:44Z',
      '2026-12-07 11:00:44',
      '2026-12-07 11:00:44.+00',
      '2026-12-07 11:00:44+0',
      '2026-12-07 11:00:44+00:3',
      '2026-12-07 11:00:44+00:30:00:00',
      '2026-12-07 11:00:44+00 ',
      '2026-1x-07 11:00:44+00',
    ]) {
      expect([text, parseTimestamptz(text)]).toEqual([text, byPg(text)]);
    }
  });
});
