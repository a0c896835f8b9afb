import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseAmount } from '@punchcard/money';
import { InvalidField } from './errors.js';
import { journalsToCsv, journalsToJson, parseCsv, CSV_COLUMNS, csvCell } from './export.js';
import { ALL_MAPPED, balancedJournal } from './journal.arbitrary.js';
import { checkBalanced, mapAccounts, UnmappedAccounts, validateAccountCodes, type Journal } from './journal.js';
import { buildQboJournalEntry, qboDocNumber, QBO_DOC_NUMBER_MAX } from './qbo.js';
import { buildXeroManualJournal } from './xero.js';

const sale: Journal = {
  tenantId: 'acme',
  journalEntryId: '5b0d7d4e-3f7c-4a43-9d4a-0c2b8f1f6a10',
  cause: 'ledger.entitlement_purchased',
  sourceId: 'entry-1',
  entitlementId: 'ent-1',
  definitionId: 'def-10pass',
  accountingDate: '2030-03-05',
  description: 'Sale of 10-session pass',
  currency: 'SGD',
  lines: [
    { account: 'ACCOUNT_CASH', branchId: 'orchard', debitMinor: 30000n, creditMinor: 0n, counterpartyBranchId: '' },
    { account: 'ACCOUNT_DEFERRED_REVENUE', branchId: 'orchard', debitMinor: 0n, creditMinor: 30000n, counterpartyBranchId: '' },
  ],
};
const codes = { ACCOUNT_CASH: '090', ACCOUNT_DEFERRED_REVENUE: '835' };

/** Parses a JSON number literal from the raw body as exact minor units. */
function minorOf(currency: string, n: number | string): bigint {
  return parseAmount(currency, String(n));
}

describe('account mapping', () => {
  it('maps every line to the tenant code', () => {
    expect(mapAccounts(sale, codes).map((l) => l.accountCode)).toEqual(['090', '835']);
  });

  it('names every unmapped account', () => {
    expect(() => mapAccounts(sale, { ACCOUNT_CASH: '090' })).toThrow(UnmappedAccounts);
    expect(() => mapAccounts(sale, { ACCOUNT_CASH: '  ' })).toThrow(/ACCOUNT_CASH, ACCOUNT_DEFERRED_REVENUE/);
  });

  it('refuses an unbalanced or one-line entry', () => {
    expect(() => checkBalanced({ ...sale, lines: [sale.lines[0]!, { ...sale.lines[1]!, creditMinor: 29999n }] })).toThrow(/debits 30000 do not equal credits 29999/);
    expect(() => checkBalanced({ ...sale, lines: [sale.lines[0]!] })).toThrow(InvalidField);
    expect(() => checkBalanced({ ...sale, lines: [{ ...sale.lines[0]!, creditMinor: 1n }, sale.lines[1]!] })).toThrow(/exactly one of debit and credit/);
  });

  it("maps a transfer's clearing line to the tenant's clearing account", () => {
    const transferOut: Journal = {
      ...sale,
      cause: 'ledger.transferred_out',
      lines: [
        { account: 'ACCOUNT_DEFERRED_REVENUE', branchId: 'orchard', debitMinor: 22500n, creditMinor: 0n, counterpartyBranchId: '' },
        { account: 'ACCOUNT_TRANSFER_CLEARING', branchId: 'orchard', debitMinor: 0n, creditMinor: 22500n, counterpartyBranchId: '' },
      ],
    };
    expect(() => validateAccountCodes({ ACCOUNT_TRANSFER_CLEARING: '2190' })).not.toThrow();
    expect(mapAccounts(transferOut, { ...codes, ACCOUNT_TRANSFER_CLEARING: '2190' }).map((l) => l.accountCode)).toEqual(['835', '2190']);
    expect(() => mapAccounts(transferOut, codes)).toThrow(/no account code mapped for ACCOUNT_TRANSFER_CLEARING/);
  });

  it('validates a mapping: our account names, non-empty codes', () => {
    expect(() => validateAccountCodes({ ACCOUNT_CASH: '090' })).not.toThrow();
    expect(() => validateAccountCodes({ CASH: '090' })).toThrow(/config.account_codes\[CASH\]: unknown account/);
    expect(() => validateAccountCodes({ ACCOUNT_CASH: '' })).toThrow(InvalidField);
  });
});

