import { RefundMethod } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { HouseholdChangedSchema, RefundChangedSchema, SharingChangedSchema } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { RefundApprovedSchema } from '@punchcard/contracts/punchcard/events/v1/refund_events_pb';
import { publishEvent } from '@punchcard/bus';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buy3free1, tenPack, threeForHundred } from './support/fixtures.js';
import { day, finance, Harness, newTenant } from './support/harness.js';
import { SimEntitlement, type LedgerEvent, type Terms } from './support/ledger-sim.js';
import { amount, showLines } from './support/show.js';

/**
 * Transfers, top-ups, upgrades and refunds through the ledger consumer, with the events the ledger
 * publishes for them (amounts, counterparts, details): every journal entry to the cent, the contracts
 * they leave and the roll-forward columns they land in.
 */
let h: Harness;
const T = newTenant('pkg');
const MARCH = { startDate: '2025-03-01', endDate: '2025-04-01' };

beforeAll(async () => {
  h = await Harness.start('packages');
  await h.settled([await h.tenant(T), await h.branch(T, 'A', 'Asia/Singapore'), await h.branch(T, 'B', 'Asia/Singapore')]);
});

afterAll(async () => {
  await h?.close();
});

const sim = (terms: Terms, definitionId = `def-${terms.code}`, tenantId = T) =>
  new SimEntitlement({ tenantId, definitionId, terms, branchId: 'A', timeZone: 'Asia/Singapore', at: day('2025-03-01') });

async function play(...events: LedgerEvent[]) {
  for (const e of events) await h.ledger(e);
  await h.settled(events.map((e) => e.id));
}

async function journal(entitlementId: string, tenantId = T) {
  return (await h.call('listJournalEntries', { entitlementId }, finance(tenantId))).entries;
}

async function contract(entitlementId: string, tenantId = T) {
  const { contract: c } = await h.call('getContract', { entitlementId }, finance(tenantId));
  return c!;
}

async function rollForward(tenantId: string) {
  const r = await h.call('getLiabilityRollForward', { period: MARCH }, finance(tenantId));
  const show = (x: (typeof r.rows)[number]) =>
    [x.branchId, x.definitionId, amount(x.opening), amount(x.sales), amount(x.topUps), amount(x.recognised), amount(x.breakage), amount(x.refunds), amount(x.transfers), amount(x.closing)].join(' ');
  return { rows: r.rows.map(show), total: show(r.total!) };
}

