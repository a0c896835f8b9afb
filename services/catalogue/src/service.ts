import { connectBus, declareStreams, startOutboxRelay, type Bus, type OutboxRelay } from '@punchcard/bus';
import { CatalogueService } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { createDb, migrateSchema, type Database } from '@punchcard/db';
import { defineService, type ServiceDefinition } from '@punchcard/platform';
import { catalogueServiceImpl } from './api/service-impl.js';
import { migrations } from './store/migrations.js';
import type { CatalogueTables } from './store/schema.js';

export interface CatalogueState {
  database: Database<CatalogueTables>;
  bus: Bus;
  clock: () => Date;
  /** Set once the start hook ran; tests flush it to see published events. */
  relay?: OutboxRelay;
}

export interface CatalogueServiceOptions {
  /** The service clock; tests inject one. Default: the system clock. */
  clock?: () => Date;
  /** Outbox relay poll fallback (NOTIFY wakes it sooner); default the relay's. */
  relayPollMs?: number;
}

function required(value: string | undefined, variable: string): string {
  if (!value) throw new Error(`${variable} is required`);
  return value;
}

/** The catalogue service: CatalogueService API and the relay of its outbox to the CATALOGUE stream. */
export function catalogueService(options: CatalogueServiceOptions = {}): ServiceDefinition<CatalogueState> {
  const clock = options.clock ?? (() => new Date());
  return defineService<CatalogueState>({
    name: 'catalogue',
    defaultPorts: { api: 7101, ops: 7201 },
    requires: ['database', 'nats'],

    async setup(ctx) {
      const database = createDb<CatalogueTables>({
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
      router.service(CatalogueService, catalogueServiceImpl({ db: ctx.state.database.db, now: ctx.state.clock }));
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

    start(ctx) {
      const relay = startOutboxRelay({
        pool: ctx.state.database.pool,
        js: ctx.state.bus.js,
        namespace: ctx.config.busNamespace,
        source: '/punchcard/catalogue',
        logger: ctx.logger.child({ component: 'outbox-relay' }),
        ...(options.relayPollMs ? { pollIntervalMs: options.relayPollMs } : {}),
      });
      ctx.state.relay = relay;
      return () => relay.stop();
    },

    async migrate(ctx) {
      const applied = await migrateSchema(required(ctx.config.databaseUrl, 'DATABASE_URL'), ctx.config.databaseSchema, migrations, {
        applicationName: 'catalogue-migrate',
      });
      ctx.logger.info({ applied, schema: ctx.config.databaseSchema }, 'migrations applied');
    },
  });
}
