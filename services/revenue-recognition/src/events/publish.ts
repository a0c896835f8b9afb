import { context, ROOT_CONTEXT, type Context } from '@opentelemetry/api';
import { enqueueMany, traceHeaders, type EnqueueInput } from '@punchcard/bus';
import { JournalPostedSchema, RevenueRecognizedSchema } from '@punchcard/contracts/punchcard/events/v1/revenue_events_pb';
import type { Kysely } from 'kysely';
import { journalEntryToProto, money } from '../mapping.js';
import { journalEntryId, type PostedEntry } from '../store/journal.js';
import type { RevenueDb } from '../store/schema.js';

export const PRODUCER = 'revenue';

/**
 * Writes `revenue.journal_posted` for each entry and one `revenue.recognized` per amount it
 * recognised (negative for a reversal) to the outbox, in the transaction that posted the entries, in
 * their order. Event ids derive from the entry, so the same journal always yields the same events.
 * Each entry's events carry the trace of `traceOf(entry)` (the event that caused it), else the active one.
 */
export async function enqueueEntryEvents(tx: Kysely<RevenueDb>, entries: readonly PostedEntry[], now: Date, traceOf?: (entry: PostedEntry) => Context): Promise<void> {
  const inputs: EnqueueInput<typeof JournalPostedSchema | typeof RevenueRecognizedSchema>[] = [];
  for (const entry of entries) {
    const headers = traceOf ? traceHeaders(traceOf(entry)) : {};
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
        id: journalEntryId(entry.tenantId, 'revenue.recognized', `${entry.journalEntryId}:${i}`),
        time: now,
        headers,
      });
    }
  }
  // enqueueMany adds the active trace over the given headers: with per-entry traces there must be none.
  await (traceOf ? context.with(ROOT_CONTEXT, () => enqueueMany(tx, inputs)) : enqueueMany(tx, inputs));
}
