import { formatAmount, minorUnits } from '@punchcard/money';
import { InvalidField } from './errors.js';

/** Our chart of accounts (punchcard.revenue.v1.Account names). */
export const OUR_ACCOUNTS = [
  'ACCOUNT_CASH',
  'ACCOUNT_DEFERRED_REVENUE',
  'ACCOUNT_PACKAGE_REVENUE',
  'ACCOUNT_BREAKAGE_REVENUE',
  'ACCOUNT_REFUNDS_PAYABLE',
  'ACCOUNT_DUE_FROM_BRANCH',
  'ACCOUNT_DUE_TO_BRANCH',
  'ACCOUNT_VISIT_REVENUE',
  'ACCOUNT_REFUND_GAIN_OR_LOSS',
  'ACCOUNT_TRANSFER_CLEARING',
] as const;
export type OurAccount = (typeof OUR_ACCOUNTS)[number];

export function isOurAccount(name: string): name is OurAccount {
  return (OUR_ACCOUNTS as readonly string[]).includes(name);
}

/** A journal entry as revenue-recognition posts it, in plain types (one currency, integer minor units). */
export interface Journal {
  tenantId: string;
  journalEntryId: string;
  cause: string;
  sourceId: string;
  entitlementId: string;
  definitionId: string;
  /** YYYY-MM-DD in the branch's time zone. */
  accountingDate: string;
  description: string;
  currency: string;
  lines: JournalLine[];
}

export interface JournalLine {
  account: OurAccount;
  branchId: string;
  /** Exactly one of debit and credit is non-zero; both >= 0. */
  debitMinor: bigint;
  creditMinor: bigint;
  counterpartyBranchId: string;
}

/** A line in the tenant's chart of accounts. */
export interface MappedLine extends JournalLine {
  accountCode: string;
}

/** Debits equal credits, one currency, each line one-sided: anything else is not sent anywhere. */
export function checkBalanced(journal: Journal): void {
  let debit = 0n;
  let credit = 0n;
  for (const [i, l] of journal.lines.entries()) {
    if (l.debitMinor < 0n || l.creditMinor < 0n) throw new InvalidField(`entry.lines[${i}]`, 'negative amount');
    if ((l.debitMinor === 0n) === (l.creditMinor === 0n)) throw new InvalidField(`entry.lines[${i}]`, 'exactly one of debit and credit must be non-zero');
    debit += l.debitMinor;
    credit += l.creditMinor;
  }
  if (journal.lines.length < 2) throw new InvalidField('entry.lines', 'a journal entry needs at least two lines');
  if (debit !== credit) throw new InvalidField('entry.lines', `debits ${debit} do not equal credits ${credit}`);
  minorUnits(journal.currency);
}

/** Thrown when the tenant's mapping lacks accounts the entry uses; the sync fails until it is fixed. */
export class UnmappedAccounts extends Error {
  override readonly name = 'UnmappedAccounts';
  constructor(readonly accounts: readonly string[]) {
    super(`no account code mapped for ${accounts.join(', ')}; set account_codes with ConfigureConnector`);
  }
}

/** Maps each line to the tenant's account code; every account the entry uses must be mapped. */
export function mapAccounts(journal: Journal, accountCodes: Readonly<Record<string, string>>): MappedLine[] {
  checkBalanced(journal);
  const missing = [...new Set(journal.lines.map((l) => l.account).filter((a) => !accountCodes[a]?.trim()))];
  if (missing.length > 0) throw new UnmappedAccounts(missing);
  return journal.lines.map((l) => ({ ...l, accountCode: accountCodes[l.account]!.trim() }));
}

/** Validates a connector's account mapping: our account names as keys, non-empty codes. */
export function validateAccountCodes(codes: Readonly<Record<string, string>>): void {
  for (const [k, v] of Object.entries(codes)) {
    if (!isOurAccount(k)) throw new InvalidField(`config.account_codes[${k}]`, `unknown account; use one of ${OUR_ACCOUNTS.join(', ')}`);
    if (!v.trim() || v.length > 100) throw new InvalidField(`config.account_codes[${k}]`, 'must be a non-empty code of at most 100 characters');
  }
}

/**
 * A decimal amount as a JSON number literal with every decimal place. JSON numbers are what Xero and
 * QuickBooks take; we print them from integer minor units so no binary float is ever involved.
 */
export function decimalLiteral(currency: string, minor: bigint): string {
  return formatAmount(currency, minor);
}

/** How one journal line reads in an external system. */
export function lineDescription(journal: Journal, line: JournalLine): string {
  const branch = line.branchId ? ` @${line.branchId}` : '';
  const counterparty = line.counterpartyBranchId ? ` (counterparty ${line.counterpartyBranchId})` : '';
  return `${line.account.replace('ACCOUNT_', '').toLowerCase()}${branch}${counterparty}: ${journal.cause}`;
}

export function narration(journal: Journal): string {
  const what = journal.description || journal.cause;
  return `${what} [punchcard journal ${journal.journalEntryId}]`;
}
