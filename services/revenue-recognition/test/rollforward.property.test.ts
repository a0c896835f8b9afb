import fc from 'fast-check';
import { RefundMethod } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { Account, DeferredMovement, type JournalEntry, type RollForwardRow } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rollForward, rollForwardHolds, ZERO_ROLL_FORWARD, type PostedLine, type RollForward } from '../src/domain/reports.js';
import type { Account as DomainAccount, Movement } from '../src/domain/types.js';
import { buy3free1, tenPack, threeForHundred } from './support/fixtures.js';
import { finance, Harness, newTenant } from './support/harness.js';
import { SimEntitlement, type LedgerEvent } from './support/ledger-sim.js';

let h: Harness;

beforeAll(async () => {
  h = await Harness.start('rollfwd');
});

afterAll(async () => {
  await h?.close();
});

type Op =
  | { t: 'buy'; def: number; bps: number; branch: number }
  | { t: 'consume'; e: number; branch: number }
  | { t: 'reverse'; e: number; pick: number }
  | { t: 'freeze'; e: number }
  | { t: 'topup'; e: number; n: number }
  | { t: 'expire'; e: number }
  | { t: 'transfer'; e: number }
  | { t: 'upgrade'; e: number; branch: number }
  | { t: 'refund'; e: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ t: fc.constant('buy' as const), def: fc.nat(1), bps: fc.constantFrom(0, 1500, 2500), branch: fc.nat(1) }) },
  { weight: 6, arbitrary: fc.record({ t: fc.constant('consume' as const), e: fc.nat(), branch: fc.nat(1) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('reverse' as const), e: fc.nat(), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('freeze' as const), e: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('topup' as const), e: fc.nat(), n: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('expire' as const), e: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('transfer' as const), e: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('upgrade' as const), e: fc.nat(), branch: fc.nat(1) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('refund' as const), e: fc.nat() }) },
);

const START = Date.UTC(2025, 2, 1, 2);
const dateOf = (d: number) => new Date(START + d * 86_400_000);
const iso = (d: number) => dateOf(d).toISOString().slice(0, 10);
const BRANCHES = ['north', 'south'];

/** Plays the operations on simulated entitlements like the ledger would, returning its events in order. */
function ledgerEvents(tenantId: string, ops: readonly (readonly [Op, number])[]): { events: LedgerEvent[]; sims: SimEntitlement[] } {
  const sims: { sim: SimEntitlement; open: boolean }[] = [];
  const events: LedgerEvent[] = [];
  let d = 0;
  for (const [o, gap] of ops) {
    d += gap;
    if (o.t === 'buy') {
      const terms =
        o.def === 0
          ? buy3free1({ breakageBps: o.bps, costBranch: 'south', refund: { method: RefundMethod.USED_AT_STANDALONE_PRICE } })
          : threeForHundred({ breakageBps: o.bps, refund: { method: RefundMethod.PRO_RATA, adminFee: 500n } });
      const sim = new SimEntitlement({ tenantId, definitionId: `def-${o.def}`, terms, branchId: BRANCHES[o.branch]!, timeZone: 'Asia/Singapore', at: dateOf(d) });
      sims.push({ sim, open: true });
      events.push(sim.purchase());
      continue;
    }
    const s = sims[o.e % Math.max(sims.length, 1)];
    if (!s?.open) continue;
    switch (o.t) {
      case 'consume':
        if (s.sim.remaining > 0) events.push(s.sim.consume(BRANCHES[o.branch]!, dateOf(d)));
        break;
      case 'reverse': {
        const ids = s.sim.consumeIds;
        const id = ids[o.pick % Math.max(ids.length, 1)];
        if (id) events.push(s.sim.reverse(id, dateOf(d)));
        break;
      }
      case 'freeze':
        events.push(s.sim.freeze(dateOf(d)), s.sim.unfreeze(dateOf(d + 1)));
        break;
      case 'topup':
        events.push(s.sim.topUp(o.n, BRANCHES[0]!, dateOf(d)));
        break;
      case 'expire':
        events.push(s.sim.expire(dateOf(d)));
        s.open = false;
        break;
      // As the ledger allows them: a transfer needs sessions left, an upgrade a target worth at least
      // the credit, a refund something to pay back. Each closes the entitlement; the first two open another.
      case 'transfer': {
        if (s.sim.remaining === 0) break;
        const { out, into, receiver } = s.sim.transfer(`member-${sims.length}`, dateOf(d));
        events.push(out, into);
        s.open = false;
        sims.push({ sim: receiver, open: true });
        break;
      }
      case 'upgrade': {
        if (s.sim.unusedValue > 80_000n) break;
        const { out, into, upgraded } = s.sim.upgrade({ definitionId: 'def-TEN', terms: tenPack(), branchId: BRANCHES[o.branch]!, timeZone: 'Asia/Singapore' }, dateOf(d));
        events.push(out, into);
        s.open = false;
        sims.push({ sim: upgraded, open: true });
        break;
      }
      case 'refund':
        if (s.sim.refundQuote().amount === 0n) break;
        events.push(s.sim.refund(dateOf(d)));
        s.open = false;
        break;
    }
  }
  return { events, sims: sims.map((s) => s.sim) };
}