describe('Xero manual journal', () => {
  it('writes the documented request shape with the debit positive and the credit negative', () => {
    const { body } = buildXeroManualJournal(sale, codes);
    expect(JSON.parse(body)).toEqual({
      ManualJournals: [
        {
          Narration: 'Sale of 10-session pass [punchcard journal 5b0d7d4e-3f7c-4a43-9d4a-0c2b8f1f6a10]',
          Date: '2030-03-05',
          Status: 'POSTED',
          LineAmountTypes: 'NoTax',
          ShowOnCashBasisReports: false,
          JournalLines: [
            { LineAmount: 300, AccountCode: '090', Description: 'cash @orchard: ledger.entitlement_purchased' },
            { LineAmount: -300, AccountCode: '835', Description: 'deferred_revenue @orchard: ledger.entitlement_purchased' },
          ],
        },
      ],
    });
    expect(body).toContain('"LineAmount":300.00');
  });

  it('property: line amounts sum to zero exactly and each line keeps its side', () => {
    fc.assert(
      fc.property(balancedJournal(), (j) => {
        const { body } = buildXeroManualJournal(j, ALL_MAPPED);
        const amounts = [...body.matchAll(/"LineAmount":(-?[\d.]+)/g)].map((m) => minorOf(j.currency, m[1]!));
        expect(amounts.reduce((a, b) => a + b, 0n)).toBe(0n);
        expect(amounts).toEqual(j.lines.map((l) => l.debitMinor - l.creditMinor));
      }),
    );
  });
});

describe('QuickBooks Online journal entry', () => {
  it('writes the documented request shape', () => {
    const { body, docNumber } = buildQboJournalEntry(sale, { ACCOUNT_CASH: '35', ACCOUNT_DEFERRED_REVENUE: '92' });
    const value = JSON.parse(body);
    expect(value).toMatchObject({
      DocNumber: docNumber,
      TxnDate: '2030-03-05',
      CurrencyRef: { value: 'SGD' },
      TotalAmt: 300,
      Line: [
        { Amount: 300, DetailType: 'JournalEntryLineDetail', JournalEntryLineDetail: { PostingType: 'Debit', AccountRef: { value: '35' } } },
        { Amount: 300, DetailType: 'JournalEntryLineDetail', JournalEntryLineDetail: { PostingType: 'Credit', AccountRef: { value: '92' } } },
      ],
    });
    expect(value.PrivateNote).toContain(sale.journalEntryId);
  });

  it('keeps DocNumber within 21 characters, deterministic, and the id itself when it fits', () => {
    expect(qboDocNumber('je-42')).toBe('je-42');
    expect(qboDocNumber(sale.journalEntryId)).toHaveLength(QBO_DOC_NUMBER_MAX);
    expect(qboDocNumber(sale.journalEntryId)).toBe(qboDocNumber(sale.journalEntryId));
    expect(qboDocNumber(sale.journalEntryId)).not.toBe(qboDocNumber('5b0d7d4e-3f7c-4a43-9d4a-0c2b8f1f6a11'));
  });

  it('property: debits equal credits equal TotalAmt, amounts positive', () => {
    fc.assert(
      fc.property(balancedJournal(), (j) => {
        const { body } = buildQboJournalEntry(j, ALL_MAPPED);
        const lines = [...body.matchAll(/"Amount":([\d.]+),"DetailType":"JournalEntryLineDetail","JournalEntryLineDetail":\{"PostingType":"(Debit|Credit)"/g)];
        const sum = (side: string) => lines.filter((m) => m[2] === side).reduce((a, m) => a + minorOf(j.currency, m[1]!), 0n);
        const total = minorOf(j.currency, /"TotalAmt":([\d.]+)/.exec(body)![1]!);
        expect(lines).toHaveLength(j.lines.length);
        expect(sum('Debit')).toBe(sum('Credit'));
        expect(sum('Debit')).toBe(total);
      }),
    );
  });
});

describe('file export', () => {
  it('neutralises spreadsheet formulas and quotes separators', () => {
    expect(csvCell('=HYPERLINK("x")')).toBe(`"'=HYPERLINK(""x"")"`);
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('-12.30', true)).toBe('-12.30');
  });

  it('property: CSV rows round-trip to the journal lines with exact amounts', () => {
    fc.assert(
      fc.property(fc.array(balancedJournal(), { maxLength: 3 }), (journals) => {
        const rows = parseCsv(journalsToCsv(journals));
        expect(rows[0]).toEqual([...CSV_COLUMNS]);
        const body = rows.slice(1);
        expect(body).toHaveLength(journals.reduce((n, j) => n + j.lines.length, 0));
        let i = 0;
        for (const j of journals) {
          for (const l of j.lines) {
            const row = body[i++]!;
            expect(row[0]).toBe(j.journalEntryId);
            expect(minorOf(j.currency, row[10]!)).toBe(l.debitMinor);
            expect(minorOf(j.currency, row[11]!)).toBe(l.creditMinor);
          }
        }
      }),
    );
  });

  it('JSON export carries decimal amounts that balance', () => {
    const value = JSON.parse(journalsToJson([sale]));
    expect(value.journal_entries[0].lines.map((l: { debit: number; credit: number }) => [l.debit, l.credit])).toEqual([
      [300, 0],
      [0, 300],
    ]);
  });
});
