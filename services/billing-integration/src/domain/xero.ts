import { decimalLiteral, lineDescription, mapAccounts, narration, type Journal } from './journal.js';
import { decimal, stringifyRaw, type RawJson } from './rawjson.js';

/**
 * The Xero Manual Journals request body (Accounting API, PUT /ManualJournals) for one journal entry:
 * one ManualJournal, a JournalLine per line with LineAmount positive for a debit and negative for a
 * credit (Xero's sign convention; the lines sum to zero), AccountCode from the tenant's chart of
 * accounts, Narration carrying our journal entry id (Xero has no external-id field, so the id is the
 * Idempotency-Key of the request and is visible in the narration), Date = the accounting date and
 * Status POSTED. Tax is not ours to compute: LineAmountTypes NoTax.
 */
export function buildXeroManualJournal(journal: Journal, accountCodes: Readonly<Record<string, string>>): { body: string; value: RawJson } {
  const lines = mapAccounts(journal, accountCodes);
  const value: RawJson = {
    ManualJournals: [
      {
        Narration: narration(journal),
        Date: journal.accountingDate,
        Status: 'POSTED',
        LineAmountTypes: 'NoTax',
        ShowOnCashBasisReports: false,
        JournalLines: lines.map((l) => ({
          LineAmount: decimal(l.debitMinor > 0n ? decimalLiteral(journal.currency, l.debitMinor) : decimalLiteral(journal.currency, -l.creditMinor)),
          AccountCode: l.accountCode,
          Description: lineDescription(journal, l),
        })),
      },
    ],
  };
  return { body: stringifyRaw(value), value };
}
