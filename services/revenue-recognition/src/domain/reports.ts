import { prorate } from '@punchcard/money';
import type { DateRange } from './calendar.js';
import type { JournalLine, Movement } from './types.js';

/** A journal line as posted: with the entry's accounting date and package. */
export interface PostedLine extends JournalLine {
  accountingDate: string;
  definitionId: string;
}

export interface RollForward {
  opening: bigint;
  sales: bigint;
  topUps: bigint;
  recognised: bigint;
  breakage: bigint;
  refunds: bigint;
  /** Net of transfers and upgrades in (+) and out (-). */
  transfers: bigint;
  closing: bigint;
}

export const ZERO_ROLL_FORWARD: RollForward = {
  opening: 0n,
  sales: 0n,
  topUps: 0n,
  recognised: 0n,
  breakage: 0n,
  refunds: 0n,
  transfers: 0n,
  closing: 0n,
};

/** Deferred revenue movements of one period, summed per column as the liability's credit − debit. */
export type MovementSums = Readonly<Record<Movement, bigint>>;

/**
 * The columns of the roll-forward from the liability increase (credit − debit) of each movement kind.
 * `opening` and `closing` are the balances before the period and at its end, summed independently,
 * so {@link rollForwardHolds} is a real check rather than a tautology.
 */
export function rollForwardRow(opening: bigint, movements: MovementSums, closing: bigint): RollForward {
  return {
    opening,
    sales: movements.SALE,
    topUps: movements.TOP_UP,
    recognised: -movements.RECOGNISED,
    breakage: -movements.BREAKAGE,
    refunds: -movements.REFUND,
    transfers: movements.TRANSFER,
    closing,
  };
}

/** opening + sales + top-ups − recognised − breakage − refunds ± transfers = closing. */
export function rollForwardHolds(r: RollForward): boolean {
  return r.opening + r.sales + r.topUps - r.recognised - r.breakage - r.refunds + r.transfers === r.closing;
}


/**
 * The roll-forward of deferred revenue per (branch, package) straight from posted lines: the
 * reference implementation the database report is checked against.
 */
export function rollForward(lines: readonly PostedLine[], period: DateRange): Map<string, RollForward> {
  const out = new Map<string, { opening: bigint; closing: bigint; m: Record<Movement, bigint> }>();
  for (const l of lines) {
    if (l.account !== 'DEFERRED_REVENUE' || !l.movement) continue;
    if (l.accountingDate >= period.end) continue;
    const key = `${l.branchId}|${l.definitionId}`;
    let acc = out.get(key);
    if (!acc) {
      acc = { opening: 0n, closing: 0n, m: { SALE: 0n, TOP_UP: 0n, RECOGNISED: 0n, BREAKAGE: 0n, REFUND: 0n, TRANSFER: 0n } };
      out.set(key, acc);
    }
    const change = l.credit - l.debit;
    if (l.accountingDate < period.start) acc.opening += change;
    else acc.m[l.movement] += change;
    acc.closing += change;
  }
  return new Map([...out].map(([k, v]) => [k, rollForwardRow(v.opening, v.m, v.closing)]));
}

/** Profit / revenue in basis points, half-up; 0 when nothing was recognised. */
export function marginBps(profit: bigint, revenue: bigint): number {
  if (revenue <= 0n) return 0;
  const bps = prorate(profit, 10_000n, revenue);
  const limit = 2_147_483_647n;
  return Number(bps > limit ? limit : bps < -limit ? -limit : bps);
}
