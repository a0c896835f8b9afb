import { prorate } from '@punchcard/money';

export const BPS = 10_000n;

/**
 * Cumulative breakage a contract should carry while it is still open:
 * - `bps` = 0 (the default): none; everything left is breakage at expiry;
 * - otherwise, proportional: expected breakage EB = value × bps, recognised in proportion to the value
 *   redeemed so far against the value expected to be redeemed (value − EB), never more than the value
 *   not yet redeemed, so deferred revenue never goes negative when members redeem more than expected.
 * A function of (value, redeemed) only, so it does not depend on the order of consumes and reversals.
 */
export function openBreakageTarget(value: bigint, redeemed: bigint, bps: number): bigint {
  if (bps <= 0 || redeemed <= 0n) return 0n;
  const unredeemed = value - redeemed;
  if (unredeemed <= 0n) return 0n;
  const expected = prorate(value, BigInt(Math.min(bps, 10_000)), BPS, 'floor');
  const expectedRedeemed = value - expected;
  if (expectedRedeemed <= 0n) return unredeemed;
  const proportional = prorate(expected, redeemed, expectedRedeemed, 'floor');
  return proportional < unredeemed ? proportional : unredeemed;
}

/** Breakage a contract should carry: open, per {@link openBreakageTarget}; closed, all it has not redeemed. */
export function breakageTarget(value: bigint, redeemed: bigint, bps: number, closed: boolean): bigint {
  return closed ? value - redeemed : openBreakageTarget(value, redeemed, bps);
}