async function allPages<T>(fetch: (token: string) => Promise<{ items: T[]; next: string }>): Promise<T[]> {
  const out: T[] = [];
  let token = '';
  do {
    const page = await fetch(token);
    out.push(...page.items);
    token = page.next;
  } while (token);
  return out;
}

function postedLines(entries: readonly JournalEntry[]): PostedLine[] {
  return entries.flatMap((e) =>
    e.lines.map((l) => ({
      account: Account[l.account] as DomainAccount,
      branchId: l.branchId,
      debit: l.debit?.amountMinor ?? 0n,
      credit: l.credit?.amountMinor ?? 0n,
      counterpartyBranchId: l.counterpartyBranchId,
      movement: l.movement === DeferredMovement.UNSPECIFIED ? null : (DeferredMovement[l.movement] as Movement),
      sessions: l.sessions,
      deliveryCost: l.deliveryCost?.amountMinor ?? 0n,
      accountingDate: e.accountingDate,
      definitionId: e.definitionId,
    })),
  );
}

const fromRow = (r: RollForwardRow): RollForward => ({
  opening: r.opening?.amountMinor ?? 0n,
  sales: r.sales?.amountMinor ?? 0n,
  topUps: r.topUps?.amountMinor ?? 0n,
  recognised: r.recognised?.amountMinor ?? 0n,
  breakage: r.breakage?.amountMinor ?? 0n,
  refunds: r.refunds?.amountMinor ?? 0n,
  transfers: r.transfers?.amountMinor ?? 0n,
  closing: r.closing?.amountMinor ?? 0n,
});

describe('the liability roll-forward against Postgres, for randomized ledger histories (purchase, consume, reverse, freeze, top-up, transfer, upgrade, refund, expiry)', () => {
  it('matches the reference computation from the journal, and opening + movements = closing for any period', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(op, fc.integer({ min: 0, max: 4 })), { minLength: 10, maxLength: 40 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 1, max: 60 })), { minLength: 3, maxLength: 3 }),
        async (ops, periods) => {
          const tenantId = newTenant('rnd');
          await h.settled([await h.tenant(tenantId), ...(await Promise.all(BRANCHES.map((b) => h.branch(tenantId, b, 'Asia/Singapore'))))]);
          const { events, sims } = ledgerEvents(tenantId, [[{ t: 'buy', def: 0, bps: 2500, branch: 0 }, 0], ...ops]);
          for (const e of events) await h.ledger(e);
          await h.settled(events.map((e) => e.id), 30_000);

          const entries = await allPages(async (pageToken) => {
            const r = await h.call('listJournalEntries', { pageSize: 50, pageToken }, finance(tenantId));
            return { items: r.entries, next: r.nextPageToken };
          });
          const lines = postedLines(entries);
          for (const e of entries) {
            const net = e.lines.reduce((s, l) => s + (l.debit?.amountMinor ?? 0n) - (l.credit?.amountMinor ?? 0n), 0n);
            expect(net).toBe(0n);
          }
          for (const [from, length] of [...periods, [-1, 400] as [number, number]]) {
            const period = { startDate: iso(from), endDate: iso(from + length) };
            const rows = await allPages(async (pageToken) => {
              const r = await h.call('getLiabilityRollForward', { period, pageSize: 2, pageToken }, finance(tenantId));
              for (const row of r.rows) expect(rollForwardHolds(fromRow(row))).toBe(true);
              expect(rollForwardHolds(fromRow(r.total!))).toBe(true);
              return { items: r.rows, next: r.nextPageToken };
            });
            // Groups the report leaves out (no balance, no movement) are all zero in the reference.
            const reference = rollForward(lines, { start: period.startDate, end: period.endDate });
            const reported = new Map(rows.map((r) => [`${r.branchId}|${r.definitionId}`, fromRow(r)]));
            for (const [key, r] of reference) expect([key, reported.get(key) ?? ZERO_ROLL_FORWARD]).toEqual([key, r]);
            for (const key of reported.keys()) expect(reference.has(key)).toBe(true);
          }
          // At the end of time the liability is what the contracts still carry.
          const all = await h.call('getLiabilityRollForward', { period: { startDate: '2000-01-01', endDate: '2100-01-01' } }, finance(tenantId));
          let deferred = 0n;
          for (const sim of sims) {
            const { contract } = await h.call('getContract', { entitlementId: sim.entitlementId }, finance(tenantId));
            deferred += contract?.deferredBalance?.amountMinor ?? 0n;
            expect((contract?.deferredBalance?.amountMinor ?? 0n) >= 0n).toBe(true);
          }
          expect(all.total?.closing?.amountMinor).toBe(deferred);
        },
      ),
      { numRuns: 6 },
    );
  });
});
