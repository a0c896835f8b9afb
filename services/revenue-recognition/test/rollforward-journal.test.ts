import { RefundMethod } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import type { RollForwardRow } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RollForward } from '../src/domain/reports.js';
import type { ReportScope } from '../src/store/reports.js';
import { buy3free1, tenPack, threeForHundred } from './support/fixtures.js';
import { finance, Harness, newTenant } from './support/harness.js';
import { balancesAndJournal, rollForwardFromJournal } from './support/journal-reference.js';
import { SimEntitlement, type LedgerEvent, type Terms } from './support/ledger-sim.js';

/**
 * The liability roll-forward over a varied journal posted by the service from ledger events (sales,
 * consumes at both branches, reversals, top-ups, transfers, upgrades, refunds, expiries, one-off visits;
 * three tenants, two currencies, one tenant changing currency half-way, a branch whose accounting dates
 * fall on the day before Singapore's) equals the sums taken straight from journal_line, for periods
 * before, around, inside and after the history, with and without branch and package filters.
 */
let h: Harness;
const NORTH = 'north';
const SOUTH = 'south';
const WEST = 'west';
const ZONES: Record<string, string> = { [NORTH]: 'Asia/Singapore', [SOUTH]: 'Asia/Singapore', [WEST]: 'America/New_York' };
const FIRST = Date.UTC(2025, 0, 20, 23, 30);
const at = (day: number) => new Date(FIRST + day * 86_400_000);

/** The same terms priced in another currency. */
function inCurrency<T>(value: T, currencyCode: string): T {
  if (Array.isArray(value)) return value.map((v: unknown) => inCurrency(v, currencyCode)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, k === 'currencyCode' ? currencyCode : inCurrency(v, currencyCode)])) as T;
  }
  return value;
}

/**
 * Six packages bought every nine days from `from`, each with a different life: consumed at both
 * branches with a reversal, topped up, transferred, upgraded, refunded, expired, frozen.
 */
function history(tenantId: string, currency: string, from: number, prefix: string): LedgerEvent[] {
  const terms = (i: number): Terms =>
    inCurrency(
      i % 2 === 0
        ? buy3free1({ breakageBps: i % 4 === 0 ? 0 : 2500, costBranch: SOUTH, refund: { method: RefundMethod.USED_AT_STANDALONE_PRICE } })
        : threeForHundred({ breakageBps: 2000, refund: { method: RefundMethod.PRO_RATA, adminFee: 500n } }),
      currency,
    );
  const events: LedgerEvent[] = [];
  for (let i = 0; i < 6; i++) {
    const d = from + i * 9;
    const seller = [NORTH, SOUTH, WEST][i % 3]!;
    const e = new SimEntitlement({ tenantId, definitionId: `${prefix}-${i % 2}`, terms: terms(i), branchId: seller, timeZone: ZONES[seller]!, at: at(d) });
    events.push(e.purchase(), e.consume(NORTH, at(d + 2)));
    const second = e.consume(SOUTH, at(d + 5));
    events.push(second, e.reverse(second.id, at(d + 6)));
    if (i % 3 === 0) events.push(e.topUp(1, SOUTH, at(d + 7)));
    if (i === 1) {
      const { out, into, receiver } = e.transfer('member-2', at(d + 8));
      events.push(out, into, receiver.consume(WEST, at(d + 30)));
    } else if (i === 2) {
      const { out, into, upgraded } = e.upgrade({ definitionId: `${prefix}-TEN`, terms: inCurrency(tenPack(), currency), branchId: SOUTH, timeZone: ZONES[SOUTH]! }, at(d + 8));
      events.push(out, into, upgraded.consume(NORTH, at(d + 12)), upgraded.consume(SOUTH, at(d + 40)));
    } else if (i === 3) {
      events.push(e.refund(at(d + 8)));
    } else if (i === 4) {
      events.push(e.expire(at(d + 25)));
    } else {
      events.push(e.freeze(at(d + 8)), e.unfreeze(at(d + 20)), e.consume(WEST, at(d + 21)));
    }
  }
  return events;
}

const A = newTenant('sgd');
const B = newTenant('myr');
const C = newTenant('switch');
const CURRENCY: Record<string, string> = { [A]: 'SGD', [B]: 'MYR', [C]: 'MYR' };

