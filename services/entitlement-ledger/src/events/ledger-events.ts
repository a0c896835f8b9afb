import { enqueue } from '@punchcard/bus';
import { LedgerEntryRecordedSchema } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import type { Kysely } from 'kysely';
import type { EntryKind } from '../domain/types.js';
import { entitlementToProto, entryToProto } from '../proto/mapping.js';
import type { EntitlementRecord, EntryRecord } from '../store/entitlements.js';

export const PRODUCER = 'ledger';

/** The event each entry kind publishes (`ledger.<name>`); every one carries `LedgerEntryRecorded`. */
export const EVENT_BY_KIND: Partial<Record<EntryKind, string>> = {
  PURCHASE: 'entitlement_purchased',
  CONSUME: 'session_consumed',
  REVERSAL: 'consume_reversed',
  EXTEND: 'entitlement_extended',
  FREEZE: 'entitlement_frozen',
  UNFREEZE: 'entitlement_unfrozen',
  GRACE: 'grace_started',
  EXPIRE: 'entitlement_expired',
};

/**
 * Writes the event of one entry to the outbox in the caller's transaction: published if and only if
 * the entry commits, with the entitlement version for per-entitlement ordering and the entry id as
 * the event id (so the event of an entry is recognisable wherever it is seen).
 */
export async function enqueueEntryEvent(tx: Kysely<any>, entitlement: EntitlementRecord, entry: EntryRecord): Promise<void> {
  const event = EVENT_BY_KIND[entry.kind];
  if (!event) throw new Error(`no ledger event is defined for ${entry.kind} entries`);
  await enqueue(tx, {
    producer: PRODUCER,
    event,
    tenantId: entitlement.tenantId,
    aggregateId: entitlement.entitlementId,
    aggregateVersion: entry.entitlementVersion,
    schema: LedgerEntryRecordedSchema,
    message: { entitlement: entitlementToProto(entitlement), entry: entryToProto(entry) },
    id: entry.entryId,
    time: entry.recordTime,
  });
}
