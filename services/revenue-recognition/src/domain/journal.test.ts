import { describe, expect, it } from 'vitest';
import { UnbalancedEntry } from './errors.js';
import { assertBalanced, credit, debit, transfer } from './journal.js';

const entry = (lines: ReturnType<typeof debit>[]) => ({ cause: 'test', sourceId: 'e1', lines });

describe('journal lines', () => {
  it('keeps one branch to two lines and crosses branches through due-to / due-from', () => {
    const same = transfer({ account: 'CASH', branchId: 'A' }, { account: 'DEFERRED_REVENUE', branchId: 'A', meta: { movement: 'SALE' } }, 500n);
    expect(same.map((l) => [l.account, l.branchId, l.debit, l.credit])).toEqual([
      ['CASH', 'A', 500n, 0n],
      ['DEFERRED_REVENUE', 'A', 0n, 500n],
    ]);
    const cross = transfer(
      { account: 'DEFERRED_REVENUE', branchId: 'A', meta: { movement: 'RECOGNISED' } },
      { account: 'PACKAGE_REVENUE', branchId: 'B' },
      500n,
      1,
    );
    expect(cross.map((l) => [l.account, l.branchId, l.debit, l.credit, l.counterpartyBranchId, l.sessions])).toEqual([
      ['DEFERRED_REVENUE', 'A', 500n, 0n, '', 0],
      ['DUE_TO_BRANCH', 'A', 0n, 500n, 'B', 1],
      ['DUE_FROM_BRANCH', 'B', 500n, 0n, 'A', 1],
      ['PACKAGE_REVENUE', 'B', 0n, 500n, '', 0],
    ]);
    assertBalanced(entry(cross));
  });

  it('mirrors every line for a negative amount', () => {
    const forward = transfer({ account: 'DEFERRED_REVENUE', branchId: 'A', meta: { movement: 'RECOGNISED' } }, { account: 'PACKAGE_REVENUE', branchId: 'B' }, 7n);
    const back = transfer({ account: 'DEFERRED_REVENUE', branchId: 'A', meta: { movement: 'RECOGNISED' } }, { account: 'PACKAGE_REVENUE', branchId: 'B' }, -7n);
    expect(back.map((l) => [l.account, l.debit, l.credit])).toEqual(forward.map((l) => [l.account, l.credit, l.debit]));
    expect(transfer({ account: 'CASH', branchId: 'A' }, { account: 'VISIT_REVENUE', branchId: 'A' }, 0n)).toEqual([]);
  });

  it('rejects entries that do not balance, overall or per branch, or misuse a line', () => {
    expect(() => assertBalanced(entry([debit('CASH', 'A', 5n), credit('VISIT_REVENUE', 'A', 4n)]))).toThrow(UnbalancedEntry);
    expect(() => assertBalanced(entry([debit('CASH', 'A', 5n), credit('VISIT_REVENUE', 'B', 5n)]))).toThrow(/at branch A/);
    expect(() => assertBalanced(entry([debit('CASH', 'A', 5n)]))).toThrow(/at least two/);
    expect(() => assertBalanced(entry([debit('CASH', 'A', 5n), credit('DEFERRED_REVENUE', 'A', 5n)]))).toThrow(/movement/);
    expect(() => assertBalanced(entry([debit('CASH', 'A', 0n), credit('VISIT_REVENUE', 'A', 0n)]))).toThrow(/exactly one/);
    expect(() => assertBalanced(entry([debit('CASH', 'A', 5n), credit('DUE_TO_BRANCH', 'A', 5n)]))).toThrow(/counterparty/);
  });
});
