import pg from 'pg';

const TIMESTAMPTZ_OID = 1184;
const byPg = pg.types.getTypeParser(TIMESTAMPTZ_OID) as (text: string) => unknown;

const MINUS = 45;
const PLUS = 43;

/**
 * A `timestamptz` as Postgres prints it with `DateStyle` ISO, `YYYY-MM-DD HH:MM:SS[.ffffff]±HH[:MM[:SS]]`,
 * read digit by digit. pg's own parser (postgres-date) runs three regular expressions and makes a
 * dozen strings for each value, and the services read thousands a second (the scheduler 16 per
 * expiry): in a sweep that was 7.6 % of the scheduler's allocation. The result is the Date pg's would
 * give, milliseconds truncated as it does; whatever does not have that exact shape (infinity, BC, years
 * before 1000 or after 9999, another `DateStyle`) goes to pg's parser.
 */
export function parseTimestamptz(text: string): unknown {
  const n = text.length;
  if (n < 22 || text.charCodeAt(4) !== MINUS || text.charCodeAt(7) !== MINUS || text.charCodeAt(10) !== 32 || text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58) {
    return byPg(text);
  }
  const year = digits(text, 0, 4);
  const month = digits(text, 5, 2);
  const day = digits(text, 8, 2);
  const hour = digits(text, 11, 2);
  const minute = digits(text, 14, 2);
  const second = digits(text, 17, 2);
  // Date.UTC reads the years 0–99 as 1900–1999, which pg's parser corrects; early years are rare enough to leave to it.
  if (year < 1000 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return byPg(text);

  let i = 19;
  let ms = 0;
  if (text.charCodeAt(i) === 46) {
    const start = ++i;
    for (let scale = 100; i < n; i++) {
      const d = text.charCodeAt(i) - 48;
      if (!(d >= 0 && d <= 9)) break;
      ms += d * scale;
      scale = (scale / 10) | 0;
    }
    if (i === start) return byPg(text);
  }

  const sign = text.charCodeAt(i);
  if (sign !== PLUS && sign !== MINUS) return byPg(text);
  // ±HH, then :MM and :SS where the zone's offset has them (historical local mean times do).
  let offsetSeconds = 0;
  for (let unit = 3600; ; unit /= 60) {
    const v = digits(text, i + 1, 2);
    if (v < 0) return byPg(text);
    offsetSeconds += v * unit;
    i += 3;
    if (i === n) break;
    if (unit === 1 || text.charCodeAt(i) !== 58) return byPg(text);
  }

  const utc = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  return new Date(sign === PLUS ? utc - offsetSeconds * 1000 : utc + offsetSeconds * 1000);
}

/** The number written by `length` decimal digits at `start`, or -1 if any is not one. */
function digits(text: string, start: number, length: number): number {
  let v = 0;
  for (let i = start; i < start + length; i++) {
    const d = text.charCodeAt(i) - 48;
    // Past the end charCodeAt is NaN, which no comparison holds for.
    if (!(d >= 0 && d <= 9)) return -1;
    v = v * 10 + d;
  }
  return v;
}
