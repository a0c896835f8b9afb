import { decimalLiteral, type Journal } from './journal.js';
import { decimal, stringifyRaw, type RawJson } from './rawjson.js';

export const CSV_COLUMNS = [
  'journal_entry_id',
  'accounting_date',
  'cause',
  'source_id',
  'entitlement_id',
  'definition_id',
  'account',
  'branch_id',
  'counterparty_branch_id',
  'currency',
  'debit',
  'credit',
  'description',
] as const;

/**
 * One CSV cell (RFC 4180): quoted when it holds a comma, quote or line break. A text cell starting
 * with = + - @ (or a tab / carriage return) is prefixed with an apostrophe so spreadsheets do not run
 * it as a formula; amounts are written by us and never need it.
 */
export function csvCell(value: string, isNumber = false): string {
  const safe = !isNumber && /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

/** Journal entries as CSV: a header, then a row per journal line, CRLF line ends. */
export function journalsToCsv(journals: readonly Journal[]): string {
  const rows = [CSV_COLUMNS.join(',')];
  for (const j of journals) {
    for (const l of j.lines) {
      rows.push(
        [
          csvCell(j.journalEntryId),
          csvCell(j.accountingDate),
          csvCell(j.cause),
          csvCell(j.sourceId),
          csvCell(j.entitlementId),
          csvCell(j.definitionId),
          csvCell(l.account),
          csvCell(l.branchId),
          csvCell(l.counterpartyBranchId),
          csvCell(j.currency),
          csvCell(decimalLiteral(j.currency, l.debitMinor), true),
          csvCell(decimalLiteral(j.currency, l.creditMinor), true),
          csvCell(j.description),
        ].join(','),
      );
    }
  }
  return rows.join('\r\n') + '\r\n';
}

/** Journal entries as JSON: `{ "journal_entries": [...] }` with decimal amounts. */
export function journalsToJson(journals: readonly Journal[]): string {
  const value: RawJson = {
    journal_entries: journals.map((j) => ({
      journal_entry_id: j.journalEntryId,
      tenant_id: j.tenantId,
      accounting_date: j.accountingDate,
      cause: j.cause,
      source_id: j.sourceId,
      entitlement_id: j.entitlementId,
      definition_id: j.definitionId,
      description: j.description,
      currency: j.currency,
      lines: j.lines.map((l) => ({
        account: l.account,
        branch_id: l.branchId,
        counterparty_branch_id: l.counterpartyBranchId,
        debit: decimal(decimalLiteral(j.currency, l.debitMinor)),
        credit: decimal(decimalLiteral(j.currency, l.creditMinor)),
      })),
    })),
  };
  return stringifyRaw(value);
}

/** Parses CSV produced by journalsToCsv (RFC 4180 quoting), for tests and round trips. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else cell += c;
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}
