import { enqueue } from '@punchcard/bus';
import { JournalPostedSchema, RevenueRecognizedSchema } from '@punchcard/contracts/punchcard/events/v1/revenue_events_pb';
import type { Kysely } from 'kysely';
import { journalEntryToProto, money } from '../mapping.js';
import { journalEntryId, type PostedEntry } from '../store/journal.js';
import type { RevenueDb } from '../store/schema.js';

export const PRODUCER = 'revenue';

/**
 * Writes `revenue.journal_posted` for the entry and one `revenue.recognized` per amount it
 * recognised (negative for a reversal) to the outbox, in the transaction that posted the entry.
 * Event ids derive from the entry, so the same journal always yields the same events.
 */
export async function enqueueEntryEvents(tx: Kysely<RevenueDb>, entry: PostedEntry, now: Date): Promise<void> {
  await enqueue(tx, {
    producer: PRODUCER,
    event: 'journal_posted',
    tenantId: entry.tenantId,
    aggregateId: entry.journalEntryId,
    schema: JournalPostedSchema,
    message: { entry: journalEntryToProto(entry) },
    id: entry.journalEntryId,
    time: now,
  });
  for (const [i, r] of entry.recognitions.entries()) {
    await enqueue(tx, {
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
    });
  }
}
