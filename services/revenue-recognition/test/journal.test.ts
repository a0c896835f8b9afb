import { Report } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buy3free1, threeForHundred } from './support/fixtures.js';
import { day, finance, Harness, newTenant } from './support/harness.js';
import { SimEntitlement } from './support/ledger-sim.js';
import { amount, showLines } from './support/show.js';

let h: Harness;
const T = newTenant('acme');
const P = newTenant('purch');

beforeAll(async () => {
  h = await Harness.start('journal');
  const ids = [
    await h.tenant(T),
    await h.branch(T, 'A', 'Asia/Singapore'),
    await h.branch(T, 'B', 'Asia/Singapore'),
    await h.tenant(P, { earningRule: 'PURCHASING_BRANCH' }),
    await h.branch(P, 'A', 'Asia/Singapore'),
    await h.branch(P, 'B', 'Asia/Singapore'),
  ];
  await h.settled(ids);
});

afterAll(async () => {
  await h?.close();
});

const sim = (tenantId: string, terms = buy3free1({ costBranch: 'B' }), branchId = 'A') =>
  new SimEntitlement({ tenantId, definitionId: `def-${terms.code}`, terms, branchId, timeZone: 'Asia/Singapore', at: day('2025-03-01') });

async function play(...events: Awaited<ReturnType<SimEntitlement['purchase']>>[]) {
  for (const e of events) await h.ledger(e);
  await h.settled(events.map((e) => e.id));
}

async function journal(tenantId: string, entitlementId: string) {
  const res = await h.call('listJournalEntries', { entitlementId }, finance(tenantId));
  return res.entries;
}

describe('purchase and consumption', () => {
  it('defers 300.00 at purchase and allocates Buy 3 Free 1 as four sessions of 75.00', async () => {
    const e = sim(T);
    await play(e.purchase());
    const [entry] = await journal(T, e.entitlementId);
    expect(showLines(entry)).toEqual(['Dr CASH@A 300.00', 'Cr DEFERRED_REVENUE@A 300.00 [SALE]']);
    expect(entry?.cause).toBe('ledger.entitlement_purchased');
    expect(entry?.accountingDate).toBe('2025-03-01');
    const { contract } = await h.call('getContract', { entitlementId: e.entitlementId }, finance(T));
    expect(contract?.sessions.map((s) => [s.sessionNumber, s.bonus, amount(s.value)])).toEqual([
      [1, false, '75.00'],
      [2, false, '75.00'],
      [3, false, '75.00'],
      [4, true, '75.00'],
    ]);
    expect(amount(contract?.price)).toBe('300.00');
    expect(amount(contract?.deferredBalance)).toBe('300.00');
  });

  it('recognises 100.00 over 3 as 33.34, 33.33, 33.33 in session order, dated in the branch time zone', async () => {
    const e = sim(T, threeForHundred());
    // 17:30 UTC on 31 March is 1 April in Singapore.
    await play(e.purchase(), e.consume('A', new Date('2025-03-31T17:30:00Z')), e.consume('A', day('2025-04-02')), e.consume('A', day('2025-04-03')));
    const entries = await journal(T, e.entitlementId);
    expect(entries.slice(1).map(showLines)).toEqual([
      ['Dr DEFERRED_REVENUE@A 33.34 [RECOGNISED]', 'Cr PACKAGE_REVENUE@A 33.34'],
      ['Dr DEFERRED_REVENUE@A 33.33 [RECOGNISED]', 'Cr PACKAGE_REVENUE@A 33.33'],
      ['Dr DEFERRED_REVENUE@A 33.33 [RECOGNISED]', 'Cr PACKAGE_REVENUE@A 33.33'],
    ]);
    expect(entries[1]?.accountingDate).toBe('2025-04-01');
    const { contract } = await h.call('getContract', { entitlementId: e.entitlementId }, finance(T));
    expect(amount(contract?.deferredBalance)).toBe('0.00');
    expect(amount(contract?.recognised)).toBe('100.00');
  });

  it('reverses exactly the consumed line, and the next consume takes that session again', async () => {
    const e = sim(T, threeForHundred());
    await play(e.purchase(), e.consume('A', day('2025-03-02')));
    const second = e.consume('B', day('2025-03-03'));
    await play(second, e.reverse(second.id, day('2025-03-04')), e.consume('A', day('2025-03-05')));
    const entries = await journal(T, e.entitlementId);
    const consume = entries.find((x) => x.sourceId === second.id);
    const reversal = entries.find((x) => x.cause === 'ledger.consume_reversed');
    expect(showLines(consume)).toEqual([
      'Dr DEFERRED_REVENUE@A 33.33 [RECOGNISED]',
      'Cr DUE_TO_BRANCH@A→B 33.33',
      'Dr DUE_FROM_BRANCH@B→A 33.33',
      'Cr PACKAGE_REVENUE@B 33.33',
    ]);
    expect(showLines(reversal)).toEqual([
      'Cr DEFERRED_REVENUE@A 33.33 [RECOGNISED]',
      'Dr DUE_TO_BRANCH@A→B 33.33',
      'Cr DUE_FROM_BRANCH@B→A 33.33',
      'Dr PACKAGE_REVENUE@B 33.33',
    ]);
    expect(reversal?.lines.map((l) => l.sessions)).toEqual(consume?.lines.map((l) => (l.sessions === 0 ? 0 : -l.sessions)));
    const { contract } = await h.call('getContract', { entitlementId: e.entitlementId }, finance(T));
    expect(contract?.sessions.map((s) => [s.sessionNumber, amount(s.value), s.consumedByEntryId !== '', s.earningBranchId])).toEqual([
      [1, '33.34', true, 'A'],
      [2, '33.33', true, 'A'],
      [3, '33.33', false, ''],
    ]);
  });
});

