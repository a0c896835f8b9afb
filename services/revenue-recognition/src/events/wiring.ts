import { startConsumer, startOutboxRelay, type Bus, type ConsumeOutcome, type OutboxRelay, type RunningConsumer } from '@punchcard/bus';
import { LedgerEntryRecordedSchema } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { VisitCancelledSchema, VisitCompletedSchema, type VisitCancelled, type VisitCompleted } from '@punchcard/contracts/punchcard/events/v1/visit_events_pb';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { RevenueDb } from '../store/schema.js';
import { CATALOGUE_DURABLE, CATALOGUE_SCHEMAS, CATALOGUE_SUBJECTS, onCatalogueEvent } from './catalogue.js';
import type { HandlerDeps } from './context.js';
import { LEDGER_DURABLE, onLedgerEvents } from './ledger.js';
import { onVisitCancelled, onVisitCompleted, VISITS_DURABLE, VISITS_SUBJECTS } from './visits.js';

export const SOURCE = '/punchcard/revenue-recognition';

export interface RevenueEventsOptions extends HandlerDeps {
  db: Kysely<RevenueDb>;
  pool: pg.Pool;
  js: Bus['js'];
  nc: Bus['nc'];
  namespace: string;
  logger?: Logger;
  /** Relay poll fallback; default the bus's. */
  relayPollMs?: number;
  /** Redelivery delay after a handler error; default the bus's backoff. */
  errorRetryDelayMs?: (deliveryCount: number) => number;
  maxDeliver?: number;
  onOutcome?: (outcome: ConsumeOutcome) => void;
}

export interface RevenueEvents {
  relay: OutboxRelay;
  consumers: RunningConsumer[];
  stop(): Promise<void>;
}

/**
 * Revenue's event plumbing: the outbox relay publishing revenue.* events, and three inbox consumers
 * (catalogue read model, ledger movements in per-entitlement order, one-off visits).
 */
export async function startRevenueEvents(o: RevenueEventsOptions): Promise<RevenueEvents> {
  const relay = startOutboxRelay({
    pool: o.pool,
    nc: o.nc,
    namespace: o.namespace,
    source: SOURCE,
    ...(o.logger ? { logger: o.logger } : {}),
    ...(o.relayPollMs ? { pollIntervalMs: o.relayPollMs } : {}),
  });
  const common = {
    db: o.db,
    js: o.js,
    namespace: o.namespace,
    ...(o.logger ? { logger: o.logger } : {}),
    ...(o.onOutcome ? { onOutcome: o.onOutcome } : {}),
    ...(o.errorRetryDelayMs ? { retryDelayMs: o.errorRetryDelayMs } : {}),
    ...(o.maxDeliver ? { maxDeliver: o.maxDeliver } : {}),
  };
  const deps: HandlerDeps = { now: o.now, retryDelayMs: o.retryDelayMs };
  const consumers: RunningConsumer[] = [];
  try {
    consumers.push(
      await startConsumer({
        ...common,
        stream: 'CATALOGUE',
        durable: CATALOGUE_DURABLE,
        filterSubjects: CATALOGUE_SUBJECTS,
        schema: CATALOGUE_SCHEMAS,
        handler: (tx, event) => onCatalogueEvent(tx, event),
      }),
    );
    consumers.push(
      await startConsumer({
        ...common,
        stream: 'LEDGER',
        durable: LEDGER_DURABLE,
        // Every entry event of the stream, whatever its kind (a missing version would hold the later ones
        // back); the refund, household and sharing events carry other payloads and move no money.
        schema: LedgerEntryRecordedSchema,
        otherPayloads: 'skip',
        batchHandler: (tx, events) => onLedgerEvents(tx, events, deps),
      }),
    );
    consumers.push(
      await startConsumer({
        ...common,
        stream: 'VISITS',
        durable: VISITS_DURABLE,
        filterSubjects: VISITS_SUBJECTS,
        schema: [VisitCompletedSchema, VisitCancelledSchema],
        handler: (tx, event) =>
          event.data.$typeName === 'punchcard.events.v1.VisitCompleted'
            ? onVisitCompleted(tx, { ...event, data: event.data as VisitCompleted }, deps)
            : onVisitCancelled(tx, { ...event, data: event.data as VisitCancelled }, deps),
      }),
    );
  } catch (err) {
    await Promise.allSettled([...consumers.map((c) => c.stop()), relay.stop()]);
    throw err;
  }
  return {
    relay,
    consumers,
    async stop() {
      await Promise.allSettled(consumers.map((c) => c.stop()));
      await relay.stop();
    },
  };
}
