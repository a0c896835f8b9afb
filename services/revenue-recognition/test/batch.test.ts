import type { JournalEntry } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buy3free1, threeForHundred } from './support/fixtures.js';
import { day, finance, Harness, newTenant } from './support/harness.js';
import { SimEntitlement, type LedgerEvent } from './support/ledger-sim.js';
import { showLines } from './support/show.js';

let h: Harness;

beforeAll(async () => {
  h = await Harness.start('batch');
});

afterAll(async () => {
  await h?.close();
});

async function tenant(label: string): Promise<string> {
  const t = newTenant(label);
  await h.settled([await h.tenant(t), await h.branch(t, 'A', 'Asia/Singapore'), await h.branch(t, 'B', 'Europe/London')]);
  return t;
}

/** Three entitlements of one tenant: purchases, consumes at two branches, a reversal, a freeze, a top-up, expiries. */
function scenario(tenantId: string): { sims: SimEntitlement[]; events: LedgerEvent[][] } {
  const at = day('2025-03-01');
  const sims = [
    new SimEntitlement({ tenantId, definitionId: 'def-b3f1', terms: buy3free1({ breakageBps: 1000, costBranch: 'B' }), branchId: 'A', timeZone: 'Asia/Singapore', at }),
    new SimEntitlement({ tenantId, definitionId: 'def-p3', terms: threeForHundred({ breakageBps: 2500 }), branchId: 'B', timeZone: 'Europe/London', at }),
    new SimEntitlement({ tenantId, definitionId: 'def-b3f1', terms: buy3free1(), branchId: 'A', timeZone: 'Asia/Singapore', at }),
  ];
  const [first, second, third] = sims as [SimEntitlement, SimEntitlement, SimEntitlement];
  const a = [first.purchase(), first.consume('A', day('2025-03-02')), first.consume('B', day('2025-03-03'))];
  a.push(first.reverse(a[1]!.id, day('2025-03-04')), first.consume('B', day('2025-03-05')), first.expire(day('2025-06-01')));
  const b = [second.purchase(), second.consume('B', day('2025-03-02', 23)), second.freeze(day('2025-03-03')), second.unfreeze(day('2025-03-04'))];
  b.push(second.topUp(2, 'A', day('2025-03-05')), second.consume('A', day('2025-03-06')), second.expire(day('2025-07-01')));
  const c = [third.purchase(), third.consume('A', day('2025-03-02')), third.expire(day('2025-05-01'))];
  return { sims, events: [a, b, c] };
}

/** An entitlement's journal without ids: entry by entry in posting order. */
async function normalised(tenantId: string, entitlementId: string) {
  const { entries } = await h.call('listJournalEntries', { entitlementId, pageSize: 100 }, finance(tenantId));
  return entries.map((e: JournalEntry) => [e.cause, e.accountingDate, e.definitionId, ...showLines(e)]);
}

async function contract(tenantId: string, entitlementId: string) {
  const { contract: c } = await h.call('getContract', { entitlementId }, finance(tenantId));
  return { ...c, tenantId: undefined, entitlementId: undefined, sessions: c?.sessions.map((s) => ({ ...s, consumedByEntryId: undefined })) };
}

describe('ledger events in batches', () => {
  it('a mixed batch (entitlements interleaved, versions out of order, duplicates) gives the journal one event at a time gives', async () => {
    const reference = await tenant('one-by-one');
    const one = scenario(reference);
    // One at a time: each event is settled, in its own transaction, before the next is published.
    for (const e of one.events.flat()) {
      await h.ledger(e);
      await h.settled([e.id]);
    }

    const batched = await tenant('batched');
    const many = scenario(batched);
    const [a, b, c] = many.events as [LedgerEvent[], LedgerEvent[], LedgerEvent[]];
    // Published while revenue is down, so they arrive together: each entitlement's versions reversed
    // or shuffled and interleaved, one event again under its own id and one under a new id.
    const order = [a[5]!, b[6]!, c[2]!, a[3]!, b[0]!, a[0]!, c[1]!, b[3]!, b[1]!, a[4]!, b[2]!, a[1]!, c[0]!, b[5]!, a[2]!, b[4]!];
    await h.stopService();
    for (const e of order) await h.ledger(e);
    await h.redeliver(a[0]!);
    await h.ledger(b[1]!, { id: `${b[1]!.id}-republished` });
    await h.startService();
    await h.settled([...order.map((e) => e.id), `${b[1]!.id}-republished`]);

    for (const [i, sim] of many.sims.entries()) {
      expect(await normalised(batched, sim.entitlementId)).toEqual(await normalised(reference, one.sims[i]!.entitlementId));
      expect(await contract(batched, sim.entitlementId)).toEqual(await contract(reference, one.sims[i]!.entitlementId));
    }
    // Each entitlement's entries are posted in version order.
    const versionOf = new Map(order.map((e) => [e.id, e.version]));
    const { entries } = await h.call('listJournalEntries', { pageSize: 100 }, finance(batched));
    for (const sim of many.sims) {
      const versions = entries.filter((e) => e.entitlementId === sim.entitlementId).map((e) => versionOf.get(e.sourceId)!);
      expect(versions).toEqual([...versions].sort((x, y) => x - y));
    }
    // Posted in one transaction (one posting time), not one by one.
    expect(new Set(entries.map((e) => e.postedTime?.seconds)).size).toBeLessThan(entries.length);
    // The same events, once each, as one at a time.
    const types = async (t: string) => (await h.published(t)).map((e) => e.type).sort();
    expect(await types(batched)).toEqual(await types(reference));
  });
});
