import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
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
  const id = journalEntryId(draft.tenantId, draft.cause, draft.sourceId);
  const { seq } = await db
    .insertInto('journal_entry')
    .values({
      journal_entry_id: id,
      tenant_id: draft.tenantId,
      cause: draft.cause,
      source_id: draft.sourceId,
      entitlement_id: draft.entitlementId,
      definition_id: draft.definitionId,
      currency: draft.currency,
      accounting_date: draft.accountingDate,
      posted_at: postedAt,
      description: draft.description,
    })
    .returning('seq')
    .executeTakeFirstOrThrow();
  await db
    .insertInto('journal_line')
    .values(
      draft.lines.map((l, i) => ({
        journal_entry_id: id,
        line_no: i + 1,
        tenant_id: draft.tenantId,
        accounting_date: draft.accountingDate,
        definition_id: draft.definitionId,
        currency: draft.currency,
        entitlement_id: draft.entitlementId,
        account: l.account,
        branch_id: l.branchId,
        counterparty_branch_id: l.counterpartyBranchId,
        debit_minor: l.debit,
        credit_minor: l.credit,
        movement: l.movement,
        sessions: l.sessions,
        delivery_cost_minor: l.deliveryCost,
      })),
    )
    .execute();
  return { ...draft, journalEntryId: id, postedAt, seq: BigInt(seq) };
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
