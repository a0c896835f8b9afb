import { connectBus, declareStreams, type Bus, type ConsumeOutcome } from '@punchcard/bus';
import { LedgerService } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { createDb, migrateSchema, type Database } from '@punchcard/db';
import { callerOf, defineService, type ServiceDefinition } from '@punchcard/platform';
import { ledgerHandlers } from './api/handlers.js';
import { startLedgerEvents, type LedgerEvents } from './events/wiring.js';
import { migrations, type LedgerDb } from './store/index.js';

export interface LedgerState {
  database: Database<LedgerDb>;
  bus: Bus;
  clock: () => Date;
  /** Set once the start hook ran: the relay (tests flush it) and the consumers. */
  events?: LedgerEvents;
}

export interface LedgerServiceOptions {
  /** The service's clock; tests inject one. Default: the system clock. */
  clock?: () => Date;
  /** Outbox relay poll fallback (NOTIFY wakes it sooner). */
  relayPollMs?: number;
  /** Called after each consumed event settles (metrics, tests waiting for an effect). */
  onOutcome?: (outcome: ConsumeOutcome) => void;
}

function required(value: string | undefined, variable: string): string {
  if (!value) throw new Error(`${variable} is required`);
  return value;
}

/** The entitlement-ledger service: LedgerService API, outbox relay, catalogue and visits consumers. */
export function ledgerService(options: LedgerServiceOptions = {}): ServiceDefinition<LedgerState> {
  const clock = options.clock ?? (() => new Date());
  return defineService<LedgerState>({
    name: 'entitlement-ledger',
    defaultPorts: { api: 7102, ops: 7202 },
    requires: ['database', 'nats'],

    async setup(ctx) {
      const database = createDb<LedgerDb>({
        url: required(ctx.config.databaseUrl, 'DATABASE_URL'),
        schema: ctx.config.databaseSchema,
        applicationName: ctx.config.serviceName,
        onError: (err) => ctx.logger.warn({ err }, 'postgres pool error'),
      });
      ctx.onClose(() => database.close());
      const bus = await connectBus({ url: required(ctx.config.natsUrl, 'NATS_URL'), name: ctx.config.serviceName });
      ctx.onClose(() => bus.close());
      await declareStreams(bus.jsm, { namespace: ctx.config.busNamespace });
      return { database, bus, clock };
    },

    register(router, ctx) {
      router.service(LedgerService, ledgerHandlers({ db: ctx.state.database.db, clock: ctx.state.clock, callerOf }));
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
      const events = await startLedgerEvents({
        db: ctx.state.database.db,
        pool: ctx.state.database.pool,
        js: ctx.state.bus.js,
        namespace: ctx.config.busNamespace,
        clock: ctx.state.clock,
        logger: ctx.logger.child({ component: 'events' }),
        ...(options.relayPollMs ? { relayPollMs: options.relayPollMs } : {}),
        ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
      });
      ctx.state.events = events;
      return () => events.stop();
    },

    async migrate(ctx) {
      const applied = await migrateSchema(required(ctx.config.databaseUrl, 'DATABASE_URL'), ctx.config.databaseSchema, migrations, {
        applicationName: 'entitlement-ledger-migrate',
      });
      ctx.logger.info({ applied, schema: ctx.config.databaseSchema }, 'migrations applied');
    },
  });
}
