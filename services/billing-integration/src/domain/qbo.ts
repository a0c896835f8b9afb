import { createHash } from 'node:crypto';
import { decimalLiteral, lineDescription, mapAccounts, narration, type Journal } from './journal.js';
import { decimal, stringifyRaw, type RawJson } from './rawjson.js';

/** QuickBooks Online caps DocNumber at 21 characters. */
export const QBO_DOC_NUMBER_MAX = 21;

/**
 * The DocNumber for a journal entry: the id itself when it fits, else "PC" + 19 hex characters of its
 * SHA-256 (76 bits; deterministic, so a retry carries the same DocNumber). The full id is in PrivateNote.
 */
export function qboDocNumber(journalEntryId: string): string {
  if (journalEntryId.length <= QBO_DOC_NUMBER_MAX) return journalEntryId;
  return `PC${createHash('sha256').update(journalEntryId).digest('hex').slice(0, QBO_DOC_NUMBER_MAX - 2)}`;
}

/**
 * The QuickBooks Online JournalEntry create body (POST /v3/company/{realmId}/journalentry): a Line per
 * journal line with DetailType JournalEntryLineDetail, PostingType Debit or Credit, a positive Amount
 * and AccountRef = the tenant's QBO account id; TxnDate = accounting date, DocNumber = our id (see
 * qboDocNumber), TotalAmt = the sum of the debits, all amounts as decimals.
 */
export function buildQboJournalEntry(journal: Journal, accountCodes: Readonly<Record<string, string>>): { body: string; value: RawJson; docNumber: string } {
  const lines = mapAccounts(journal, accountCodes);
  const total = lines.reduce((s, l) => s + l.debitMinor, 0n);
  const docNumber = qboDocNumber(journal.journalEntryId);
  const value: RawJson = {
    DocNumber: docNumber,
    TxnDate: journal.accountingDate,
    PrivateNote: narration(journal),
    CurrencyRef: { value: journal.currency },
    TotalAmt: decimal(decimalLiteral(journal.currency, total)),
    Line: lines.map((l, i) => ({
      Id: String(i),
      Description: lineDescription(journal, l),
      Amount: decimal(decimalLiteral(journal.currency, l.debitMinor > 0n ? l.debitMinor : l.creditMinor)),
      DetailType: 'JournalEntryLineDetail',
      JournalEntryLineDetail: {
        PostingType: l.debitMinor > 0n ? 'Debit' : 'Credit',
        AccountRef: { value: l.accountCode },
      },
    })),
  };
  return { body: stringifyRaw(value), value, docNumber };
}