describe('multi-branch', () => {
  it('sold at A, delivered at B: B recognises; A carries due-to B, B due-from A, and settlement matches', async () => {
    const e = sim(T);
    await play(e.purchase(), e.consume('B', day('2025-03-10')), e.consume('B', day('2025-03-11')));
    const entries = await journal(T, e.entitlementId);
    expect(showLines(entries[1])).toEqual([
      'Dr DEFERRED_REVENUE@A 75.00 [RECOGNISED]',
      'Cr DUE_TO_BRANCH@A→B 75.00',
      'Dr DUE_FROM_BRANCH@B→A 75.00',
      'Cr PACKAGE_REVENUE@B 75.00',
    ]);
    expect(entries[1]?.lines[3]?.deliveryCost?.amountMinor).toBe(2500n);
    const settlement = await h.call('getSettlement', { period: { startDate: '2025-03-10', endDate: '2025-03-12' } }, finance(T));
    expect(settlement.rows.map((r) => [r.fromBranchId, r.toBranchId, amount(r.amount), amount(r.dueFrom), r.sessions])).toEqual([['A', 'B', '150.00', '150.00', 2]]);
  });

  it('with the tenant on the purchasing-branch rule, A recognises and nobody owes anybody', async () => {
    const e = sim(P);
    await play(e.purchase(), e.consume('B', day('2025-03-10')));
    const entries = await journal(P, e.entitlementId);
    expect(showLines(entries[1])).toEqual(['Dr DEFERRED_REVENUE@A 75.00 [RECOGNISED]', 'Cr PACKAGE_REVENUE@A 75.00']);
  });
});

describe('breakage', () => {
  it('at expiry: the remaining deferred revenue becomes breakage revenue', async () => {
    const e = sim(T);
    await play(e.purchase(), e.consume('A', day('2025-03-02')), e.consume('A', day('2025-03-03')), e.freeze(day('2025-03-04')), e.unfreeze(day('2025-03-05')), e.expire(day('2025-06-01')));
    const entries = await journal(T, e.entitlementId);
    expect(entries).toHaveLength(4);
    expect(showLines(entries[3])).toEqual(['Dr DEFERRED_REVENUE@A 150.00 [BREAKAGE]', 'Cr BREAKAGE_REVENUE@A 150.00']);
    expect(entries[3]?.cause).toBe('ledger.entitlement_expired');
  });

  it('proportional at 25%: breakage with each redemption and a true-up at expiry, reconciling to the same 150.00', async () => {
    const e = sim(T, buy3free1({ breakageBps: 2500 }));
    await play(e.purchase(), e.consume('A', day('2025-03-02')), e.consume('A', day('2025-03-03')), e.expire(day('2025-06-01')));
    const entries = await journal(T, e.entitlementId);
    expect(entries.slice(1).map(showLines)).toEqual([
      ['Dr DEFERRED_REVENUE@A 75.00 [RECOGNISED]', 'Cr PACKAGE_REVENUE@A 75.00', 'Dr DEFERRED_REVENUE@A 25.00 [BREAKAGE]', 'Cr BREAKAGE_REVENUE@A 25.00'],
      ['Dr DEFERRED_REVENUE@A 75.00 [RECOGNISED]', 'Cr PACKAGE_REVENUE@A 75.00', 'Dr DEFERRED_REVENUE@A 25.00 [BREAKAGE]', 'Cr BREAKAGE_REVENUE@A 25.00'],
      ['Dr DEFERRED_REVENUE@A 100.00 [BREAKAGE]', 'Cr BREAKAGE_REVENUE@A 100.00'],
    ]);
    const { contract } = await h.call('getContract', { entitlementId: e.entitlementId }, finance(T));
    expect([amount(contract?.recognised), amount(contract?.breakageRecognised), amount(contract?.deferredBalance)]).toEqual(['150.00', '150.00', '0.00']);
  });
});

