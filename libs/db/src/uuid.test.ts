import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isUuid, uuidv7 } from './uuid.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
// Milliseconds up to the year 10889, the most 48 bits hold.
const millis = fc.integer({ min: 0, max: 2 ** 48 - 1 });

describe('uuidv7', () => {
  it('is a UUIDv7 whose first 48 bits are the time', () => {
    expect(uuidv7(Date.UTC(2026, 11, 6, 10, 0, 0))).toMatch(/^01a24acb-cd00-7/);
    fc.assert(
      fc.property(millis, (now) => {
        const id = uuidv7(now);
        expect(id).toMatch(UUID_V7);
        expect(parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(now);
      }),
    );
  });

  it('sorts ids made later after ids made earlier, as text and as Postgres uuids compare them', () => {
    fc.assert(
      fc.property(millis, millis, (a, b) => {
        fc.pre(a !== b);
        const [earlier, later] = a < b ? [a, b] : [b, a];
        expect(uuidv7(earlier) < uuidv7(later)).toBe(true);
      }),
    );
  });

  it('differs within one millisecond', () => {
    const now = Date.now();
    const ids = new Set(Array.from({ length: 10_000 }, () => uuidv7(now)));
    expect(ids.size).toBe(10_000);
  });
});

describe('isUuid', () => {
  it('takes the canonical text of any version in either case, and nothing else', () => {
    expect(isUuid(uuidv7())).toBe(true);
    expect(isUuid('3F2504E0-4F89-11D3-9A0C-0305E82C3301')).toBe(true);
    expect(isUuid('00000000-0000-0000-0000-000000000000')).toBe(true);
    expect(isUuid('3f2504e04f8911d39a0c0305e82c3301')).toBe(false);
    expect(isUuid('{3f2504e0-4f89-11d3-9a0c-0305e82c3301}')).toBe(false);
    expect(isUuid('3f2504e0-4f89-11d3-9a0c-0305e82c330')).toBe(false);
    expect(isUuid('3f2504e0-4f89-11d3-9a0c-0305e82c3301\n')).toBe(false);
    expect(isUuid('g f2504e0-4f89-11d3-9a0c-0305e82c3301')).toBe(false);
  });
});
