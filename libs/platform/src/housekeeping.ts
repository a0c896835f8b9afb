import { pruneInbox } from '@punchcard/bus';
import { pruneIdempotencyKeys, type Database } from '@punchcard/db';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';

const DAY_MS = 86_400_000;

type Db = Database<any>['db'];

/** How long rows that have served their purpose are kept, in days. */
export const RETENTION_DAYS = {
  /**
   * Applied event ids: far longer than a redelivery can arrive (ack wait × bounded redeliveries). A
   * replay from the start of a stream relies on each consumer's own duplicate check past this.
   */
  inbox: 30,
  /** Idempotency keys and their stored answers only need to outlive client retries. */
  idempotencyKeys: 7,
} as const;

/** The bus's and the idempotent RPCs' tables a service may have. */
export type SpentRows = keyof typeof RETENTION_DAYS;

/** Rows deleted by one round of housekeeping, by what they were. */
export type Pruned = Record<string, number>;

const pruners: Record<SpentRows, (db: Db, before: Date) => Promise<number>> = {
  inbox: pruneInbox,
  idempotencyKeys: pruneIdempotencyKeys,
};

/** Deletes the rows of the named tables that are older than their retention; returns how many of each. */
export async function pruneSpentRows(db: Db, tables: readonly SpentRows[], now = new Date()): Promise<Pruned> {
  const pruned: Pruned = {};
  for (const table of tables) pruned[table] = await pruners[table](db, new Date(now.getTime() - RETENTION_DAYS[table] * DAY_MS));
  return pruned;
}

export interface Housekeeping {
  /** Stops the rounds, waiting for one in progress. */
  stop(): Promise<void>;
}

/** When the first round runs after the start, at most: pods that live less than an interval prune too. */
const FIRST_ROUND_AFTER_MS = 60_000;

/**
 * Runs `round` every `intervalMs` (the first a minute after the start, or one interval if that is
 * shorter), logs what it deleted and counts it in `punchcard_housekeeping_deleted_rows_total`; a
 * failed round is logged and the next one tries again. Rounds never overlap: one still running when
 * the next is due skips it.
 */
export function startHousekeeping(round: () => Promise<Pruned>, intervalMs: number, deps: { logger: Logger; registry: Registry }): Housekeeping {
  const deleted = new Counter({
    name: 'punchcard_housekeeping_deleted_rows_total',
    help: 'Rows deleted by housekeeping because they served their purpose, by what they were.',
    labelNames: ['rows'],
    registers: [deps.registry],
  });
  let running: Promise<void> | undefined;
  const runRound = () => {
    running ??= round()
      .then((pruned) => {
        for (const [rows, n] of Object.entries(pruned)) deleted.inc({ rows }, n);
        deps.logger.info({ pruned }, 'housekeeping done');
      })
      .catch((err) => deps.logger.warn({ err }, 'housekeeping failed; the next round tries again'))
      .finally(() => (running = undefined));
  };
  let interval: NodeJS.Timeout | undefined;
  const first = setTimeout(() => {
    runRound();
    interval = setInterval(runRound, intervalMs);
    interval.unref();
  }, Math.min(intervalMs, FIRST_ROUND_AFTER_MS));
  first.unref();
  return {
    async stop() {
      clearTimeout(first);
      clearInterval(interval);
      await running;
    },
  };
}
