import type { ConsumeOutcome } from '@punchcard/bus';
import { RevenueService } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { connectStores, defineService, migrateDatabase, pruneSpentRows, storeReadiness, type ServiceDefinition, type Stores } from '@punchcard/platform';
import { revenueServiceImpl } from './api/connect.js';
import { revenueHandlers } from './api/handlers.js';
import { startRevenueEvents, type RevenueEvents } from './events/wiring.js';
import { migrations } from './store/migrations.js';
import type { RevenueDb } from './store/schema.js';

export interface RevenueState extends Stores<RevenueDb> {
  /** Set once the start hook ran: the relay (tests flush it) and the consumers. */
  events?: RevenueEvents;
}

export interface RevenueServiceOptions {
  /** The service's clock (posting times); tests inject one. Default: the system clock. */
  clock?: () => Date;
  /** Wait before retrying an event that arrived ahead of what it depends on; default 1000 ms. */
  retryDelayMs?: number;
  /** Redelivery delay after a handler error; default the bus's backoff (1 s doubling to 60 s). */
  errorRetryDelayMs?: (deliveryCount: number) => number;
  /** Deliveries of a failing event before it is dead-lettered; default the bus's (5). */
  maxDeliver?: number;
  /** Outbox relay poll fallback (NOTIFY wakes it sooner). */
  relayPollMs?: number;
  /** Called after each consumed event settles (metrics, tests waiting for an effect). */
  onOutcome?: (outcome: ConsumeOutcome) => void;
}

/**
 * The revenue-recognition service: RevenueService reports, the outbox relay publishing revenue.*, and
 * the ledger, catalogue and visits consumers that keep the journal.
 */
export function revenueService(options: RevenueServiceOptions = {}): ServiceDefinition<RevenueState> {
  const clock = options.clock ?? (() => new Date());
  return defineService<RevenueState>({
    name: 'revenue-recognition',
    defaultPorts: { api: 7104, ops: 7204 },
    requires: ['database', 'nats'],

    setup: (ctx) => connectStores<RevenueDb>(ctx),

    register(router, ctx) {
      router.service(RevenueService, revenueServiceImpl(revenueHandlers({ db: ctx.state.database.db })));
    },

    readiness: (ctx) => storeReadiness(ctx.state),

    async start(ctx) {
      const events = await startRevenueEvents({
        db: ctx.state.database.db,
        pool: ctx.state.database.pool,
        js: ctx.state.bus.js,
        nc: ctx.state.bus.nc,
        namespace: ctx.config.busNamespace,
        now: clock,
        retryDelayMs: options.retryDelayMs ?? 1000,
        logger: ctx.logger.child({ component: 'events' }),
        ...(options.errorRetryDelayMs ? { errorRetryDelayMs: options.errorRetryDelayMs } : {}),
        ...(options.maxDeliver ? { maxDeliver: options.maxDeliver } : {}),
        ...(options.relayPollMs ? { relayPollMs: options.relayPollMs } : {}),
        ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
      });
      ctx.state.events = events;
      return () => events.stop();
    },

    housekeep: (ctx) => pruneSpentRows(ctx.state.database.db, ['inbox']),

    migrate: (ctx) => migrateDatabase(ctx, migrations),
  });
}
