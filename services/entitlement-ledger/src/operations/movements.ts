import type { Context } from '@opentelemetry/api';
import type { OwnWrite } from '@punchcard/bus';
import type { Kysely } from 'kysely';
import { enqueueEntryEvents } from '../events/ledger-events.js';
import { entitlementsUpdate, entriesInsert } from '../store/bulk.js';
import type { EntitlementRecord } from '../store/entitlements.js';
import type { LedgerDb } from '../store/schema.js';
import type { Recorded } from './ledger.js';

/** A decided movement of a batch operation: the row as locked, what it becomes, and the trace of the request that made it. */
export interface BatchMovement {
  prev: EntitlementRecord;
  recorded: Recorded;
  trace?: Context | undefined;
}

/**
 * Saves the movements of a batch operation of one tenant (one per entitlement) in one statement: the
 * rows' update, the entries' insert and their events' outbox rows, with `also` (the requests' stored
 * answers, say). The entries are checked against the saved rows when the statement is done.
 */
export async function saveMovements(tx: Kysely<LedgerDb>, movements: readonly BatchMovement[], now: Date, also?: OwnWrite): Promise<void> {
  if (movements.length === 0) return;
  await enqueueEntryEvents(
    tx,
    movements.map((m) => ({ ...m.recorded, payload: m.recorded.encoded, trace: m.trace })),
    [
      entitlementsUpdate(
        movements.map((m) => ({ prev: m.prev, next: m.recorded.entitlement })),
        now,
      ),
      entriesInsert(movements.map((m) => m.recorded.entry)),
      ...(also ? [also] : []),
    ],
  );
}