describe('transfer', () => {
  it('the liability moves with the sessions at their values; nothing is recognised; the receiver recognises them', async () => {
    const tenant = newTenant('xfer');
    await h.settled([await h.tenant(tenant), await h.branch(tenant, 'A', 'Asia/Singapore'), await h.branch(tenant, 'B', 'Asia/Singapore')]);
    const giver = sim(buy3free1({ costBranch: 'B' }), 'def-B3F1', tenant);
    const purchase = giver.purchase();
    const used = giver.consume('A', day('2025-03-02'));
    const { out, into, receiver } = giver.transfer('member-2', day('2025-03-03'));
    // The receiving side first: the two entitlements are independent streams of versions.
    await play(purchase, used, into, out, receiver.consume('B', day('2025-03-04')));

    const [, , outEntry] = await journal(giver.entitlementId, tenant);
    expect([outEntry?.cause, showLines(outEntry)]).toEqual(['ledger.transferred_out', ['Dr DEFERRED_REVENUE@A 225.00 [TRANSFER]', 'Cr TRANSFER_CLEARING@A 225.00']]);
    const received = await journal(receiver.entitlementId, tenant);
    expect(received.map((x) => [x.cause, showLines(x)])).toEqual([
      ['ledger.transferred_in', ['Dr TRANSFER_CLEARING@A 225.00', 'Cr DEFERRED_REVENUE@A 225.00 [TRANSFER]']],
      ['ledger.session_consumed', ['Dr DEFERRED_REVENUE@A 75.00 [RECOGNISED]', 'Cr DUE_TO_BRANCH@A→B 75.00', 'Dr DUE_FROM_BRANCH@B→A 75.00', 'Cr PACKAGE_REVENUE@B 75.00']],
    ]);

    const g = await contract(giver.entitlementId, tenant);
    expect([amount(g.recognised), amount(g.breakageRecognised), amount(g.deferredBalance)]).toEqual(['75.00', '0.00', '0.00']);
    const r = await contract(receiver.entitlementId, tenant);
    expect(r.sessions.map((s) => [s.sessionNumber, s.bonus, amount(s.value), s.earningBranchId])).toEqual([
      [1, false, '75.00', 'B'],
      [2, false, '75.00', ''],
      [3, true, '75.00', ''],
    ]);
    expect([amount(r.price), amount(r.deferredBalance)]).toEqual(['225.00', '150.00']);

    // One package row: the transfer moves 225.00 out and back in, so the column nets to zero.
    expect(await rollForward(tenant)).toEqual({
      rows: ['A def-B3F1 0.00 300.00 0.00 150.00 0.00 0.00 0.00 150.00'],
      total: '  0.00 300.00 0.00 150.00 0.00 0.00 0.00 150.00',
    });
    const { entries } = await h.call('listJournalEntries', { period: MARCH }, finance(tenant));
    const clearing = entries.flatMap((x) => x.lines).filter((l) => l.account === 10);
    expect(clearing.reduce((sum, l) => sum + (l.debit?.amountMinor ?? 0n) - (l.credit?.amountMinor ?? 0n), 0n)).toBe(0n);
  });

  it('an undo sends the same values back to a new entitlement of the original holder', async () => {
    const giver = sim(threeForHundred());
    const bought = giver.purchase();
    const { out, into, receiver } = giver.transfer('member-2', day('2025-03-03'));
    const undo = receiver.transfer(giver.memberId, day('2025-03-04'), { undoesTransferId: out.id });
    await play(bought, out, into, undo.out, undo.into);
    expect(showLines((await journal(receiver.entitlementId))[1])).toEqual(['Dr DEFERRED_REVENUE@A 100.00 [TRANSFER]', 'Cr TRANSFER_CLEARING@A 100.00']);
    const back = await contract(undo.receiver.entitlementId);
    expect(back.sessions.map((s) => amount(s.value))).toEqual(['33.34', '33.33', '33.33']);
    expect(amount(back.deferredBalance)).toBe('100.00');
    expect(amount((await contract(receiver.entitlementId)).deferredBalance)).toBe('0.00');
  });
});

describe('top-up', () => {
  it('books the price the ledger charged as its own contract line, paid where it happened', async () => {
    const e = sim(threeForHundred());
    await play(e.purchase(), e.consume('A', day('2025-03-02')), e.topUp(2, 'B', day('2025-03-05')));
    const entries = await journal(e.entitlementId);
    expect([entries[2]?.cause, showLines(entries[2])]).toEqual([
      'ledger.topped_up',
      ['Dr CASH@B 70.00', 'Cr DUE_TO_BRANCH@B→A 70.00', 'Dr DUE_FROM_BRANCH@A→B 70.00', 'Cr DEFERRED_REVENUE@A 70.00 [TOP_UP]'],
    ]);
    const c = await contract(e.entitlementId);
    expect(c.sessions.map((s) => amount(s.value))).toEqual(['33.34', '33.33', '33.33', '35.00', '35.00']);
    expect(amount(c.deferredBalance)).toBe('136.66');
  });

  it('refuses a top-up entry without its amount, naming the field, and books nothing', async () => {
    const e = sim(threeForHundred());
    const purchase = e.purchase();
    const topUp = e.topUp(1, 'A', day('2025-03-05'));
    topUp.message.entry!.amount = undefined;
    await h.ledger(purchase);
    await h.ledger(topUp);
    await h.settled([purchase.id]);
    const dead = await h.deadLettered(topUp.id);
    expect(dead.outcome === 'deadlettered' && dead.reason).toMatch(/entry\.amount: is required/);
    expect(await journal(e.entitlementId)).toHaveLength(1);
  });
});

