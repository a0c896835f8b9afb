import type { JournalEntry } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buy3free1 } from './support/fixtures.js';
import { day, finance, Harness, newTenant } from './support/harness.js';
import { SimEntitlement, type LedgerEvent } from './support/ledger-sim.js';
import { showLines } from './support/show.js';

let h: Harness;

beforeAll(async () => {
  h = await Harness.start('ordering');
});

afterAll(async () => {
  await h?.close();
});

async function tenant(label: string, earningRule: 'DELIVERING_BRANCH' | 'PURCHASING_BRANCH' = 'DELIVERING_BRANCH'): Promise<string> {
  const t = newTenant(label);
  await h.settled([await h.tenant(t, { earningRule }), await h.branch(t, 'A', 'Asia/Singapore'), await h.branch(t, 'B', 'Europe/London')]);
  return t;
}

/** Eight versions of one entitlement: purchase, consumes at two branches, a reversal, a freeze, expiry. */
function scenario(tenantId: string): { sim: SimEntitlement; events: LedgerEvent[] } {
  const sim = new SimEntitlement({ tenantId, definitionId: 'def-b3f1', terms: buy3free1({ breakageBps: 1000, costBranch: 'B' }), branchId: 'A', timeZone: 'Asia/Singapore', at: day('2025-03-01') });
  const events = [sim.purchase(), sim.consume('A', day('2025-03-02')), sim.consume('B', day('2025-03-03'))];
  events.push(sim.reverse(events[1]!.id, day('2025-03-04')), sim.consume('B', day('2025-03-05')), sim.freeze(day('2025-03-06')), sim.unfreeze(day('2025-03-07')), sim.expire(day('2025-06-01')));
  return { sim, events };
}

/** A journal with the ids taken out: what two runs of the same story must agree on, entry by entry in posting order. */
async function normalised(tenantId: string, entitlementId: string) {
  const { entries } = await h.call('listJournalEntries', { entitlementId, pageSize: 100 }, finance(tenantId));
  return entries.map((e: JournalEntry) => [e.cause, e.accountingDate, ...showLines(e)]);
}