describe('one-off visits and top-ups', () => {
  it('books a one-off visit as visit revenue at once, and its cancellation as the mirror', async () => {
    const { id, visitId } = await h.visit({ tenantId: T, branchId: 'B', at: day('2025-03-20'), price: 4500n });
    const pkg = await h.visit({ tenantId: T, branchId: 'B', at: day('2025-03-20'), oneOff: false });
    await h.settled([id, pkg.id]);
    const cancel = await h.cancelVisit(T, visitId, day('2025-03-21'));
    await h.settled([cancel]);
    const { entries } = await h.call('listJournalEntries', { period: { startDate: '2025-03-20', endDate: '2025-03-22' }, branchId: 'B' }, finance(T));
    const visits = entries.filter((x) => x.sourceId === visitId);
    expect(visits.map((x) => [x.cause, x.accountingDate, showLines(x)])).toEqual([
      ['visits.visit_completed', '2025-03-20', ['Dr CASH@B 45.00', 'Cr VISIT_REVENUE@B 45.00']],
      ['visits.visit_cancelled', '2025-03-21', ['Cr CASH@B 45.00', 'Dr VISIT_REVENUE@B 45.00']],
    ]);
    expect(entries.some((x) => x.sourceId === pkg.visitId)).toBe(false);
  });

  it('top-up: the added sessions at the price the ledger charged, Dr Cash, Cr Deferred revenue', async () => {
    const e = sim(T);
    await play(e.purchase(), e.topUp(2, 'A', day('2025-03-05')));
    const entries = await journal(T, e.entitlementId);
    expect(showLines(entries[1])).toEqual(['Dr CASH@A 60.00', 'Cr DEFERRED_REVENUE@A 60.00 [TOP_UP]']);
    const { contract } = await h.call('getContract', { entitlementId: e.entitlementId }, finance(T));
    expect(contract?.sessions.slice(4).map((s) => [s.sessionNumber, amount(s.value)])).toEqual([
      [5, '30.00'],
      [6, '30.00'],
    ]);
  });
});

describe('published events', () => {
  it('publishes revenue.journal_posted for every entry and revenue.recognized for what it recognised', async () => {
    const tenant = newTenant('pub');
    await h.settled([await h.tenant(tenant), await h.branch(tenant, 'A', 'Asia/Singapore'), await h.branch(tenant, 'B', 'Asia/Singapore')]);
    const e = sim(tenant);
    await play(e.purchase(), e.consume('B', day('2025-03-02')), e.expire(day('2025-06-01')));
    const events = await h.published(tenant);
    const posted = events.filter((x) => x.type === 'punchcard.revenue.journal_posted');
    const recognized = events.filter((x) => x.type === 'punchcard.revenue.recognized');
    expect(posted).toHaveLength(3);
    const entries = await journal(tenant, e.entitlementId);
    expect(posted.map((x) => x.id)).toEqual(entries.map((x) => x.journalEntryId));
    expect(posted.map((x) => ('entry' in x.data ? showLines(x.data.entry) : []))).toEqual(entries.map(showLines));
    expect(recognized.map((x) => ('kind' in x.data ? [x.data.kind, x.data.branchId, amount(x.data.amount), x.data.accountingDate] : []))).toEqual([
      ['package', 'B', '75.00', '2025-03-02'],
      ['breakage', 'A', '225.00', '2025-06-01'],
    ]);
    const csv = await h.call('exportReport', { report: Report.JOURNAL, period: { startDate: '2025-03-01', endDate: '2025-07-01' } }, finance(tenant));
    expect(new TextDecoder().decode(csv.csv).split('\r\n').filter(Boolean)).toHaveLength(1 + 2 + 4 + 2);
  });
});

describe('housekeeping', () => {
  it('deletes applied event ids past their retention, and keeps fresh ones', async () => {
    expect(await h.housekeepingLeaves()).toEqual({ inbox: ['fresh'] });
  });
});
