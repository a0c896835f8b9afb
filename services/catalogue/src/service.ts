import { startOutboxRelay, type OutboxRelay } from '@punchcard/bus';
import { CatalogueService } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { connectStores, defineService, migrateDatabase, pruneSpentRows, storeReadiness, type ServiceDefinition, type Stores } from '@punchcard/platform';
import { catalogueServiceImpl } from './api/service-impl.js';
import { migrations } from './store/migrations.js';
import type { CatalogueTables } from './store/schema.js';

export interface CatalogueState extends Stores<CatalogueTables> {
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

/** The catalogue service: CatalogueService API and the relay of its outbox to the CATALOGUE stream. */
export function catalogueService(options: CatalogueServiceOptions = {}): ServiceDefinition<CatalogueState> {
  const clock = options.clock ?? (() => new Date());
  return defineService<CatalogueState>({
    name: 'catalogue',
    defaultPorts: { api: 7101, ops: 7201 },
    requires: ['database', 'nats'],

    async setup(ctx) {
      return { ...(await connectStores<CatalogueTables>(ctx)), clock };
    },

    register(router, ctx) {
      router.service(CatalogueService, catalogueServiceImpl({ db: ctx.state.database.db, now: ctx.state.clock }));
    },

    readiness: (ctx) => storeReadiness(ctx.state),

    start(ctx) {
      const relay = startOutboxRelay({
        pool: ctx.state.database.pool,
        nc: ctx.state.bus.nc,
        namespace: ctx.config.busNamespace,
        source: '/punchcard/catalogue',
        logger: ctx.logger.child({ component: 'outbox-relay' }),
        ...(options.relayPollMs ? { pollIntervalMs: options.relayPollMs } : {}),
      });
      ctx.state.relay = relay;
      return () => relay.stop();
    },

    housekeep: (ctx) => pruneSpentRows(ctx.state.database.db, ['idempotencyKeys']),

    migrate: (ctx) => migrateDatabase(ctx, migrations),
  });
}