beforeAll(async () => {
  h = await Harness.start('rfjournal');
  const catalogue = [
    await h.tenant(A, { currency: 'SGD', at: new Date('2025-01-01T00:00:00Z') }),
    await h.tenant(B, { currency: 'MYR', earningRule: 'PURCHASING_BRANCH', at: new Date('2025-01-01T00:00:00Z') }),
    await h.tenant(C, { currency: 'SGD', at: new Date('2025-01-01T00:00:00Z') }),
  ];
  for (const t of [A, B, C]) for (const [b, zone] of Object.entries(ZONES)) catalogue.push(await h.branch(t, b, zone));
  await h.settled(catalogue);

  const events = [...history(A, 'SGD', 0, 'pa'), ...history(A, 'SGD', 40, 'pb'), ...history(B, 'MYR', 10, 'pa'), ...history(C, 'SGD', 0, 'pa')];
  for (const e of events) await h.ledger(e);
  const visits = await Promise.all([h.visit({ tenantId: A, branchId: NORTH, at: at(3), price: 4500n }), h.visit({ tenantId: B, branchId: WEST, at: at(31), price: 6000n, currency: 'MYR' })]);
  await h.settled([...events.map((e) => e.id), ...visits.map((v) => v.id)], 60_000);

  // C now books in MYR: its SGD history stays in the journal, out of its reports.
  await h.settled([await h.tenant(C, { currency: 'MYR', at: new Date('2025-06-01T00:00:00Z') })]);
  const later = history(C, 'MYR', 30, 'pa');
  for (const e of later) await h.ledger(e);
  await h.settled(later.map((e) => e.id), 60_000);
}, 120_000);

afterAll(async () => {
  await h?.close();
});

const fromRow = (r: RollForwardRow | undefined): RollForward => ({
  opening: r?.opening?.amountMinor ?? 0n,
  sales: r?.sales?.amountMinor ?? 0n,
  topUps: r?.topUps?.amountMinor ?? 0n,
  recognised: r?.recognised?.amountMinor ?? 0n,
  breakage: r?.breakage?.amountMinor ?? 0n,
  refunds: r?.refunds?.amountMinor ?? 0n,
  transfers: r?.transfers?.amountMinor ?? 0n,
  closing: r?.closing?.amountMinor ?? 0n,
});

const PERIODS = [
  { startDate: '2024-01-01', endDate: '2025-01-01' },
  { startDate: '2025-01-01', endDate: '2025-02-01' },
  { startDate: '2025-02-01', endDate: '2025-03-01' },
  { startDate: '2025-03-01', endDate: '2025-04-01' },
  { startDate: '2025-01-25', endDate: '2025-02-14' },
  { startDate: '2025-02-14', endDate: '2025-02-15' },
  { startDate: '2025-02-28', endDate: '2025-03-02' },
  { startDate: '2025-02-10', endDate: '2025-04-20' },
  { startDate: '2025-01-01', endDate: '2026-01-01' },
  { startDate: '2025-06-01', endDate: '2025-07-01' },
];

describe('the liability roll-forward against journal_line', () => {
  it('the kept balances are journal_line summed per day and per month, every tenant and currency', async () => {
    const b = await balancesAndJournal(h.db);
    expect(b.days.length).toBeGreaterThan(50);
    expect(b.days).toEqual(b.daysFromJournal);
    expect(b.months).toEqual(b.monthsFromJournal);
    const { rows } = await sql<{ currency: string }>`select distinct currency from journal_line where tenant_id = ${C} order by currency`.execute(h.db);
    expect(rows.map((r) => r.currency)).toEqual(['MYR', 'SGD']);
  });

  it.each([A, B, C])('equals the sums over journal_line for every period, branch and package: tenant %s', async (tenantId) => {
    const scopes: { branchId?: string; definitionId?: string }[] = [{}, { branchId: NORTH }, { branchId: WEST }, { definitionId: 'pa-0' }, { branchId: SOUTH, definitionId: 'pa-TEN' }];
    let shown = 0;
    for (const period of PERIODS) {
      for (const filter of scopes) {
        const rows: RollForwardRow[] = [];
        let pageToken = '';
        let total: RollForwardRow | undefined;
        do {
          const r = await h.call('getLiabilityRollForward', { period, pageSize: 2, pageToken, ...filter }, finance(tenantId));
          rows.push(...r.rows);
          total = r.total;
          pageToken = r.nextPageToken;
        } while (pageToken);
        const s: ReportScope = { tenantId, currency: CURRENCY[tenantId]!, period: { start: period.startDate, end: period.endDate }, ...filter };
        const reference = await rollForwardFromJournal(h.db, s);
        const what = `${period.startDate}..${period.endDate} ${JSON.stringify(filter)}`;
        expect([what, rows.map((r) => ({ branchId: r.branchId, definitionId: r.definitionId, rollForward: fromRow(r) }))]).toEqual([what, reference.rows]);
        expect([what, fromRow(total)]).toEqual([what, reference.total]);
        shown += rows.length;
      }
    }
    expect(shown).toBeGreaterThan(20);
  });
});
