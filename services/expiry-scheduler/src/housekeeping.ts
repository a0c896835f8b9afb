import { pruneSpentRows, type Pruned } from '@punchcard/platform';
import type { Kysely } from 'kysely';
import type { ExpiryDb } from './store/schema.js';
import { pruneCancelledTimers } from './store/store.js';

const DAY_MS = 86_400_000;

/** Cancelled timers never fire; GetSchedule shows them for this many days as history. */
export const CANCELLED_TIMER_RETENTION_DAYS = 30;

/**
 * One round of the scheduler's housekeeping: every consume of a rolling package cancels and
 * replans timers, so cancelled ones go after a while, by the service clock (their times are
 * business times); the bus's and idempotency's spent rows by the wall clock.
 */
export async function housekeep(db: Kysely<ExpiryDb>, now: Date, wallNow = new Date()): Promise<Pruned> {
  return {
    cancelledTimers: await pruneCancelledTimers(db, new Date(now.getTime() - CANCELLED_TIMER_RETENTION_DAYS * DAY_MS)),
    ...(await pruneSpentRows(db, ['inbox', 'idempotencyKeys'], wallNow)),
  };
}
