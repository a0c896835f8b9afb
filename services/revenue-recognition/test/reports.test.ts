import { Code, ConnectError } from '@connectrpc/connect';
import { Report, type RollForwardRow } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buy3free1, threeForHundred } from './support/fixtures.js';
import { day, finance, Harness, newTenant } from './support/harness.js';
import { SimEntitlement, type LedgerEvent } from './support/ledger-sim.js';
import { amount } from './support/show.js';

/**
 * The documented fixture (README.md, "Report fixture"): two Singapore branches, three packages and two
 * one-off visits over March and April 2025. Every figure below is computed by hand there.
 */
let h: Harness;
const T = newTenant('clinic');
const O = 'orchard';
const TP = 'tampines';
const MARCH = { startDate: '2025-03-01', endDate: '2025-04-01' };
const APRIL = { startDate: '2025-04-01', endDate: '2025-05-01' };

beforeAll(async () => {
  h = await Harness.start('reports');
  await h.settled([await h.tenant(T), await h.branch(T, O, 'Asia/Singapore'), await h.branch(T, TP, 'Asia/Singapore')]);
  const b3f1 = buy3free1({ costBranch: TP });
  const p3 = threeForHundred({ breakageBps: 2000 });
  const at = (d: string) => day(d);
  const e1 = new SimEntitlement({ tenantId: T, definitionId: 'B3F1', terms: b3f1, branchId: O, timeZone: 'Asia/Singapore', at: at('2025-03-01') });
  const e2 = new SimEntitlement({ tenantId: T, definitionId: 'P3', terms: p3, branchId: TP, timeZone: 'Asia/Singapore', at: at('2025-03-03') });
  const e3 = new SimEntitlement({ tenantId: T, definitionId: 'B3F1', terms: b3f1, branchId: TP, timeZone: 'Asia/Singapore', at: at('2025-03-20') });
  const events: LedgerEvent[] = [e1.purchase(), e2.purchase(), e1.consume(O, at('2025-03-05')), e1.consume(TP, at('2025-03-08')), e2.consume(TP, at('2025-03-10'))];
  const third = e1.consume(O, at('2025-03-12'));
  events.push(third, e1.reverse(third.id, at('2025-03-13')), e3.purchase(), e3.consume(O, at('2025-03-25')));
  // 16:30 UTC on 31 March is 00:30 on 1 April in Singapore: an April entry.
  events.push(e2.consume(TP, new Date('2025-03-31T16:30:00Z')), e1.expire(at('2025-04-10')), e3.consume(TP, at('2025-04-12')));
  for (const e of events) await h.ledger(e);
  const v1 = await h.visit({ tenantId: T, branchId: O, at: at('2025-03-15'), price: 4500n });
  const v2 = await h.visit({ tenantId: T, branchId: TP, at: at('2025-04-05'), price: 6000n });
  await h.settled([...events.map((e) => e.id), v1.id, v2.id]);
});

afterAll(async () => {
  await h?.close();
});

const rf = (r: RollForwardRow | undefined) =>
  r && [r.branchId, r.definitionId, ...[r.opening, r.sales, r.topUps, r.recognised, r.breakage, r.refunds, r.transfers, r.closing].map(amount)];

