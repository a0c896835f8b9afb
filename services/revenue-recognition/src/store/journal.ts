import { createHash } from 'node:crypto';
import { sqlWrite, type OwnWrite } from '@punchcard/bus';
import { sql, type Kysely } from 'kysely';
import type { JournalDraft, JournalLine, Account, Movement } from '../domain/types.js';
import type { RevenueDb } from './schema.js';

/** A UUID whose first 48 bits are a time: v7 (the ledger's entries and events), or v8 made by {@link journalEntryId}. */
const TIME_ORDERED_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[78][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/**
 * The id of the entry recording (tenant, cause, source): derived, not random, so replaying the same
 * events yields the same journal, ids included. Its first 48 bits are those of `orderedBy` (by
 * default the source) when that is a time-ordered UUID, as the ledger's entry ids are, and of the
 * hash otherwise: entries then reach the journal's indexes keyed by entry id (three of them, with
 * the lines') in the order their sources happened, at the indexes' right edge, where a hash put each
 * on a random page (once an index outgrows the buffer cache, a read from disk and, after a
 * checkpoint, a full-page image in the WAL; see `uuidv7` in `@punchcard/db`).
 */
export function journalEntryId(tenantId: string, cause: string, sourceId: string, orderedBy: string = sourceId): string {
  const h = createHash('sha256').update(`${tenantId}\u0000${cause}\u0000${sourceId}`).digest('hex');
  const first = TIME_ORDERED_UUID.test(orderedBy) ? orderedBy.slice(0, 13).toLowerCase() : `${h.slice(0, 8)}-${h.slice(8, 12)}`;
  // RFC 9562 layout, version 8 (custom), variant 10.
  const variant = ((parseInt(h.slice(16, 17), 16) & 0x3) | 0x8).toString(16);
  return `${first}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** An entry as posted: its draft with its id and the time it was posted. */
export interface PostedEntry extends JournalDraft {
  journalEntryId: string;
  postedAt: Date;
}

/** A posted entry read back, with its place in the journal (`seq`, from a sequence at insert). */
export interface NumberedEntry extends PostedEntry {
  seq: bigint;
}

/** The drafts as they are posted at `postedAt`, with their ids. */
export function postedEntries(drafts: readonly JournalDraft[], postedAt: Date): PostedEntry[] {
  // Object.assign, not a leading spread: on Node 20's V8 the keys after a leading spread give every
  // object a hidden class of its own, made in the old generation.
  return drafts.map((d) => Object.assign({}, d, { journalEntryId: journalEntryId(d.tenantId, d.cause, d.sourceId), postedAt }));
}

/**
 * The inserts of the entries (in the given order, which their `seq` follows) and of their lines, as
 * writes of one statement (see the bus's `alongside`); the database checks each entry's balance at
 * commit. The rows go as jsonb, not as an array per column: two dozen array literals per batch were
 * a large part of what this service allocated.
 */
export function journalWrites(entries: readonly PostedEntry[]): OwnWrite[] {
  if (entries.length === 0) return [];
  const rows = entries.map((e) => ({
    id: e.journalEntryId,
    tenant: e.tenantId,
    cause: e.cause,
    source: e.sourceId,
    entitlement: e.entitlementId,
    definition: e.definitionId,
    currency: e.currency,
    date: e.accountingDate,
    description: e.description,
    posted: e.postedAt,
  }));
  // A line repeats its entry's tenant, date, package and currency (checked at commit); int8 as text:
  // JSON has no bigint.
  const lines = entries.flatMap((e) =>
    e.lines.map((l, n) => ({
      id: e.journalEntryId,
      no: n + 1,
      tenant: e.tenantId,
      date: e.accountingDate,
      definition: e.definitionId,
      currency: e.currency,
      entitlement: e.entitlementId,
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
  return [
    sqlWrite(
      () => sql`
        insert into journal_entry (journal_entry_id, tenant_id, cause, source_id, entitlement_id, definition_id, currency, accounting_date, description, posted_at)
        select e.id, e.tenant, e.cause, e.source, e.entitlement, e.definition, e.currency, e.date, e.description, e.posted
        from rows from (jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
          as (id uuid, tenant text, cause text, source text, entitlement text, definition text, currency text, date date, description text, posted timestamptz))
          with ordinality as e (id, tenant, cause, source, entitlement, definition, currency, date, description, posted, n)
        order by e.n`,
    ),
    sqlWrite(
      () => sql`
        insert into journal_line (journal_entry_id, line_no, tenant_id, accounting_date, definition_id, currency, entitlement_id, account, branch_id,
          counterparty_branch_id, debit_minor, credit_minor, movement, sessions, delivery_cost_minor)
        select l.id, l.no, l.tenant, l.date, l.definition, l.currency, l.entitlement, l.account, l.branch, l.counterparty, l.debit, l.credit, l.movement, l.sessions, l.cost
        from jsonb_to_recordset(${JSON.stringify(lines)}::jsonb) as l (id uuid, no smallint, tenant text, date date, definition text, currency text, entitlement text,
          account text, branch text, counterparty text, debit bigint, credit bigint, movement text, sessions integer, cost bigint)`,
    ),
  ];
}

/** The entry recording (tenant, cause, source), if there is one. */
export async function findJournalEntry(db: Kysely<RevenueDb>, tenantId: string, cause: string, sourceId: string): Promise<NumberedEntry | undefined> {
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

export function toPosted(e: EntryRow, lines: JournalLine[]): NumberedEntry {
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
