import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  apply,
  contractValue,
  deferredBalance,
  isClosed,
  openSessions,
  purchase,
  redeemedValue,
  transferIn,
  transferOut,
  upgradeIn,
  upgradeOut,
  type Contract,
  type ContractTerms,
  type Posting,
  type PostingContext,
} from './contract.js';
import { totalCredits, totalDebits } from './journal.js';
import { rollForward, rollForwardHolds, type PostedLine } from './reports.js';
import type { Account, EarningRule } from './types.js';

/** Randomized operations on a tenant's contracts; `c` picks a contract by index, modulo how many exist. */
type Op =
  | { t: 'buy'; price: number; paid: number; bonus: number; bps: number; branch: number; def: number }
  | { t: 'consume'; c: number; branch: number; kind: number }
  | { t: 'reverse'; c: number; pick: number }
  | { t: 'expire'; c: number }
  | { t: 'topup'; c: number; sessions: number; amount: number }
  | { t: 'refund'; c: number; amount: number }
  | { t: 'transfer'; c: number; sessions: number }
  | { t: 'upgrade'; c: number; cash: number; paid: number; branch: number };

const BRANCHES = ['A', 'B', 'C'];
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ t: fc.constant('buy' as const), price: fc.integer({ min: 0, max: 100_000 }), paid: fc.integer({ min: 1, max: 12 }), bonus: fc.integer({ min: 0, max: 3 }), bps: fc.integer({ min: 0, max: 9_000 }), branch: fc.nat(2), def: fc.nat(1) }) },
  { weight: 8, arbitrary: fc.record({ t: fc.constant('consume' as const), c: fc.nat(), branch: fc.nat(2), kind: fc.nat(2) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('reverse' as const), c: fc.nat(), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('expire' as const), c: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('topup' as const), c: fc.nat(), sessions: fc.integer({ min: 1, max: 5 }), amount: fc.integer({ min: 0, max: 50_000 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('refund' as const), c: fc.nat(), amount: fc.integer({ min: 0, max: 50_000 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('transfer' as const), c: fc.nat(), sessions: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('upgrade' as const), c: fc.nat(), cash: fc.integer({ min: 0, max: 50_000 }), paid: fc.integer({ min: 1, max: 8 }), branch: fc.nat(2) }) },
);
const buy = op.filter((o) => o.t === 'buy');
const scenario = fc.record({
  ops: fc
    .tuple(fc.array(fc.tuple(buy, fc.constant(0)), { minLength: 1, maxLength: 3 }), fc.array(fc.tuple(op, fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 60, size: 'medium' }))
    .map(([buys, rest]) => [...buys, ...rest]),
  rule: fc.constantFrom<EarningRule>('DELIVERING_BRANCH', 'PURCHASING_BRANCH'),
});

const day0 = Date.UTC(2025, 0, 1, 12);
const dateOf = (day: number) => new Date(day0 + day * 86_400_000);

interface Ledger {
  contracts: Contract[];
  lines: PostedLine[];
  entries: number;
}

/**
 * Plays the operations like the ledger would (skipping the ones it would refuse), then expires every
 * contract still open. `flatBreakage` forces the at-expiry method for every package.
 */
function play(ops: readonly (readonly [Op, number])[], rule: EarningRule, flatBreakage: boolean, check: (l: Ledger) => void = () => undefined): Ledger {
  const ctx: PostingContext = { earningRule: rule, accountingDate: (_b, at) => at.toISOString().slice(0, 10) };
  const ledger: Ledger = { contracts: [], lines: [], entries: 0 };
  let day = 0;
  let seq = 0;
  const id = (p: string) => `${p}${++seq}`;
  const record = (p: Posting, index: number | null) => {
    if (index === null) ledger.contracts.push(p.contract);
    else ledger.contracts[index] = p.contract;
    if (!p.draft) return;
    ledger.entries++;
    expect(totalDebits(p.draft.lines)).toBe(totalCredits(p.draft.lines));
    for (const l of p.draft.lines) ledger.lines.push({ ...l, accountingDate: p.draft.accountingDate, definitionId: p.draft.definitionId });
    expect(deferredBalance(p.contract) >= 0n).toBe(true);
    check(ledger);
  };
  const termsOf = (c: Contract, entitlementId: string): ContractTerms => ({ ...c, entitlementId });
  const pick = (n: number) => (ledger.contracts.length === 0 ? null : n % ledger.contracts.length);

  const step = (o: Op) => {
    const at = dateOf(day);
    if (o.t === 'buy') {
      const terms: ContractTerms = {
        tenantId: 't', entitlementId: id('e'), definitionId: `d${o.def}`, definitionVersion: 1, memberId: 'm', currency: 'SGD',
        liabilityBranchId: BRANCHES[o.branch]!, breakageBps: flatBreakage ? 0 : o.bps, sessionOrder: 'PAID_FIRST',
        standalonePrice: 0n, costs: { perSession: 100n, byBranch: {} },
      };
      record(purchase({ ...terms, entryId: id('p'), at, status: 'ACTIVE', price: BigInt(o.price), paidSessions: o.paid, bonusSessions: o.bonus }, ctx), null);
      return;
    }
    const i = pick(o.c);
    if (i === null) return;
    const c = ledger.contracts[i]!;
    if (o.t === 'reverse') {
      const consumed = c.sessions.filter((s) => s.consumedBy && !s.removed);
      const s = consumed[o.pick % Math.max(consumed.length, 1)];
      if (!s?.consumedBy || c.status === 'REFUNDED' || c.status === 'TRANSFERRED' || c.status === 'UPGRADED') return;
      record(apply(c, { kind: 'REVERSAL', entryId: id('r'), at, branchId: '', status: c.status === 'EXHAUSTED' ? 'ACTIVE' : c.status, reversesEntryId: s.consumedBy.entryId }, ctx), i);
      return;
    }
    if (isClosed(c)) return;
    const open = openSessions(c);
    switch (o.t) {
      case 'consume': {
        if (open.length === 0) return;
        const wanted = o.kind === 0 ? null : o.kind === 1 ? false : true;
        const bonus = wanted === null || open.some((s) => s.bonus === wanted) ? wanted : null;
        const status = open.length === 1 ? 'EXHAUSTED' : 'ACTIVE';
        record(apply(c, { kind: 'CONSUME', entryId: id('c'), at, branchId: BRANCHES[o.branch]!, status, bonus }, ctx), i);
        return;
      }
      case 'expire':
        record(apply(c, { kind: 'STATUS', entryId: id('x'), at, branchId: '', status: 'EXPIRED', cause: 'ledger.entitlement_expired' }, ctx), i);
        return;
      case 'topup':
        record(apply(c, { kind: 'TOP_UP', entryId: id('u'), at, branchId: BRANCHES[o.sessions % 3]!, status: 'ACTIVE', paid: o.sessions, bonus: 0, amount: BigInt(o.amount) }, ctx), i);
        return;
      case 'refund':
        record(apply(c, { kind: 'REFUND', entryId: id('f'), at, branchId: '', status: 'REFUNDED', amount: BigInt(o.amount) }, ctx), i);
        return;
      case 'transfer': {
        const n = Math.min(o.sessions, open.length);
        if (n === 0) return;
        const status = n === open.length ? 'TRANSFERRED' : 'ACTIVE';
        const out = transferOut(c, { kind: 'TRANSFER_OUT', entryId: id('o'), at, branchId: '', status, paid: 0, bonus: 0, either: n }, ctx);
        record(out.posting, i);
        record(transferIn({ ...termsOf(c, id('e')), entryId: id('i'), at, status: 'ACTIVE', sessions: out.moved }, ctx), null);
        return;
      }
      case 'upgrade': {
        // Sold at any branch: the new contract carries the liability there.
        const sale = BRANCHES[o.branch]!;
        const out = upgradeOut(c, { kind: 'UPGRADE_OUT', entryId: id('o'), at, branchId: sale, status: 'UPGRADED' }, ctx);
        record(out.posting, i);
        const into = { ...termsOf(c, id('e')), liabilityBranchId: sale };
        record(upgradeIn({ ...into, entryId: id('i'), at, status: 'ACTIVE', credit: out.credit, cash: BigInt(o.cash), paidSessions: o.paid, bonusSessions: 0 }, ctx), null);
        return;
      }
    }
  };

  for (const [o, gap] of ops) {
    day += gap;
    step(o);
  }
  day += 1;
  for (let i = 0; i < ledger.contracts.length; i++) step({ t: 'expire', c: i });
  return ledger;
}

function balances(lines: readonly PostedLine[]): Map<Account, bigint> {
  const out = new Map<Account, bigint>();
  for (const l of lines) out.set(l.account, (out.get(l.account) ?? 0n) + l.debit - l.credit);
  return out;
}

describe('contracts under random sequences of purchase, consume, reverse, top-up, refund, transfer, upgrade and expiry', () => {
  it('balance every entry, keep deferred revenue non-negative and roll forward for any period', () => {
    fc.assert(
      fc.property(scenario, fc.integer({ min: 0, max: 40 }), fc.integer({ min: 1, max: 40 }), ({ ops, rule }, from, length) => {
        const ledger = play(ops, rule, false);
        const period = { start: dateOf(from).toISOString().slice(0, 10), end: dateOf(from + length).toISOString().slice(0, 10) };
        const rows = rollForward(ledger.lines, period);
        for (const row of rows.values()) expect(rollForwardHolds(row)).toBe(true);
        // Closing at the end of time is what the contracts still carry: nothing, once all expired.
        const all = rollForward(ledger.lines, { start: '2000-01-01', end: '2100-01-01' });
        let closing = 0n;
        for (const row of all.values()) closing += row.closing;
        expect(closing).toBe(ledger.contracts.reduce((sum, c) => sum + deferredBalance(c), 0n));
        expect(closing).toBe(0n);
        const b = balances(ledger.lines);
        // Due-to and due-from mirror each other; transfer clearing nets out at every branch once both sides are posted.
        expect(b.get('DUE_TO_BRANCH') ?? 0n).toBe(-(b.get('DUE_FROM_BRANCH') ?? 0n));
        for (const branch of BRANCHES) {
          const clearing = ledger.lines.filter((l) => l.account === 'TRANSFER_CLEARING' && l.branchId === branch).reduce((sum, l) => sum + l.debit - l.credit, 0n);
          expect([branch, clearing]).toEqual([branch, 0n]);
        }
        for (const c of ledger.contracts) {
          expect(c.breakageRecognised).toBe(contractValue(c) - redeemedValue(c));
          expect(c.packageRecognised).toBe(redeemedValue(c));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keep the roll-forward identity after every single entry', () => {
    fc.assert(
      fc.property(scenario, ({ ops, rule }) => {
        play(ops, rule, false, (ledger) => {
          const total = rollForward(ledger.lines, { start: '2000-01-01', end: '2100-01-01' });
          let closing = 0n;
          for (const row of total.values()) {
            expect(rollForwardHolds(row)).toBe(true);
            closing += row.closing;
          }
          expect(closing).toBe(-(balances(ledger.lines).get('DEFERRED_REVENUE') ?? 0n));
        });
      }),
      { numRuns: 100 },
    );
  });

  it('reconcile breakage at expiry and proportional breakage to the same totals at the end', () => {
    fc.assert(
      fc.property(scenario, ({ ops, rule }) => {
        const proportional = balances(play(ops, rule, false).lines);
        const atExpiry = balances(play(ops, rule, true).lines);
        for (const account of new Set([...proportional.keys(), ...atExpiry.keys()])) {
          expect([account, proportional.get(account) ?? 0n]).toEqual([account, atExpiry.get(account) ?? 0n]);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('leave a contract exactly as it was after a consume and its reversal', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 0, max: 9_000 }),
        fc.integer({ min: 0, max: 12 }),
        (price, paid, bonus, bps, before) => {
          const ctx: PostingContext = { earningRule: 'DELIVERING_BRANCH', accountingDate: () => '2025-01-01' };
          const terms: ContractTerms = {
            tenantId: 't', entitlementId: 'e', definitionId: 'd', definitionVersion: 1, memberId: 'm', currency: 'SGD', liabilityBranchId: 'A',
            breakageBps: bps, sessionOrder: 'PAID_FIRST', standalonePrice: 0n, costs: { perSession: 0n, byBranch: {} },
          };
          let c = purchase({ ...terms, entryId: 'p', at: dateOf(0), status: 'ACTIVE', price: BigInt(price), paidSessions: paid, bonusSessions: bonus }, ctx).contract;
          for (let k = 0; k < Math.min(before, paid + bonus - 1); k++) {
            c = apply(c, { kind: 'CONSUME', entryId: `c${k}`, at: dateOf(1), branchId: 'A', status: 'ACTIVE', bonus: null }, ctx).contract;
          }
          const consumed = apply(c, { kind: 'CONSUME', entryId: 'x', at: dateOf(2), branchId: 'B', status: 'ACTIVE', bonus: null }, ctx);
          const reversed = apply(consumed.contract, { kind: 'REVERSAL', entryId: 'r', at: dateOf(3), branchId: '', status: 'ACTIVE', reversesEntryId: 'x' }, ctx);
          expect(reversed.contract).toEqual(c);
          const net = balances(
            [...(consumed.draft?.lines ?? []), ...(reversed.draft?.lines ?? [])].map((l) => ({ ...l, accountingDate: '', definitionId: '' })),
          );
          for (const v of net.values()) expect(v).toBe(0n);
        },
      ),
    );
  });
});