describe('liability roll-forward', () => {
  it('March: opening + sales - recognised - breakage = closing per branch and package', async () => {
    const res = await h.call('getLiabilityRollForward', { period: MARCH }, finance(T));
    expect(res.rows.map(rf)).toEqual([
      [O, 'B3F1', '0.00', '300.00', '0.00', '150.00', '0.00', '0.00', '0.00', '150.00'],
      [TP, 'B3F1', '0.00', '300.00', '0.00', '75.00', '0.00', '0.00', '0.00', '225.00'],
      [TP, 'P3', '0.00', '100.00', '0.00', '33.34', '8.33', '0.00', '0.00', '58.33'],
    ]);
    expect(rf(res.total)).toEqual(['', '', '0.00', '700.00', '0.00', '258.34', '8.33', '0.00', '0.00', '433.33']);
  });

  it('April: March closing opens April; expiry breaks what is left', async () => {
    const res = await h.call('getLiabilityRollForward', { period: APRIL }, finance(T));
    expect(res.rows.map(rf)).toEqual([
      [O, 'B3F1', '150.00', '0.00', '0.00', '0.00', '150.00', '0.00', '0.00', '0.00'],
      [TP, 'B3F1', '225.00', '0.00', '0.00', '75.00', '0.00', '0.00', '0.00', '150.00'],
      [TP, 'P3', '58.33', '0.00', '0.00', '33.33', '8.33', '0.00', '0.00', '16.67'],
    ]);
    expect(rf(res.total)).toEqual(['', '', '433.33', '0.00', '0.00', '108.33', '158.33', '0.00', '0.00', '166.67']);
  });

  it('filters by branch and package, and pages with tokens bound to their filters', async () => {
    const one = await h.call('getLiabilityRollForward', { period: MARCH, branchId: TP, definitionId: 'P3' }, finance(T));
    expect(one.rows.map(rf)).toEqual([[TP, 'P3', '0.00', '100.00', '0.00', '33.34', '8.33', '0.00', '0.00', '58.33']]);
    expect(rf(one.total)?.slice(2)).toEqual(['0.00', '100.00', '0.00', '33.34', '8.33', '0.00', '0.00', '58.33']);

    const seen: string[] = [];
    let token = '';
    do {
      const page = await h.call('getLiabilityRollForward', { period: MARCH, pageSize: 1, pageToken: token }, finance(T));
      seen.push(...page.rows.map((r) => `${r.branchId}/${r.definitionId}`));
      expect(amount(page.total?.closing)).toBe('433.33');
      token = page.nextPageToken;
    } while (token);
    expect(seen).toEqual([`${O}/B3F1`, `${TP}/B3F1`, `${TP}/P3`]);

    const first = await h.call('getLiabilityRollForward', { period: MARCH, pageSize: 1 }, finance(T));
    await expect(h.call('getLiabilityRollForward', { period: APRIL, pageSize: 1, pageToken: first.nextPageToken }, finance(T))).rejects.toThrow(/page_token: was issued for different filters/);
    await expect(h.call('getLiabilityRollForward', { period: MARCH, pageToken: 'garbage' }, finance(T))).rejects.toThrow(/page_token/);
  });
});

