import { formatAmount } from '@punchcard/money';
import { describe, expect, it } from 'vitest';
import {
  apply,
  contractValue,
  deferredBalance,
  purchase,
  transferIn,
  transferOut,
  upgradeIn,
  upgradeOut,
  type Contract,
  type ContractEvent,
  type ContractTerms,
  type PostingContext,
} from './contract.js';
import { RevenueRuleError } from './errors.js';
import type { EarningRule, EntitlementStatus, JournalDraft } from './types.js';

const at = (day: number) => new Date(Date.UTC(2025, 2, day, 3));
const ctx = (earningRule: EarningRule = 'DELIVERING_BRANCH'): PostingContext => ({
  earningRule,
  accountingDate: (branchId, when) => `${branchId}:${when.toISOString().slice(0, 10)}`,
});

function terms(over: Partial<ContractTerms> = {}): ContractTerms {
  return {
    tenantId: 't1',
    entitlementId: 'ent-1',
    definitionId: 'def-1',
    definitionVersion: 1,
    memberId: 'm1',
    currency: 'SGD',
    liabilityBranchId: 'A',
    breakageBps: 0,
    sessionOrder: 'PAID_FIRST',
    standalonePrice: 9000n,
    costs: { perSession: 2000n, byBranch: { B: 2500n } },
    ...over,
  };
}

function buy(price: bigint, paid: number, bonus: number, over: Partial<ContractTerms> = {}, rule?: EarningRule) {
  return purchase({ ...terms(over), entryId: 'p1', at: at(1), status: 'ACTIVE', price, paidSessions: paid, bonusSessions: bonus }, ctx(rule));
}

/** "Dr DEFERRED_REVENUE@A 75.00" (plus "→B" for the counterparty of due lines). */
function show(draft: JournalDraft | null): string[] {
  if (!draft) return [];
  return draft.lines.map((l) => {
    const side = l.debit > 0n ? 'Dr' : 'Cr';
    const cp = l.counterpartyBranchId ? `→${l.counterpartyBranchId}` : '';
    return `${side} ${l.account}@${l.branchId}${cp} ${formatAmount('SGD', l.debit + l.credit)}`;
  });
}

type Step = ContractEvent extends infer E ? (E extends ContractEvent ? Omit<E, 'at' | 'status'> & { at?: Date; status?: EntitlementStatus } : never) : never;

function run(c: Contract, step: Step, rule?: EarningRule) {
  return apply(c, { at: at(10), status: 'ACTIVE', ...step } as ContractEvent, ctx(rule));
}

const consume = (entryId: string, branchId = 'A', bonus: boolean | null = null): Step => ({ kind: 'CONSUME', entryId, branchId, bonus });

describe('purchase', () => {
  it('defers the whole price and allocates Buy 3 Free 1 at 300.00 as 75.00 x 4', () => {
    const { contract, draft } = buy(30000n, 3, 1);
    expect(show(draft)).toEqual(['Dr CASH@A 300.00', 'Cr DEFERRED_REVENUE@A 300.00']);
    expect(draft?.lines[1]?.movement).toBe('SALE');
    expect(draft?.accountingDate).toBe('A:2025-03-01');
    expect(contract.sessions.map((s) => [s.number, s.bonus, s.value])).toEqual([
      [1, false, 7500n],
      [2, false, 7500n],
      [3, false, 7500n],
      [4, true, 7500n],
    ]);
    expect(deferredBalance(contract)).toBe(30000n);
  });

  it('allocates 100.00 over 3 as 33.34 + 33.33 + 33.33 and recognises them in session order', () => {
    let { contract } = buy(10000n, 3, 0);
    const recognised: string[][] = [];
    for (const id of ['c1', 'c2', 'c3']) {
      const p = run(contract, consume(id));
      contract = p.contract;
      recognised.push(show(p.draft));
    }
    expect(recognised).toEqual([
      ['Dr DEFERRED_REVENUE@A 33.34', 'Cr PACKAGE_REVENUE@A 33.34'],
      ['Dr DEFERRED_REVENUE@A 33.33', 'Cr PACKAGE_REVENUE@A 33.33'],
      ['Dr DEFERRED_REVENUE@A 33.33', 'Cr PACKAGE_REVENUE@A 33.33'],
    ]);
    expect(deferredBalance(contract)).toBe(0n);
  });
});

