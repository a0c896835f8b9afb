import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { breakageTarget, openBreakageTarget } from './breakage.js';

describe('breakage targets', () => {
  it('is nothing before expiry with the default method, everything unredeemed at expiry', () => {
    expect(openBreakageTarget(30000n, 15000n, 0)).toBe(0n);
    expect(breakageTarget(30000n, 15000n, 0, true)).toBe(15000n);
  });

  it('recognises expected breakage in proportion to redemptions', () => {
    // 25% of 300.00 expected to break: 75.00 over the 225.00 expected to be redeemed.
    expect(openBreakageTarget(30000n, 7500n, 2500)).toBe(2500n);
    expect(openBreakageTarget(30000n, 15000n, 2500)).toBe(5000n);
    expect(openBreakageTarget(30000n, 22500n, 2500)).toBe(7500n);
  });

  it('gives breakage back when members redeem more than expected', () => {
    expect(openBreakageTarget(30000n, 30000n, 2500)).toBe(0n);
    expect(openBreakageTarget(30000n, 25000n, 2500)).toBe(5000n);
  });

  it('stays between zero and the unredeemed value, and closes to the same total either way', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 9n }), fc.bigInt({ min: 0n, max: 10n ** 9n }), fc.integer({ min: 0, max: 10_000 }), (a, b, bps) => {
        const [redeemed, value] = a <= b ? [a, b] : [b, a];
        const open = openBreakageTarget(value, redeemed, bps);
        expect(open >= 0n && open <= value - redeemed).toBe(true);
        expect(breakageTarget(value, redeemed, bps, true)).toBe(breakageTarget(value, redeemed, 0, true));
      }),
    );
  });

  it('never falls while redemptions stay within what was expected', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 10n ** 9n }), fc.integer({ min: 1, max: 9_999 }), fc.double({ min: 0, max: 1, noNaN: true }), (value, bps, f) => {
        const expectedRedeemed = value - (value * BigInt(bps)) / 10_000n;
        const r1 = BigInt(Math.floor(Number(expectedRedeemed) * f));
        const r2 = expectedRedeemed;
        expect(openBreakageTarget(value, r1, bps) <= openBreakageTarget(value, r2, bps)).toBe(true);
      }),
    );
  });
});