describe('revenue reports', () => {
  it('recognised revenue by accounting date, branch (where earned) and package', async () => {
    const res = await h.call('getRecognisedRevenue', { period: MARCH }, finance(T));
    expect(res.rows.map((r) => [r.accountingDate, r.branchId, r.definitionId, amount(r.packageRevenue), amount(r.breakageRevenue), r.sessions])).toEqual([
      ['2025-03-05', O, 'B3F1', '75.00', '0.00', 1],
      ['2025-03-08', TP, 'B3F1', '75.00', '0.00', 1],
      ['2025-03-10', TP, 'P3', '33.34', '8.33', 1],
      ['2025-03-12', O, 'B3F1', '75.00', '0.00', 1],
      ['2025-03-13', O, 'B3F1', '-75.00', '0.00', -1],
      ['2025-03-25', O, 'B3F1', '75.00', '0.00', 1],
    ]);
    const april = await h.call('getRecognisedRevenue', { period: APRIL, pageSize: 2 }, finance(T));
    expect(april.rows.map((r) => [r.accountingDate, r.branchId, r.definitionId])).toEqual([
      ['2025-04-01', TP, 'P3'],
      ['2025-04-10', O, 'B3F1'],
    ]);
    const rest = await h.call('getRecognisedRevenue', { period: APRIL, pageSize: 2, pageToken: april.nextPageToken }, finance(T));
    expect(rest.rows.map((r) => [r.accountingDate, r.branchId, amount(r.packageRevenue), amount(r.breakageRevenue)])).toEqual([['2025-04-12', TP, '75.00', '0.00']]);
    expect(rest.nextPageToken).toBe('');
  });

  it('package revenue apart from one-off visit revenue', async () => {
    const march = await h.call('getRevenueSplit', { period: MARCH }, finance(T));
    expect([amount(march.packageRevenue), amount(march.breakageRevenue), amount(march.oneOffVisitRevenue), march.packageSessions, march.oneOffVisits]).toEqual(['258.34', '8.33', '45.00', 4, 1]);
    const april = await h.call('getRevenueSplit', { period: APRIL }, finance(T));
    expect([amount(april.packageRevenue), amount(april.breakageRevenue), amount(april.oneOffVisitRevenue), april.packageSessions, april.oneOffVisits]).toEqual(['108.33', '158.33', '60.00', 2, 1]);
    const tampines = await h.call('getRevenueSplit', { period: APRIL, branchId: TP }, finance(T));
    expect([amount(tampines.packageRevenue), amount(tampines.oneOffVisitRevenue)]).toEqual(['108.33', '60.00']);
  });

  it('per-package profit: recognised revenue minus the delivery cost of consumed sessions, margin in basis points', async () => {
    const march = await h.call('getPackageProfit', { period: MARCH }, finance(T));
    expect(march.rows.map((r) => [r.definitionId, r.branchId, amount(r.packageRevenue), amount(r.breakageRevenue), amount(r.recognised), amount(r.deliveryCost), amount(r.profit), r.marginBps, r.sessions])).toEqual([
      ['B3F1', O, '150.00', '0.00', '150.00', '40.00', '110.00', 7333, 2],
      ['B3F1', TP, '75.00', '0.00', '75.00', '25.00', '50.00', 6667, 1],
      ['P3', TP, '33.34', '8.33', '41.67', '10.00', '31.67', 7600, 1],
    ]);
    const april = await h.call('getPackageProfit', { period: APRIL }, finance(T));
    expect(april.rows.map((r) => [r.definitionId, r.branchId, amount(r.recognised), amount(r.deliveryCost), amount(r.profit), r.marginBps, r.sessions])).toEqual([
      ['B3F1', O, '150.00', '0.00', '150.00', 10000, 0],
      ['B3F1', TP, '75.00', '25.00', '50.00', 6667, 1],
      ['P3', TP, '41.66', '10.00', '31.66', 7600, 1],
    ]);
  });

  it('settlement per branch pair: what each owes the other, from both sides', async () => {
    const march = await h.call('getSettlement', { period: MARCH }, finance(T));
    expect(march.rows.map((r) => [r.fromBranchId, r.toBranchId, amount(r.amount), amount(r.dueFrom), r.sessions])).toEqual([
      [O, TP, '75.00', '75.00', 1],
      [TP, O, '75.00', '75.00', 1],
    ]);
    expect((await h.call('getSettlement', { period: APRIL }, finance(T))).rows).toEqual([]);
  });

  it('journal listing for the period, filtered by branch', async () => {
    const march = await h.call('listJournalEntries', { period: MARCH }, finance(T));
    expect(march.entries).toHaveLength(10);
    expect(march.entries.every((e) => e.lines.reduce((s, l) => s + (l.debit?.amountMinor ?? 0n) - (l.credit?.amountMinor ?? 0n), 0n) === 0n)).toBe(true);
    const page = await h.call('listJournalEntries', { period: MARCH, pageSize: 4 }, finance(T));
    const next = await h.call('listJournalEntries', { period: MARCH, pageSize: 4, pageToken: page.nextPageToken }, finance(T));
    expect([...page.entries, ...next.entries].map((e) => e.journalEntryId)).toEqual(march.entries.slice(0, 8).map((e) => e.journalEntryId));
    const tampines = await h.call('listJournalEntries', { period: APRIL, branchId: TP }, finance(T));
    expect(tampines.entries.map((e) => [e.accountingDate, e.cause])).toEqual([
      ['2025-04-01', 'ledger.session_consumed'],
      ['2025-04-05', 'visits.visit_completed'],
      ['2025-04-12', 'ledger.session_consumed'],
    ]);
  });
});

describe('CSV export', () => {
  const csv = async (report: Report, period = MARCH, branchId = '') => {
    const res = await h.call('exportReport', { report, period, branchId }, finance(T));
    return { name: res.fileName, rows: new TextDecoder().decode(res.csv).split('\r\n').filter(Boolean) };
  };

  it('exports each report with the same figures', async () => {
    expect(await csv(Report.LIABILITY_ROLL_FORWARD)).toEqual({
      name: 'liability-roll-forward_2025-03-01_2025-04-01.csv',
      rows: [
        'branch_id,definition_id,currency,opening,sales,top_ups,recognised,breakage,refunds,transfers,closing',
        `${O},B3F1,SGD,0.00,300.00,0.00,150.00,0.00,0.00,0.00,150.00`,
        `${TP},B3F1,SGD,0.00,300.00,0.00,75.00,0.00,0.00,0.00,225.00`,
        `${TP},P3,SGD,0.00,100.00,0.00,33.34,8.33,0.00,0.00,58.33`,
        'TOTAL,,SGD,0.00,700.00,0.00,258.34,8.33,0.00,0.00,433.33',
      ],
    });
    expect((await csv(Report.REVENUE_SPLIT)).rows).toEqual([
      'currency,package_revenue,breakage_revenue,one_off_visit_revenue,package_sessions,one_off_visits',
      'SGD,258.34,8.33,45.00,4,1',
    ]);
    expect((await csv(Report.PACKAGE_PROFIT, APRIL)).rows).toEqual([
      'definition_id,branch_id,currency,package_revenue,breakage_revenue,recognised,delivery_cost,profit,margin_bps,sessions',
      `B3F1,${O},SGD,0.00,150.00,150.00,0.00,150.00,10000,0`,
      `B3F1,${TP},SGD,75.00,0.00,75.00,25.00,50.00,6667,1`,
      `P3,${TP},SGD,33.33,8.33,41.66,10.00,31.66,7600,1`,
    ]);
    expect((await csv(Report.SETTLEMENT)).rows).toEqual([
      'from_branch_id,to_branch_id,currency,amount,due_from,sessions',
      `${O},${TP},SGD,75.00,75.00,1`,
      `${TP},${O},SGD,75.00,75.00,1`,
    ]);
    const recognised = await csv(Report.RECOGNISED_REVENUE, MARCH, O);
    expect(recognised.name).toBe(`recognised-revenue_2025-03-01_2025-04-01_${O}.csv`);
    expect(recognised.rows.slice(1)).toEqual([
      `2025-03-05,${O},B3F1,SGD,75.00,0.00,1`,
      `2025-03-12,${O},B3F1,SGD,75.00,0.00,1`,
      `2025-03-13,${O},B3F1,SGD,-75.00,0.00,-1`,
      `2025-03-25,${O},B3F1,SGD,75.00,0.00,1`,
    ]);
    const journal = await csv(Report.JOURNAL);
    // Header; three sales of two lines; consumes of 2, 4 (cross-branch), 4 (with breakage), 2; the
    // reversal's 2; the visit's 2; the cross-branch consume of the third package's 4.
    expect(journal.rows).toHaveLength(1 + 3 * 2 + 2 + 4 + 4 + 2 + 2 + 2 + 4);
  });
});