describe('consume and reverse', () => {
  it('recognises a session at the branch that delivered it, with its delivery cost', () => {
    const { contract } = buy(30000n, 3, 1);
    const { draft } = run(contract, consume('c1', 'A'));
    expect(show(draft)).toEqual(['Dr DEFERRED_REVENUE@A 75.00', 'Cr PACKAGE_REVENUE@A 75.00']);
    expect(draft?.lines[1]).toMatchObject({ sessions: 1, deliveryCost: 2000n });
    expect(draft?.recognitions).toEqual([{ kind: 'package', branchId: 'A', amount: 7500n }]);
  });

  it('reverses exactly the consumed line and gives the same session to the next consume', () => {
    let { contract } = buy(10000n, 3, 0);
    contract = run(contract, consume('c1')).contract;
    const second = run(contract, consume('c2', 'B'));
    const reversal = run(second.contract, { kind: 'REVERSAL', entryId: 'r1', branchId: '', reversesEntryId: 'c2' });
    expect(show(reversal.draft)).toEqual(show(second.draft).map((l) => l.replace(/^(Dr|Cr)/, (s) => (s === 'Dr' ? 'Cr' : 'Dr'))));
    expect(reversal.draft?.lines.map((l) => [l.sessions, l.deliveryCost])).toEqual(second.draft?.lines.map((l) => [0 - l.sessions || 0, -l.deliveryCost]));
    expect(reversal.draft?.accountingDate).toBe('B:2025-03-10');
    expect(reversal.contract).toEqual({ ...contract, status: 'ACTIVE' });
    const again = run(reversal.contract, consume('c3'));
    expect(again.contract.sessions.find((s) => s.consumedBy?.entryId === 'c3')?.number).toBe(2);
  });

  it('takes the lowest open session of the kind the ledger consumed', () => {
    const { contract } = buy(30000n, 3, 1, { sessionOrder: 'BONUS_FIRST' });
    expect(contract.sessions.map((s) => s.bonus)).toEqual([true, false, false, false]);
    const paid = run(contract, consume('c1', 'A', false));
    expect(paid.contract.sessions.find((s) => s.consumedBy)?.number).toBe(2);
    const bonus = run(paid.contract, consume('c2', 'A', true));
    expect(bonus.contract.sessions.find((s) => s.consumedBy?.entryId === 'c2')?.number).toBe(1);
    expect(() => run(bonus.contract, consume('c3', 'A', true))).toThrow(/no unconsumed bonus session/);
  });

  it('refuses a reversal of an unknown consume and a consume applied twice, naming the field', () => {
    const { contract } = buy(30000n, 3, 1);
    expect(() => run(contract, { kind: 'REVERSAL', entryId: 'r1', branchId: '', reversesEntryId: 'nope' })).toThrow(RevenueRuleError);
    expect(() => run(contract, { kind: 'REVERSAL', entryId: 'r1', branchId: '', reversesEntryId: 'nope' })).toThrow(/reverses_entry_id/);
    const once = run(contract, consume('c1')).contract;
    expect(() => run(once, consume('c1'))).toThrow(/already applied/);
  });
});