describe('per-entitlement ordering', () => {
  it('applies events delivered in reverse, shuffled and duplicated in version order, with the same journal as in order', async () => {
    const inOrder = await tenant('inorder');
    const reference = scenario(inOrder);
    for (const e of reference.events) await h.ledger(e);
    await h.settled(reference.events.map((e) => e.id));

    const shuffled = await tenant('shuffled');
    const { sim, events } = scenario(shuffled);
    const order = [7, 3, 5, 0, 6, 2, 4, 1, 5, 0];
    const seen = new Set<number>();
    for (const i of order) {
      const e = events[i]!;
      // The second time, under another event id: a version already applied must change nothing.
      await h.ledger(e, seen.has(i) ? { id: `${e.id}-republished` } : {});
      seen.add(i);
    }
    await h.settled(events.map((e) => e.id));
    await h.settled([`${events[5]!.id}-republished`, `${events[0]!.id}-republished`]);

    expect(await normalised(shuffled, sim.entitlementId)).toEqual(await normalised(inOrder, reference.sim.entitlementId));
    // Posting order is version order: the journal's sources follow the versions that carried them.
    const { entries } = await h.call('listJournalEntries', { entitlementId: sim.entitlementId }, finance(shuffled));
    const versionOf = new Map(events.map((e) => [e.id, e.version]));
    const versions = entries.map((e) => versionOf.get(e.sourceId)!);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    // Later versions waited for the ones before them.
    expect(h.outcomesOf(events[7]!.id).some((o) => o.outcome === 'retry')).toBe(true);
    expect(h.outcomesOf(`${events[0]!.id}-republished`).map((o) => o.outcome)).toEqual(['applied']);
  });

  it('waits on a gap until the missing version arrives', async () => {
    const t = await tenant('gap');
    const { events } = scenario(t);
    await h.ledger(events[0]!);
    await h.ledger(events[2]!);
    await h.settled([events[0]!.id]);
    const deadline = Date.now() + 5000;
    while (h.outcomesOf(events[2]!.id).filter((o) => o.outcome === 'retry').length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const retries = h.outcomesOf(events[2]!.id);
    expect(retries.length).toBeGreaterThanOrEqual(2);
    expect(retries.every((o) => o.outcome === 'retry' && /version 3 must wait for 2/.test(o.reason))).toBe(true);
    await h.ledger(events[1]!);
    await h.settled([events[1]!.id, events[2]!.id]);
  });
});

describe('redelivery and replay', () => {
  it('ignores an event delivered again under the same id, and a full replay of every stream changes nothing', async () => {
    const t = await tenant('replay');
    const { sim, events } = scenario(t);
    for (const e of events) await h.ledger(e);
    const visit = await h.visit({ tenantId: t, branchId: 'B', at: day('2025-03-09'), price: 5000n });
    await h.settled([...events.map((e) => e.id), visit.id]);
    const before = await normalised(t, sim.entitlementId);
    const published = (await h.published(t)).length;

    await h.redeliver(events[2]!);
    await h.settled([events[2]!.id], 10_000, 2);
    expect(h.outcomesOf(events[2]!.id).map((o) => o.outcome).filter((o) => o !== 'retry')).toEqual(['applied', 'duplicate']);

    await h.stopService();
    await h.resetConsumers();
    await h.startService();
    await h.settled([...events.map((e) => e.id), visit.id], 15_000, 2);
    expect(await normalised(t, sim.entitlementId)).toEqual(before);
    const { entries } = await h.call('listJournalEntries', { branchId: 'B', period: { startDate: '2025-03-09', endDate: '2025-03-10' } }, finance(t));
    expect(entries.filter((e) => e.cause === 'visits.visit_completed')).toHaveLength(1);
    expect((await h.published(t)).length).toBe(published);
  });
});

describe('catalogue dependencies', () => {
  it('waits for a tenant it has not heard of, and keeps the newest tenant update when an older one arrives late', async () => {
    const t = newTenant('late');
    const sim = new SimEntitlement({ tenantId: t, definitionId: 'def-b3f1', terms: buy3free1(), branchId: 'A', timeZone: 'Asia/Singapore', at: day('2025-03-01') });
    const purchase = sim.purchase();
    const consume = sim.consume('B', day('2025-03-02'));
    await h.ledger(purchase);
    const deadline = Date.now() + 5000;
    while (!h.outcomesOf(purchase.id).some((o) => o.outcome === 'retry') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(h.outcomesOf(purchase.id)[0]).toMatchObject({ outcome: 'retry', reason: expect.stringMatching(/tenant .* is not known yet/) });

    const newer = await h.tenant(t, { earningRule: 'PURCHASING_BRANCH', at: new Date('2025-02-02T00:00:00Z') });
    const older = await h.tenant(t, { earningRule: 'DELIVERING_BRANCH', at: new Date('2025-02-01T00:00:00Z') });
    await h.settled([newer, older, await h.branch(t, 'A', 'Asia/Singapore'), await h.branch(t, 'B', 'Asia/Singapore')]);
    await h.ledger(consume);
    await h.settled([purchase.id, consume.id]);
    const { entries } = await h.call('listJournalEntries', { entitlementId: sim.entitlementId }, finance(t));
    expect(showLines(entries[1])).toEqual(['Dr DEFERRED_REVENUE@A 75.00 [RECOGNISED]', 'Cr PACKAGE_REVENUE@A 75.00']);
  });
});

describe('sealed tenants', () => {
  it('refuses a ledger event whose payload names another tenant than its subject, and changes nothing there', async () => {
    const victim = await tenant('victim');
    const intruder = await tenant('intruder');
    const sim = new SimEntitlement({ tenantId: intruder, definitionId: 'def-b3f1', terms: buy3free1(), branchId: 'A', timeZone: 'Asia/Singapore', at: day('2025-03-01') });
    const purchase = sim.purchase();
    await h.ledger({ ...purchase, tenantId: victim });
    const dead = await h.deadLettered(purchase.id);
    expect(dead.outcome === 'deadlettered' && dead.reason).toMatch(/tenant_id: .* arrived on tenant victim-/);
    expect((await h.call('listJournalEntries', {}, finance(victim))).entries).toEqual([]);
    expect((await h.call('listJournalEntries', {}, finance(intruder))).entries).toEqual([]);
  });
});
