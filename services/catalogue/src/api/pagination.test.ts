import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodePageToken, encodePageToken, page, pageSize } from './pagination.js';

describe('pagination', () => {
  it('defaults, clamps and refuses negative sizes', () => {
    expect(pageSize(0)).toBe(50);
    expect(pageSize(7)).toBe(7);
    expect(pageSize(500)).toBe(200);
    expect(() => pageSize(-1)).toThrow('page_size: must not be negative');
  });

  it('round-trips cursors and refuses foreign or broken tokens', () => {
    fc.assert(
      fc.property(fc.string(), fc.record({ status: fc.string() }), (after, filter) => {
        expect(decodePageToken(encodePageToken(after, filter), filter)).toBe(after);
      }),
    );
    expect(decodePageToken('', {})).toBeUndefined();
    expect(() => decodePageToken('%%%', {})).toThrow('page_token: malformed');
    expect(() => decodePageToken(encodePageToken('A', { s: 1 }), { s: 2 })).toThrow('page_token: was issued for different filters');
  });

  it('pages through any list exactly once, in order', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string(), { maxLength: 40 }), fc.integer({ min: 1, max: 10 }), (keys, limit) => {
        const sorted = [...keys].sort();
        const seen: string[] = [];
        let after: string | undefined;
        for (;;) {
          const rows = sorted.filter((k) => after === undefined || k > after).slice(0, limit + 1);
          const p = page(rows, limit, (k) => k, {});
          seen.push(...p.items);
          if (!p.nextPageToken) break;
          after = decodePageToken(p.nextPageToken, {});
        }
        expect(seen).toEqual(sorted);
      }),
    );
  });
});
