import { connectBus, declareStreams, type Bus, type ConsumeOutcome } from '@punchcard/bus';
import { RevenueService } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { createDb, migrateSchema, type Database } from '@punchcard/db';
import { defineService, type ServiceDefinition } from '@punchcard/platform';
import { revenueServiceImpl } from './api/connect.js';
import { revenueHandlers } from './api/handlers.js';
import { startRevenueEvents, type RevenueEvents } from './events/wiring.js';
import { migrations } from './store/migrations.js';
import type { RevenueDb } from './store/schema.js';

export interface RevenueState {
  database: Database<RevenueDb>;
  bus: Bus;
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

function required(value: string | undefined, variable: string): string {
  if (!value) throw new Error(`${variable} is required`);
  return value;
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

    async setup(ctx) {
      const database = createDb<RevenueDb>({
        url: required(ctx.config.databaseUrl, 'DATABASE_URL'),
        schema: ctx.config.databaseSchema,
        applicationName: ctx.config.serviceName,
        onError: (err) => ctx.logger.warn({ err }, 'postgres pool error'),
      });
      ctx.onClose(() => database.close());
      const bus = await connectBus({ url: required(ctx.config.natsUrl, 'NATS_URL'), name: ctx.config.serviceName });
      ctx.onClose(() => bus.close());
      await declareStreams(bus.jsm, { namespace: ctx.config.busNamespace });
      return { database, bus };
    },

    register(router, ctx) {
      router.service(RevenueService, revenueServiceImpl(revenueHandlers({ db: ctx.state.database.db })));
    },

    readiness(ctx) {
      return {
        postgres: () => ctx.state.database.pool.query('select 1'),
        nats: async () => {
          if (ctx.state.bus.nc.isClosed()) throw new Error('NATS connection closed');
          await ctx.state.bus.nc.flush();
        },
      };
    },

    async start(ctx) {
      const events = await startRevenueEvents({
        db: ctx.state.database.db,
        pool: ctx.state.database.pool,
        js: ctx.state.bus.js,
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

    async migrate(ctx) {
      const applied = await migrateSchema(required(ctx.config.databaseUrl, 'DATABASE_URL'), ctx.config.databaseSchema, migrations, {
        applicationName: 'revenue-recognition-migrate',
      });
      ctx.logger.info({ applied, schema: ctx.config.databaseSchema }, 'migrations applied');
    },
  });
}
