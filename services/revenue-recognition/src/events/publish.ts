import { context, ROOT_CONTEXT, type Context } from '@opentelemetry/api';
import { enqueueMany, traceHeaders, type EnqueueInput, type OwnWrite } from '@punchcard/bus';
import { JournalPostedSchema, RevenueRecognizedSchema } from '@punchcard/contracts/punchcard/events/v1/revenue_events_pb';
import type { Kysely } from 'kysely';
import { journalEntryToProto, money } from '../mapping.js';
import type { JournalDraft } from '../domain/types.js';
import { journalEntryId, journalWrites, postedEntries, type PostedEntry } from '../store/journal.js';
import type { RevenueDb } from '../store/schema.js';

export const PRODUCER = 'revenue';

/**
 * Posts the drafts: inserts the entries with their lines and writes `revenue.journal_posted` for each
 * entry and one `revenue.recognized` per amount it recognised (negative for a reversal) to the outbox,
 * in their order, with the writes of `alongside`: one statement. Event ids derive from the entry, so
 * the same journal always yields the same events. Each entry's events carry the trace of its
 * `causes` entry (the event that caused it), else the active one.
 */
export async function postEntries(
  tx: Kysely<RevenueDb>,
  drafts: readonly JournalDraft[],
  now: Date,
  options: { causes?: readonly Context[]; alongside?: readonly OwnWrite[] } = {},
): Promise<PostedEntry[]> {
  const { causes, alongside = [] } = options;
  const entries = postedEntries(drafts, now);
  const inputs: EnqueueInput<typeof JournalPostedSchema | typeof RevenueRecognizedSchema>[] = [];
  for (const [n, entry] of entries.entries()) {
    const headers = causes ? traceHeaders(causes[n]!) : {};
    inputs.push({
      producer: PRODUCER,
      event: 'journal_posted',
      tenantId: entry.tenantId,
      aggregateId: entry.journalEntryId,
      schema: JournalPostedSchema,
      message: { entry: journalEntryToProto(entry) },
      id: entry.journalEntryId,
      time: now,
      headers,
    });
    for (const [i, r] of entry.recognitions.entries()) {
      inputs.push({
        producer: PRODUCER,
        event: 'recognized',
        tenantId: entry.tenantId,
        aggregateId: entry.entitlementId || entry.journalEntryId,
        schema: RevenueRecognizedSchema,
        message: {
          tenantId: entry.tenantId,
          entitlementId: entry.entitlementId,
          branchId: r.branchId,
          amount: money(entry.currency, r.amount),
          kind: r.kind,
          journalEntryId: entry.journalEntryId,
          definitionId: entry.definitionId,
          accountingDate: entry.accountingDate,
        },
        id: journalEntryId(entry.tenantId, 'revenue.recognized', `${entry.journalEntryId}:${i}`, entry.journalEntryId),
        time: now,
        headers,
      });
    }
  }
  const write = () => enqueueMany(tx, inputs, { alongside: [...journalWrites(entries), ...alongside] });
  // enqueueMany adds the active trace over the given headers: with per-entry traces there must be none.
  await (causes ? context.with(ROOT_CONTEXT, write) : write());
  return entries;
}