describe('multi-branch', () => {
  it('sold at A, delivered at B: B recognises, A owes B (due-to), B is owed by A (due-from)', () => {
    const { contract } = buy(30000n, 3, 1);
    const { draft } = run(contract, consume('c1', 'B'));
    expect(show(draft)).toEqual([
      'Dr DEFERRED_REVENUE@A 75.00',
      'Cr DUE_TO_BRANCH@A→B 75.00',
      'Dr DUE_FROM_BRANCH@B→A 75.00',
      'Cr PACKAGE_REVENUE@B 75.00',
    ]);
    expect(draft?.lines[3]).toMatchObject({ deliveryCost: 2500n, sessions: 1 });
    expect(draft?.accountingDate).toBe('B:2025-03-10');
  });

  it('with the purchasing-branch rule A recognises and nobody owes anybody', () => {
    const { contract } = buy(30000n, 3, 1, {}, 'PURCHASING_BRANCH');
    const { draft } = run(contract, consume('c1', 'B'), 'PURCHASING_BRANCH');
    expect(show(draft)).toEqual(['Dr DEFERRED_REVENUE@A 75.00', 'Cr PACKAGE_REVENUE@A 75.00']);
  });
});

describe('breakage', () => {
  const expire: Step = { kind: 'STATUS', entryId: 'x1', branchId: '', cause: 'ledger.entitlement_expired', status: 'EXPIRED' };

  it('at expiry (the default): what is left of deferred revenue becomes breakage revenue', () => {
    let { contract } = buy(30000n, 3, 1);
    contract = run(contract, consume('c1')).contract;
    contract = run(contract, consume('c2')).contract;
    const { contract: closed, draft } = run(contract, expire);
    expect(show(draft)).toEqual(['Dr DEFERRED_REVENUE@A 150.00', 'Cr BREAKAGE_REVENUE@A 150.00']);
    expect(draft?.lines[0]?.movement).toBe('BREAKAGE');
    expect(draft?.recognitions).toEqual([{ kind: 'breakage', branchId: 'A', amount: 15000n }]);
    expect(deferredBalance(closed)).toBe(0n);
  });

  it('proportional: 25% expected breakage recognised with each redemption, trued up at expiry to the same total', () => {
    let { contract } = buy(30000n, 3, 1, { breakageBps: 2500 });
    const first = run(contract, consume('c1'));
    expect(show(first.draft)).toEqual([
      'Dr DEFERRED_REVENUE@A 75.00',
      'Cr PACKAGE_REVENUE@A 75.00',
      'Dr DEFERRED_REVENUE@A 25.00',
      'Cr BREAKAGE_REVENUE@A 25.00',
    ]);
    contract = run(first.contract, consume('c2')).contract;
    expect(contract.breakageRecognised).toBe(5000n);
    const { contract: closed, draft } = run(contract, expire);
    expect(show(draft)).toEqual(['Dr DEFERRED_REVENUE@A 100.00', 'Cr BREAKAGE_REVENUE@A 100.00']);
    expect(closed.breakageRecognised).toBe(15000n);
    expect(deferredBalance(closed)).toBe(0n);
  });

  it('proportional: redeeming more than expected gives the estimate back, deferred never below zero', () => {
    let { contract } = buy(30000n, 3, 1, { breakageBps: 2500 });
    for (const id of ['c1', 'c2', 'c3']) contract = run(contract, consume(id)).contract;
    expect(deferredBalance(contract)).toBe(0n);
    const last = run(contract, consume('c4'));
    expect(show(last.draft)).toEqual([
      'Dr DEFERRED_REVENUE@A 75.00',
      'Cr PACKAGE_REVENUE@A 75.00',
      'Cr DEFERRED_REVENUE@A 75.00',
      'Dr BREAKAGE_REVENUE@A 75.00',
    ]);
    expect(last.contract.breakageRecognised).toBe(0n);
    expect(deferredBalance(last.contract)).toBe(0n);
  });

  it('a reversal after expiry moves the session from package revenue to breakage', () => {
    let { contract } = buy(30000n, 3, 1);
    contract = run(contract, consume('c1')).contract;
    contract = run(contract, expire).contract;
    const { draft, contract: after } = run(contract, { kind: 'REVERSAL', entryId: 'r1', branchId: '', reversesEntryId: 'c1', status: 'EXPIRED' });
    expect(show(draft)).toEqual([
      'Cr DEFERRED_REVENUE@A 75.00',
      'Dr PACKAGE_REVENUE@A 75.00',
      'Dr DEFERRED_REVENUE@A 75.00',
      'Cr BREAKAGE_REVENUE@A 75.00',
    ]);
    expect(after.breakageRecognised).toBe(30000n);
  });

  it('status changes that move no money post nothing', () => {
    const { contract } = buy(30000n, 3, 1);
    const { draft } = run(contract, { kind: 'STATUS', entryId: 'f1', branchId: '', cause: 'ledger.entitlement_frozen', status: 'FROZEN' });
    expect(draft).toBeNull();
  });
});

