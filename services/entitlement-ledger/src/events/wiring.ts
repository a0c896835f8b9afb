import { startConsumer, startOutboxRelay, type Bus, type ConsumeOutcome, type OutboxRelay, type RunningConsumer } from '@punchcard/bus';
import { RefundPayoutSchema } from '@punchcard/contracts/punchcard/events/v1/billing_events_pb';
import { VisitCancelledSchema, VisitCompletedSchema, type VisitCancelled } from '@punchcard/contracts/punchcard/events/v1/visit_events_pb';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { OperationContext } from '../operations/ledger.js';
import type { LedgerDb } from '../store/schema.js';
import { CATALOGUE_SCHEMAS, CATALOGUE_SUBJECTS, onCatalogueEvent } from './catalogue.js';
import { onRefundPayout, PAYOUT_SUBJECTS } from './refunds.js';
import { onVisitCancelled, onVisitCompleted } from './visits.js';

export const SOURCE = '/punchcard/entitlement-ledger';
export const CATALOGUE_DURABLE = 'ledger_catalogue';
export const VISITS_DURABLE = 'ledger_visits';
export const PAYOUTS_DURABLE = 'ledger_refund_payouts';

export interface LedgerEventsOptions extends OperationContext {
  db: Kysely<LedgerDb>;
  pool: pg.Pool;
  js: Bus['js'];
  nc: Bus['nc'];
  namespace: string;
  logger?: Logger;
  /** Relay poll fallback; default the bus's. */
  relayPollMs?: number;
  onOutcome?: (outcome: ConsumeOutcome) => void;
}

export interface LedgerEvents {
  relay: OutboxRelay;
  stop(): Promise<void>;
}

/**
 * The ledger's event plumbing: the outbox relay publishing ledger.* events, the catalogue read-model
 * consumer, auto-deduction from the VISITS stream, and refund payouts from BILLING. Each consumer applies an event and records
 * its id in one transaction (inbox).
 */
export async function startLedgerEvents(o: LedgerEventsOptions): Promise<LedgerEvents> {
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
  };
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
        stream: 'VISITS',
        durable: VISITS_DURABLE,
        filterSubjects: ['punchcard.visits.visit_completed.*', 'punchcard.visits.visit_cancelled.*'],
        schema: [VisitCompletedSchema, VisitCancelledSchema],
        handler: (tx, event) =>
          event.data.$typeName === 'punchcard.events.v1.VisitCompleted'
            ? onVisitCompleted(tx, o, { ...event, data: event.data })
            : onVisitCancelled(tx, o, { ...event, data: event.data as VisitCancelled }),
      }),
    );
    consumers.push(
      await startConsumer({
        ...common,
        stream: 'BILLING',
        durable: PAYOUTS_DURABLE,
        filterSubjects: PAYOUT_SUBJECTS,
        schema: RefundPayoutSchema,
        handler: (tx, event) => onRefundPayout(tx, o, event),
      }),
    );
  } catch (err) {
    await Promise.allSettled([...consumers.map((c) => c.stop()), relay.stop()]);
    throw err;
  }
  return {
    relay,
    async stop() {
      await Promise.allSettled(consumers.map((c) => c.stop()));
      await relay.stop();
    },
  };
}
