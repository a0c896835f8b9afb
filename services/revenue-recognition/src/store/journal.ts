import { createHash } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { JournalDraft, JournalLine, Account, Movement } from '../domain/types.js';
import type { RevenueDb } from './schema.js';

/**
 * The id of the entry recording (tenant, cause, source): derived, not random, so replaying the same
 * events yields the same journal, ids included.
 */
export function journalEntryId(tenantId: string, cause: string, sourceId: string): string {
  const h = createHash('sha256').update(`${tenantId}\u0000${cause}\u0000${sourceId}`).digest('hex');
  // RFC 9562 layout, version 8 (custom), variant 10.
  const variant = ((parseInt(h.slice(16, 17), 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export interface PostedEntry extends JournalDraft {
  journalEntryId: string;
  postedAt: Date;
  seq: bigint;
}

/** Inserts a (domain-checked) draft; the database checks balance again at commit. */
export async function insertJournalEntry(db: Kysely<RevenueDb>, draft: JournalDraft, postedAt: Date): Promise<PostedEntry> {
  return (await insertJournalEntries(db, [draft], postedAt))[0]!;
}

/**
 * Inserts drafts in the given order (their `seq` follows it), entries and lines in one statement; the
 * database checks each entry's balance at commit. The rows go as jsonb, not as an array per column:
 * two dozen array literals per batch were a large part of what this service allocated. A line takes
 * its entry's tenant, date, package and currency from the entry inserted beside it.
 */
export async function insertJournalEntries(db: Kysely<RevenueDb>, drafts: readonly JournalDraft[], postedAt: Date): Promise<PostedEntry[]> {
  if (drafts.length === 0) return [];
  const ids = drafts.map((d) => journalEntryId(d.tenantId, d.cause, d.sourceId));
  const entries = drafts.map((d, i) => ({
    id: ids[i],
    tenant: d.tenantId,
    cause: d.cause,
    source: d.sourceId,
    entitlement: d.entitlementId,
    definition: d.definitionId,
    currency: d.currency,
    date: d.accountingDate,
    description: d.description,
  }));
  // int8 as text: JSON has no bigint.
  const lines = drafts.flatMap((d, i) =>
    d.lines.map((l, n) => ({
      id: ids[i],
      no: n + 1,
      account: l.account,
      branch: l.branchId,
      counterparty: l.counterpartyBranchId,
      debit: l.debit.toString(),
      credit: l.credit.toString(),
      movement: l.movement,
      sessions: l.sessions,
      cost: l.deliveryCost.toString(),
    })),
  );
  const { rows } = await sql<{ journal_entry_id: string; seq: bigint }>`
    with entry as (
      insert into journal_entry (journal_entry_id, tenant_id, cause, source_id, entitlement_id, definition_id, currency, accounting_date, description, posted_at)
      select e.id, e.tenant, e.cause, e.source, e.entitlement, e.definition, e.currency, e.date, e.description, ${postedAt}::timestamptz
      from rows from (jsonb_to_recordset(${JSON.stringify(entries)}::jsonb)
        as (id uuid, tenant text, cause text, source text, entitlement text, definition text, currency text, date date, description text))
        with ordinality as e (id, tenant, cause, source, entitlement, definition, currency, date, description, n)
      order by e.n
      returning journal_entry_id, seq, tenant_id, accounting_date, definition_id, currency, entitlement_id
    ), line as (
      insert into journal_line (journal_entry_id, line_no, tenant_id, accounting_date, definition_id, currency, entitlement_id, account, branch_id,
        counterparty_branch_id, debit_minor, credit_minor, movement, sessions, delivery_cost_minor)
      select l.id, l.no, entry.tenant_id, entry.accounting_date, entry.definition_id, entry.currency, entry.entitlement_id, l.account, l.branch,
        l.counterparty, l.debit, l.credit, l.movement, l.sessions, l.cost
      from jsonb_to_recordset(${JSON.stringify(lines)}::jsonb)
        as l (id uuid, no smallint, account text, branch text, counterparty text, debit bigint, credit bigint, movement text, sessions integer, cost bigint)
      join entry on entry.journal_entry_id = l.id
    )
    select journal_entry_id, seq from entry`.execute(db);
  const seqs = new Map(rows.map((r) => [r.journal_entry_id, BigInt(r.seq)]));
  return drafts.map((d, i) => ({ ...d, journalEntryId: ids[i]!, postedAt, seq: seqs.get(ids[i]!)! }));
}

/** The entry recording (tenant, cause, source), if there is one. */
export async function findJournalEntry(db: Kysely<RevenueDb>, tenantId: string, cause: string, sourceId: string): Promise<PostedEntry | undefined> {
  const entry = await db
    .selectFrom('journal_entry')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .where('cause', '=', cause)
    .where('source_id', '=', sourceId)
    .executeTakeFirst();
  if (!entry) return undefined;
  const lines = await linesOf(db, [entry.journal_entry_id]);
  return toPosted(entry, lines.get(entry.journal_entry_id) ?? []);
}

export type EntryRow = {
  journal_entry_id: string;
  seq: bigint;
  tenant_id: string;
  cause: string;
  source_id: string;
  entitlement_id: string;
  definition_id: string;
  currency: string;
  accounting_date: string;
  posted_at: Date;
  description: string;
};

export function toPosted(e: EntryRow, lines: JournalLine[]): PostedEntry {
  return {
    journalEntryId: e.journal_entry_id,
    seq: BigInt(e.seq),
    tenantId: e.tenant_id,
    cause: e.cause,
    sourceId: e.source_id,
    entitlementId: e.entitlement_id,
    definitionId: e.definition_id,
    currency: e.currency,
    accountingDate: e.accounting_date,
    postedAt: e.posted_at,
    description: e.description,
    lines,
    recognitions: [],
  };
}

/** Lines of the given entries, in line order. */
export async function linesOf(db: Kysely<RevenueDb>, entryIds: readonly string[]): Promise<Map<string, JournalLine[]>> {
  const out = new Map<string, JournalLine[]>();
  if (entryIds.length === 0) return out;
  const rows = await db.selectFrom('journal_line').selectAll().where('journal_entry_id', 'in', [...entryIds]).orderBy('journal_entry_id').orderBy('line_no').execute();
  for (const r of rows) {
    const list = out.get(r.journal_entry_id) ?? [];
    list.push({
      account: r.account as Account,
      branchId: r.branch_id,
      counterpartyBranchId: r.counterparty_branch_id,
      debit: BigInt(r.debit_minor),
      credit: BigInt(r.credit_minor),
      movement: r.movement as Movement | null,
      sessions: r.sessions,
      deliveryCost: BigInt(r.delivery_cost_minor),
    });
    out.set(r.journal_entry_id, list);
  }
  return out;
}