describe('access and validation', () => {
  const code = async (p: Promise<unknown>) => {
    try {
      await p;
      return 'OK';
    } catch (err) {
      return `${Code[(err as ConnectError).code]}: ${(err as ConnectError).rawMessage}`;
    }
  };

  it('names the field of a bad request', async () => {
    expect(await code(h.call('getLiabilityRollForward', {}, finance(T)))).toMatch(/^InvalidArgument: period: is required/);
    expect(await code(h.call('getLiabilityRollForward', { period: { startDate: '2025-02-30', endDate: '2025-03-01' } }, finance(T)))).toMatch(/^InvalidArgument: period.start_date/);
    expect(await code(h.call('getLiabilityRollForward', { period: { startDate: '2025-04-01', endDate: '2025-03-01' } }, finance(T)))).toMatch(/^InvalidArgument: period.end_date/);
    expect(await code(h.call('getPackageProfit', { period: MARCH, pageSize: 5000 }, finance(T)))).toMatch(/^InvalidArgument: page_size/);
    expect(await code(h.call('getContract', {}, finance(T)))).toMatch(/^InvalidArgument: entitlement_id/);
    expect(await code(h.call('exportReport', { period: MARCH }, finance(T)))).toMatch(/^InvalidArgument: report/);
  });

  it('keeps revenue to finance roles and a branch-limited caller to its branches', async () => {
    expect(await code(h.call('getRevenueSplit', { period: MARCH }, null))).toMatch(/^Unauthenticated/);
    expect(await code(h.call('getRevenueSplit', { period: MARCH }, { subject: 'desk', tenantId: T, roles: ['staff'] }))).toMatch(/^PermissionDenied/);
    expect(await code(h.call('getSettlement', { period: MARCH }, finance(T, [O])))).toMatch(/^PermissionDenied: .*set branch_id/);
    expect(await code(h.call('getSettlement', { period: MARCH, branchId: TP }, finance(T, [O])))).toMatch(/^PermissionDenied/);
    const mine = await h.call('getSettlement', { period: MARCH, branchId: O }, finance(T, [O]));
    expect(mine.rows).toHaveLength(2);
  });

  it('seals tenants: another tenant sees none of these figures', async () => {
    const other = newTenant('other');
    await h.settled([await h.tenant(other)]);
    const res = await h.call('getLiabilityRollForward', { period: MARCH }, finance(other));
    expect(res.rows).toEqual([]);
    expect(amount(res.total?.closing)).toBe('0.00');
    expect((await h.call('listJournalEntries', {}, finance(other))).entries).toEqual([]);
    const { entries } = await h.call('listJournalEntries', { period: MARCH, pageSize: 1 }, finance(T));
    expect(await code(h.call('getContract', { entitlementId: entries[0]!.entitlementId }, finance(other)))).toMatch(/^NotFound/);
    expect(await code(h.call('getRevenueSplit', { period: MARCH }, finance(newTenant('never'))))).toMatch(/^NotFound: tenant/);
  });
});