describe('upgrade', () => {
  it('credits the unused value against the new price; the new package re-allocates credit + cash over its sessions', async () => {
    const tenant = newTenant('upg');
    await h.settled([await h.tenant(tenant), await h.branch(tenant, 'A', 'Asia/Singapore'), await h.branch(tenant, 'B', 'Asia/Singapore')]);
    const old = sim(buy3free1(), 'def-B3F1', tenant);
    const bought = old.purchase();
    const used = old.consume('A', day('2025-03-02'));
    // Sold at B: the new package's liability is B's.
    const { out, into, upgraded } = old.upgrade({ definitionId: 'def-TEN', terms: tenPack(), branchId: 'B', timeZone: 'Asia/Singapore' }, day('2025-03-10'));
    await play(bought, used, out, into, upgraded.consume('B', day('2025-03-11')));

    expect(into.message.entry?.amount?.amountMinor).toBe(57500n);
    expect(showLines((await journal(old.entitlementId, tenant))[2])).toEqual([
      'Dr DEFERRED_REVENUE@A 225.00 [TRANSFER]',
      'Cr DUE_TO_BRANCH@A→B 225.00',
      'Dr DUE_FROM_BRANCH@B→A 225.00',
      'Cr TRANSFER_CLEARING@B 225.00',
    ]);
    const entries = await journal(upgraded.entitlementId, tenant);
    expect(entries.map((x) => [x.cause, x.accountingDate, showLines(x)])).toEqual([
      ['ledger.upgraded_in', '2025-03-10', ['Dr TRANSFER_CLEARING@B 225.00', 'Cr DEFERRED_REVENUE@B 225.00 [TRANSFER]', 'Dr CASH@B 575.00', 'Cr DEFERRED_REVENUE@B 575.00 [SALE]']],
      ['ledger.session_consumed', '2025-03-11', ['Dr DEFERRED_REVENUE@B 80.00 [RECOGNISED]', 'Cr PACKAGE_REVENUE@B 80.00']],
    ]);
    const c = await contract(upgraded.entitlementId, tenant);
    expect([amount(c.price), c.sessions.length, amount(c.sessions[9]?.value), amount(c.deferredBalance)]).toEqual(['800.00', 10, '80.00', '720.00']);
    expect(amount((await contract(old.entitlementId, tenant)).deferredBalance)).toBe('0.00');

    expect(await rollForward(tenant)).toEqual({
      rows: ['A def-B3F1 0.00 300.00 0.00 75.00 0.00 0.00 -225.00 0.00', 'B def-TEN 0.00 575.00 0.00 80.00 0.00 0.00 225.00 720.00'],
      total: '  0.00 875.00 0.00 155.00 0.00 0.00 0.00 720.00',
    });
    const settlement = await h.call('getSettlement', { period: MARCH }, finance(tenant));
    expect(settlement.rows.map((r) => [r.fromBranchId, r.toBranchId, amount(r.amount), amount(r.dueFrom)])).toEqual([['A', 'B', '225.00', '225.00']]);
  });
});

