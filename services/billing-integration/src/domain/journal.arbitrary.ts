import fc from 'fast-check';
import { OUR_ACCOUNTS, type Journal, type JournalLine } from './journal.js';

/** Balanced journal entries: random debit lines, and credit lines that split the same total. */
export function balancedJournal(currency: fc.Arbitrary<string> = fc.constantFrom('SGD', 'USD', 'JPY', 'BHD')): fc.Arbitrary<Journal> {
  return fc
    .record({
      currency,
      debits: fc.array(fc.bigInt({ min: 1n, max: 10_000_000_000n }), { minLength: 1, maxLength: 4 }),
      creditParts: fc.integer({ min: 1, max: 4 }),
      accounts: fc.array(fc.constantFrom(...OUR_ACCOUNTS), { minLength: 8, maxLength: 8 }),
      id: fc.uuid(),
      date: fc.date({ min: new Date('2000-01-01'), max: new Date('2099-12-31'), noInvalidDate: true }),
      description: fc.string({ maxLength: 40 }),
      branch: fc.constantFrom('orchard', 'tampines', 'b,1', '=cmd'),
    })
    .map(({ currency, debits, creditParts, accounts, id, date, description, branch }) => {
      const total = debits.reduce((a, b) => a + b, 0n);
      const parts = Math.min(creditParts, Number(total));
      const credits: bigint[] = [];
      let left = total;
      for (let i = 0; i < parts - 1; i++) {
        const share = total / BigInt(parts);
        credits.push(share);
        left -= share;
      }
      credits.push(left);
      const line = (i: number, debitMinor: bigint, creditMinor: bigint): JournalLine => ({ account: accounts[i % 8]!, branchId: branch, debitMinor, creditMinor, counterpartyBranchId: '' });
      return {
        tenantId: 'acme',
        journalEntryId: id,
        cause: 'ledger.session_consumed',
        sourceId: 'entry-1',
        entitlementId: 'ent-1',
        definitionId: 'def-1',
        accountingDate: date.toISOString().slice(0, 10),
        description,
        currency,
        lines: [...debits.map((d, i) => line(i, d, 0n)), ...credits.map((c, i) => line(i + 4, 0n, c))],
      };
    });
}

export const ALL_MAPPED: Record<string, string> = Object.fromEntries(OUR_ACCOUNTS.map((a, i) => [a, String(100 + i)]));
