import { pruneInbox, pruneOutbox } from '@punchcard/bus';
import { pruneIdempotencyKeys } from '@punchcard/db';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { ExpiryDb } from './store/schema.js';
import { pruneCancelledTimers } from './store/store.js';

const DAY_MS = 86_400_000;

/** How long rows that are no longer needed are kept, in days. */
export const RETENTION_DAYS = {
  /** Cancelled timers never fire; GetSchedule shows them for a while as history. */
  cancelledTimers: 30,
  /** Published events: long enough to investigate a relay problem. */
  outbox: 7,
  /** Applied event ids. Replays of older ledger events are caught by version order anyway. */
  inbox: 30,
  /** RunDue keys only need to outlive client retries. */
  idempotencyKeys: 7,
} as const;

export interface Pruned {
  cancelledTimers: number;
  outbox: number;
  inbox: number;
  idempotencyKeys: number;
}

/**
 * Deletes what has served its purpose, so tables do not grow without bound: every consume of a
 * rolling package cancels and replans timers. Cancelled timers age by the service clock (their
 * times are business times); the bus and idempotency tables by the database's.
 */
export async function housekeep(db: Kysely<ExpiryDb>, now: Date, wallNow = new Date()): Promise<Pruned> {
  const before = (from: Date, days: number) => new Date(from.getTime() - days * DAY_MS);
  return {
    cancelledTimers: await pruneCancelledTimers(db, before(now, RETENTION_DAYS.cancelledTimers)),
    outbox: await pruneOutbox(db, before(wallNow, RETENTION_DAYS.outbox)),
    inbox: await pruneInbox(db, before(wallNow, RETENTION_DAYS.inbox)),
    idempotencyKeys: Number(await pruneIdempotencyKeys(db, before(wallNow, RETENTION_DAYS.idempotencyKeys))),
  };
}

/** Runs {@link housekeep} every `intervalMs` (the first run after one interval). */
export function startHousekeeping(db: Kysely<ExpiryDb>, clock: () => Date, intervalMs: number, logger?: Logger): { stop(): Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    running = housekeep(db, clock())
      .then((pruned) => logger?.info({ pruned }, 'housekeeping done'))
      .catch((err) => logger?.warn({ err }, 'housekeeping failed'));
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
