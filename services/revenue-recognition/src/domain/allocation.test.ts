import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allocateSessions, sessionKinds } from './allocation.js';
import { RevenueRuleError } from './errors.js';

const equal = (n: number) => Array.from({ length: n }, () => ({ bonus: false, standalone: 0n }));

describe('allocateSessions', () => {
  it('allocates Buy 3 Free 1 at 300.00 as four sessions of 75.00', () => {
    const kinds = sessionKinds(3, 1, 'PAID_FIRST');
    expect(kinds).toEqual([false, false, false, true]);
    expect(allocateSessions(30000n, kinds.map((bonus) => ({ bonus, standalone: 9000n })))).toEqual([7500n, 7500n, 7500n, 7500n]);
  });

  it('allocates 100.00 over three sessions as 33.34 + 33.33 + 33.33, the extra cent first', () => {
    expect(allocateSessions(10000n, equal(3))).toEqual([3334n, 3333n, 3333n]);
  });

  it('weights by standalone price when sessions differ', () => {
    expect(
      allocateSessions(10000n, [
        { bonus: false, standalone: 6000n },
        { bonus: false, standalone: 3000n },
        { bonus: true, standalone: 1000n },
      ]),
    ).toEqual([6000n, 3000n, 1000n]);
  });

  it('falls back to equal shares when a session has no standalone price', () => {
    expect(allocateSessions(10000n, [{ bonus: false, standalone: 6000n }, { bonus: true, standalone: 0n }])).toEqual([5000n, 5000n]);
  });

  it('numbers bonus sessions first when the definition consumes them first', () => {
    expect(sessionKinds(2, 1, 'BONUS_FIRST')).toEqual([true, false, false]);
  });

  it('refuses a priced package without sessions and negative inputs, naming the field', () => {
    expect(() => allocateSessions(100n, [])).toThrow(RevenueRuleError);
    expect(() => allocateSessions(100n, [])).toThrow(/paid_sessions/);
    expect(() => allocateSessions(-1n, equal(1))).toThrow(/price/);
    expect(() => sessionKinds(-1, 0, 'PAID_FIRST')).toThrow(/paid_sessions/);
    expect(allocateSessions(0n, [])).toEqual([]);
  });

  it('always sums back to the price to the cent, each session within a cent of its share', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10_000_000_00n }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 10 }), (price, paid, bonus) => {
        const parts = allocateSessions(price, equal(paid + bonus));
        expect(parts.reduce((a, b) => a + b, 0n)).toBe(price);
        const n = BigInt(paid + bonus);
        for (const p of parts) expect(p * n - price <= n && price - p * n <= n).toBe(true);
        // Earlier sessions never get less, so recognising in session order front-loads the odd cent.
        for (let i = 1; i < parts.length; i++) expect(parts[i - 1]! >= parts[i]!).toBe(true);
      }),
    );
  });
});
