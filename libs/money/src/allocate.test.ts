import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allocate, AllocationError, prorate } from './allocate.js';

const total = fc.bigInt({ min: -10_000_000_000n, max: 10_000_000_000n });
const weights = fc.array(fc.bigInt({ min: 0n, max: 1_000_000n }), { minLength: 1, maxLength: 12 }).filter((w) => w.some((x) => x > 0n));

/** |part - total*w/sum| < 1, compared without division: |part*sum - total*w| < sum. */
function withinOneUnit(part: bigint, total: bigint, weight: bigint, sum: bigint): boolean {
  const diff = part * sum - total * weight;
  return (diff < 0n ? -diff : diff) < sum;
}

describe('allocate', () => {
  it('splits 100.00 over three parts giving the extra cent to the first', () => {
    expect(allocate(10000n, 3)).toEqual([3334n, 3333n, 3333n]);
    expect(allocate(200n, 3)).toEqual([67n, 67n, 66n]);
  });

  it('allocates Buy 3 Free 1 at 300.00 as four sessions of 75.00', () => {
    expect(allocate(30000n, 4)).toEqual([7500n, 7500n, 7500n, 7500n]);
  });

  it('allocates by standalone price, largest remainder first', () => {
    // Exact shares 57.14…, 28.57…, 14.28…: floors 57+28+14 = 99, the cent goes to the largest remainder (.57).
    expect(allocate(100n, [400n, 200n, 100n])).toEqual([57n, 29n, 14n]);
  });

  it('mirrors negative totals', () => {
    expect(allocate(-10000n, 3)).toEqual([-3334n, -3333n, -3333n]);
  });

  it('gives zero weights nothing', () => {
    expect(allocate(1001n, [0n, 1n, 0n, 1n])).toEqual([0n, 501n, 0n, 500n]);
    expect(allocate(0n, [0n, 0n])).toEqual([0n, 0n]);
  });

  it('rejects no parts, negative weights and a non-zero total over zero weights', () => {
    expect(() => allocate(100n, [])).toThrow(AllocationError);
    expect(() => allocate(100n, 0)).toThrow(/positive integer/);
    expect(() => allocate(100n, 2.5)).toThrow(/positive integer/);
    expect(() => allocate(100n, [1n, -1n])).toThrow(/weight 1 is negative/);
    expect(() => allocate(100n, [0n, 0n])).toThrow(/all zero/);
  });

  it('always sums exactly to the total', () => {
    fc.assert(
      fc.property(total, weights, (t, w) => {
        expect(allocate(t, w).reduce((a, b) => a + b, 0n)).toBe(t);
      }),
    );
    fc.assert(
      fc.property(total, fc.integer({ min: 1, max: 50 }), (t, n) => {
        expect(allocate(t, n).reduce((a, b) => a + b, 0n)).toBe(t);
      }),
    );
  });

  it('keeps every part within one minor unit of its exact share', () => {
    fc.assert(
      fc.property(total, weights, (t, w) => {
        const sum = w.reduce((a, b) => a + b, 0n);
        allocate(t, w).forEach((part, i) => expect(withinOneUnit(part, t, w[i]!, sum)).toBe(true));
      }),
    );
  });

  it('never gives a larger weight less, nor an earlier equal weight less', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10_000_000_000n }), weights, (t, w) => {
        const parts = allocate(t, w);
        for (let i = 0; i < w.length; i++) {
          for (let j = 0; j < w.length; j++) {
            const wi = w[i]!;
            const wj = w[j]!;
            if (wi > wj || (wi === wj && i < j)) expect(parts[i]! >= parts[j]!).toBe(true);
          }
        }
      }),
    );
  });

  it('never takes from a part whose weight grows', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10_000_000n }), weights, fc.nat(), fc.bigInt({ min: 1n, max: 1000n }), (t, w, at, extra) => {
        const i = at % w.length;
        const grown = w.map((x, j) => (j === i ? x + extra : x));
        expect(allocate(t, grown)[i]! >= allocate(t, w)[i]!).toBe(true);
      }),
    );
  });

  it('is the same for weights scaled by a common factor', () => {
    fc.assert(
      fc.property(total, weights, fc.bigInt({ min: 1n, max: 1000n }), (t, w, k) => {
        expect(allocate(t, w.map((x) => x * k))).toEqual(allocate(t, w));
      }),
    );
  });
});

describe('prorate', () => {
  it('rounds half up (away from zero) by default', () => {
    expect(prorate(1000n, 1n, 3n)).toBe(333n);
    expect(prorate(1000n, 2n, 3n)).toBe(667n);
    expect(prorate(5n, 1n, 2n)).toBe(3n);
    expect(prorate(-5n, 1n, 2n)).toBe(-3n);
  });

  it('rounds towards negative infinity with floor', () => {
    expect(prorate(1000n, 2n, 3n, 'floor')).toBe(666n);
    expect(prorate(-1000n, 2n, 3n, 'floor')).toBe(-667n);
    expect(prorate(900n, 2n, 3n, 'floor')).toBe(600n);
  });

  it('rejects a non-positive denominator and a negative numerator', () => {
    expect(() => prorate(100n, 1n, 0n)).toThrow(/denominator/);
    expect(() => prorate(100n, -1n, 3n)).toThrow(/numerator/);
  });

  it('stays within half a unit (half-up) or one unit below (floor) of the exact value', () => {
    fc.assert(
      fc.property(total, fc.bigInt({ min: 0n, max: 1000n }), fc.bigInt({ min: 1n, max: 1000n }), (a, n, d) => {
        const exact = a * n; // the exact value is exact/d
        const half = prorate(a, n, d) * d - exact;
        expect(2n * (half < 0n ? -half : half) <= d).toBe(true);
        const floor = exact - prorate(a, n, d, 'floor') * d;
        expect(floor >= 0n && floor < d).toBe(true);
        expect(prorate(-a, n, d)).toBe(-prorate(a, n, d));
      }),
    );
  });
});