describe('hooks for top-up, refund, transfer and upgrade', () => {
  it('top-up: own contract line and allocation; Dr Cash, Cr Deferred revenue', () => {
    const { contract } = buy(30000n, 3, 1);
    const { contract: after, draft } = run(contract, { kind: 'TOP_UP', entryId: 'u1', branchId: 'A', paid: 3, bonus: 0, amount: 10000n });
    expect(show(draft)).toEqual(['Dr CASH@A 100.00', 'Cr DEFERRED_REVENUE@A 100.00']);
    expect(draft?.lines[1]?.movement).toBe('TOP_UP');
    expect(after.lines.map((l) => [l.kind, l.amount, l.sessions])).toEqual([
      ['PURCHASE', 30000n, 4],
      ['TOP_UP', 10000n, 3],
    ]);
    expect(after.sessions.slice(4).map((s) => [s.number, s.value, s.line])).toEqual([
      [5, 3334n, 1],
      [6, 3333n, 1],
      [7, 3333n, 1],
    ]);
  });

  it('refund: unused value released, refund payable, the difference a gain (or loss)', () => {
    let { contract } = buy(30000n, 3, 1);
    contract = run(contract, consume('c1')).contract;
    const { draft, contract: after } = run(contract, { kind: 'REFUND', entryId: 'f1', branchId: '', amount: 20000n, status: 'REFUNDED' });
    expect(show(draft)).toEqual(['Dr DEFERRED_REVENUE@A 225.00', 'Cr REFUNDS_PAYABLE@A 200.00', 'Cr REFUND_GAIN_OR_LOSS@A 25.00']);
    expect(draft?.lines[0]?.movement).toBe('REFUND');
    expect(deferredBalance(after)).toBe(0n);
    expect(contractValue(after)).toBe(7500n);
  });

  it('refund with proportional breakage undoes the estimate: nothing will break', () => {
    let { contract } = buy(30000n, 3, 1, { breakageBps: 2500 });
    contract = run(contract, consume('c1')).contract;
    const { draft } = run(contract, { kind: 'REFUND', entryId: 'f1', branchId: '', amount: 23000n, status: 'REFUNDED' });
    expect(show(draft)).toEqual([
      'Dr DEFERRED_REVENUE@A 225.00',
      'Cr REFUNDS_PAYABLE@A 230.00',
      'Dr REFUND_GAIN_OR_LOSS@A 5.00',
      'Cr DEFERRED_REVENUE@A 25.00',
      'Dr BREAKAGE_REVENUE@A 25.00',
    ]);
  });

  it('transfer: the moved sessions keep their values; clearing nets to zero', () => {
    let { contract } = buy(10000n, 3, 0);
    contract = run(contract, consume('c1')).contract;
    const out = transferOut(contract, { kind: 'TRANSFER_OUT', entryId: 'o1', at: at(5), branchId: '', status: 'TRANSFERRED', paid: 2, bonus: 0, either: 0 }, ctx());
    expect(show(out.posting.draft)).toEqual(['Dr DEFERRED_REVENUE@A 66.66', 'Cr TRANSFER_CLEARING@A 66.66']);
    expect(deferredBalance(out.posting.contract)).toBe(0n);
    const into = transferIn({ ...terms({ entitlementId: 'ent-2' }), entryId: 'i1', at: at(5), status: 'ACTIVE', sessions: out.moved }, ctx());
    expect(show(into.draft)).toEqual(['Dr TRANSFER_CLEARING@A 66.66', 'Cr DEFERRED_REVENUE@A 66.66']);
    expect(into.contract.sessions.map((s) => s.value)).toEqual([3333n, 3333n]);
  });

  it('upgrade: the unused value is the credit, re-allocated with the new cash over the new sessions', () => {
    let { contract } = buy(30000n, 3, 1);
    contract = run(contract, consume('c1')).contract;
    const out = upgradeOut(contract, { kind: 'UPGRADE_OUT', entryId: 'o1', at: at(5), branchId: '', status: 'UPGRADED' }, ctx());
    expect(out.credit).toBe(22500n);
    expect(show(out.posting.draft)).toEqual(['Dr DEFERRED_REVENUE@A 225.00', 'Cr TRANSFER_CLEARING@A 225.00']);
    const into = upgradeIn(
      { ...terms({ entitlementId: 'ent-2' }), entryId: 'i1', at: at(5), status: 'ACTIVE', credit: out.credit, cash: 27500n, paidSessions: 10, bonusSessions: 0 },
      ctx(),
    );
    expect(show(into.draft)).toEqual([
      'Dr TRANSFER_CLEARING@A 225.00',
      'Cr DEFERRED_REVENUE@A 225.00',
      'Dr CASH@A 275.00',
      'Cr DEFERRED_REVENUE@A 275.00',
    ]);
    expect(into.contract.sessions.every((s) => s.value === 5000n)).toBe(true);
  });

  it('upgrade sold at another branch: the credit clears there, and the old branch owes it the credit', () => {
    let { contract } = buy(30000n, 3, 1);
    contract = run(contract, consume('c1')).contract;
    const out = upgradeOut(contract, { kind: 'UPGRADE_OUT', entryId: 'o1', at: at(5), branchId: 'B', status: 'UPGRADED', ledgerValue: 22500n }, ctx());
    expect(show(out.posting.draft)).toEqual([
      'Dr DEFERRED_REVENUE@A 225.00',
      'Cr DUE_TO_BRANCH@A→B 225.00',
      'Dr DUE_FROM_BRANCH@B→A 225.00',
      'Cr TRANSFER_CLEARING@B 225.00',
    ]);
    const into = upgradeIn(
      { ...terms({ entitlementId: 'ent-2', liabilityBranchId: 'B' }), entryId: 'i1', at: at(5), status: 'ACTIVE', credit: out.credit, cash: 27500n, paidSessions: 10, bonusSessions: 0 },
      ctx(),
    );
    expect(show(into.draft)).toEqual(['Dr TRANSFER_CLEARING@B 225.00', 'Cr DEFERRED_REVENUE@B 225.00', 'Dr CASH@B 275.00', 'Cr DEFERRED_REVENUE@B 275.00']);
  });

  it('refuses a transfer, upgrade or refund the ledger values differently, naming the field', () => {
    let { contract } = buy(10000n, 3, 0);
    contract = run(contract, consume('c1')).contract;
    expect(() => run(contract, { kind: 'TRANSFER_OUT', entryId: 'o1', branchId: '', paid: 2, bonus: 0, either: 0, ledgerValue: 6667n })).toThrow(
      /^entry\.amount: the ledger values what leaves entitlement ent-1 with entry o1 at SGD 66\.67, its contract at SGD 66\.66$/,
    );
    expect(() => run(contract, { kind: 'UPGRADE_OUT', entryId: 'o2', branchId: '', ledgerValue: 1n })).toThrow(RevenueRuleError);
    expect(() => run(contract, { kind: 'REFUND', entryId: 'f1', branchId: '', amount: 5000n, ledgerValue: 6667n })).toThrow(/^entry\.refund\.unused_value: /);
    expect(run(contract, { kind: 'TRANSFER_OUT', entryId: 'o1', branchId: '', paid: 2, bonus: 0, either: 0, ledgerValue: 6666n, status: 'TRANSFERRED' }).draft).not.toBeNull();
  });
});
