import { startOutboxRelay, type Bus, type ConsumeOutcome, type OutboxRelay, type RunningConsumer } from '@punchcard/bus';
import type { Database } from '@punchcard/db';
import { pino, type Logger } from 'pino';
import { expiryHandlers, type ExpiryHandlers } from './api/handlers.js';
import { startLedgerConsumer } from './events/ledger-consumer.js';
import type { LedgerPort } from './ledger/port.js';
import type { ExpiryDb } from './store/schema.js';
import { startSweeper, type SweepDeps, type Sweeper } from './sweep.js';

export const SOURCE = '/punchcard/expiry-scheduler';

export interface RuntimeOptions {
  db: Database<ExpiryDb>;
  bus: Bus;
  /** '' in production; a `testNamespace()` in tests. */
  namespace: string;
  ledger: LedgerPort;
  /** Business time: what is due is decided by this clock (tests inject theirs). */
  clock: () => Date;
  logger?: Logger;
  /** Real-time pause between background sweeps; 0 = no background sweep (RunDue only). Default 1000. */
  sweepIntervalMs?: number;
  batchSize?: number;
  concurrency?: number;
  progressIntervalMs?: number;
  /** Redelivery delay of a ledger event that arrived before its predecessor; default 1000. */
  gapRetryMs?: number;
  /** How long a ledger event handed to this process may go unacknowledged before redelivery; default the bus's. */
  consumerAckWaitMs?: number;
  /** Outbox relay poll fallback; default the relay's. */
  relayPollIntervalMs?: number;
  onConsumed?: (outcome: ConsumeOutcome) => void;
  /** Told what became of each fired timer (metrics). */
  observeTimer?: SweepDeps['observe'];
}

/** The scheduler's moving parts in one process: ledger consumer, outbox relay, sweeper, API handlers. */
export interface Runtime {
  handlers: ExpiryHandlers;
  sweeper: Sweeper;
  relay: OutboxRelay;
  consumer: RunningConsumer;
  /** Stops consuming, sweeping and relaying, waiting for work in hand; leaves db and bus open. */
  stop(): Promise<void>;
}

export async function startRuntime(o: RuntimeOptions): Promise<Runtime> {
  const logger = o.logger ?? pino({ level: 'silent' });
  const sweeper = startSweeper(
    {
      db: o.db.db,
      ledger: o.ledger,
      clock: o.clock,
      logger,
      ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
      ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
      ...(o.progressIntervalMs !== undefined ? { progressIntervalMs: o.progressIntervalMs } : {}),
      ...(o.observeTimer ? { observe: o.observeTimer } : {}),
    },
    o.sweepIntervalMs ?? 1_000,
  );
  const relay = startOutboxRelay({
    pool: o.db.pool,
    nc: o.bus.nc,
    namespace: o.namespace,
    source: SOURCE,
    logger,
    ...(o.relayPollIntervalMs !== undefined ? { pollIntervalMs: o.relayPollIntervalMs } : {}),
  });
  const consumer = await startLedgerConsumer({
    db: o.db.db,
    js: o.bus.js,
    namespace: o.namespace,
    clock: o.clock,
    logger,
    ...(o.gapRetryMs !== undefined ? { gapRetryMs: o.gapRetryMs } : {}),
    ...(o.consumerAckWaitMs !== undefined ? { ackWaitMs: o.consumerAckWaitMs } : {}),
    ...(o.onConsumed ? { onOutcome: o.onConsumed } : {}),
  });
  const handlers = expiryHandlers({ db: o.db.db, clock: o.clock, runDue: (options) => sweeper.runNow(options), logger });
  let stopping: Promise<void> | undefined;
  return {
    handlers,
    sweeper,
    relay,
    consumer,
    stop: () =>
      (stopping ??= (async () => {
        await consumer.stop();
        await sweeper.stop();
        await relay.stop();
      })()),
  };
}