describe('refund', () => {
  it('pro rata less an admin fee: the unused value is released, the refund payable, the fee a gain', async () => {
    const e = sim(buy3free1({ refund: { method: RefundMethod.PRO_RATA, adminFee: 1000n } }));
    const events = [e.purchase(), e.consume('A', day('2025-03-02'))];
    const refund = e.refund(day('2025-03-20'));
    await play(...events, refund);
    // Delivered again under the same event id (a relay that crashed before marking it): no second entry.
    await h.redeliver(refund);
    await h.settled([refund.id], 15_000, 2);
    const entries = await journal(e.entitlementId);
    expect(entries).toHaveLength(3);
    expect([entries[2]?.cause, showLines(entries[2])]).toEqual([
      'ledger.refunded',
      ['Dr DEFERRED_REVENUE@A 225.00 [REFUND]', 'Cr REFUNDS_PAYABLE@A 215.00', 'Cr REFUND_GAIN_OR_LOSS@A 10.00'],
    ]);
    const c = await contract(e.entitlementId);
    expect([amount(c.recognised), amount(c.breakageRecognised), amount(c.deferredBalance)]).toEqual(['75.00', '0.00', '0.00']);
    expect(c.sessions.map((s) => [s.consumedByEntryId !== '', s.removed])).toEqual([[true, false], [false, true], [false, true], [false, true]]);
  });

  it('used sessions repriced at the standalone price: 300.00 − 90.00 = 210.00 refunded against 225.00 released', async () => {
    const e = sim(buy3free1({ refund: { method: RefundMethod.USED_AT_STANDALONE_PRICE } }));
    await play(e.purchase(), e.consume('A', day('2025-03-02')), e.refund(day('2025-03-20')));
    expect(showLines((await journal(e.entitlementId))[2])).toEqual(['Dr DEFERRED_REVENUE@A 225.00 [REFUND]', 'Cr REFUNDS_PAYABLE@A 210.00', 'Cr REFUND_GAIN_OR_LOSS@A 15.00']);
  });

  it('a refund above the deferred balance is a loss: 100.00 − 20.00 = 80.00 paid for 66.66 still deferred', async () => {
    const e = sim(threeForHundred({ refund: { method: RefundMethod.USED_AT_STANDALONE_PRICE }, standalone: 2000n }));
    await play(e.purchase(), e.consume('A', day('2025-03-02')), e.refund(day('2025-03-20')));
    expect(showLines((await journal(e.entitlementId))[2])).toEqual(['Dr DEFERRED_REVENUE@A 66.66 [REFUND]', 'Cr REFUNDS_PAYABLE@A 80.00', 'Dr REFUND_GAIN_OR_LOSS@A 13.34']);
  });

  it('shows in the refunds column of the roll-forward', async () => {
    const tenant = newTenant('rf');
    await h.settled([await h.tenant(tenant), await h.branch(tenant, 'A', 'Asia/Singapore')]);
    const e = sim(buy3free1({ refund: { method: RefundMethod.PRO_RATA } }), 'def-B3F1', tenant);
    await play(e.purchase(), e.consume('A', day('2025-03-02')), e.consume('A', day('2025-03-03')), e.refund(day('2025-03-20')));
    expect(await rollForward(tenant)).toEqual({
      rows: ['A def-B3F1 0.00 300.00 0.00 150.00 0.00 150.00 0.00 0.00'],
      total: '  0.00 300.00 0.00 150.00 0.00 150.00 0.00 0.00',
    });
  });

  it('refuses a refund whose unused value disagrees with the contract, naming the field', async () => {
    const e = sim(threeForHundred({ refund: { method: RefundMethod.PRO_RATA } }));
    const events = [e.purchase(), e.consume('A', day('2025-03-02'))];
    const refund = e.refund(day('2025-03-20'));
    refund.message.entry!.refund!.unusedValue!.amountMinor = 6667n;
    await play(...events);
    await h.ledger(refund);
    const dead = await h.deadLettered(refund.id);
    expect(dead.outcome === 'deadlettered' && dead.reason).toMatch(/entry\.refund\.unused_value: the ledger values what leaves entitlement .* at SGD 66\.67, its contract at SGD 66\.66/);
    expect(await journal(e.entitlementId)).toHaveLength(2);
  });
});

describe('events on LEDGER that are not entries', () => {
  it('refund requests and approvals, households and sharing are not read; entries after them apply', async () => {
    const e = sim(threeForHundred());
    const base = { namespace: h.namespace, source: '/punchcard/entitlement-ledger', producer: 'ledger', tenantId: T } as const;
    const refund = { tenantId: T, refundId: 'r-1', entitlementId: e.entitlementId };
    const others = [
      await publishEvent(h.bus.js, { ...base, event: 'refund_requested', aggregateId: 'r-1', aggregateVersion: 1, schema: RefundChangedSchema, message: { refund } }),
      await publishEvent(h.bus.js, { ...base, event: 'refund_approved', aggregateId: 'r-1', schema: RefundApprovedSchema, message: { ...refund, memberId: 'member-1' } }),
      await publishEvent(h.bus.js, { ...base, event: 'household_changed', aggregateId: 'h-1', aggregateVersion: 1, schema: HouseholdChangedSchema, message: { household: { tenantId: T, householdId: 'h-1' } } }),
      await publishEvent(h.bus.js, { ...base, event: 'entitlement_shared', aggregateId: e.entitlementId, schema: SharingChangedSchema, message: { householdId: 'h-1' } }),
    ];
    await play(e.purchase());
    for (const { id } of others) expect(h.outcomesOf(id).filter((o) => o.outcome !== 'skipped')).toEqual([]);
    expect(await journal(e.entitlementId)).toHaveLength(1);
  });
});
