import { connectBus, declareStreams, type Bus } from '@punchcard/bus';
import { createDb, migrateSchema, type Database, type Migrations } from '@punchcard/db';
import type { ReadinessCheck } from './readiness.js';
import type { MigrateContext, ServiceContext } from './service.js';

/** The Postgres pool and NATS connection of a service; its state type extends this. */
export interface Stores<DB> {
  database: Database<DB>;
  bus: Bus;
}

export interface ConnectStoresOptions {
  /** Pool size; default createDb's. */
  poolMax?: number;
}

/**
 * For `setup`: the pool in the service's schema (named after the service in pg_stat_activity) and
 * the NATS connection with every stream declared; both are closed with the service.
 */
export async function connectStores<DB>(ctx: ServiceContext<unknown>, options: ConnectStoresOptions = {}): Promise<Stores<DB>> {
  const { config, logger } = ctx;
  const database = createDb<DB>({
    url: required(config.databaseUrl, 'DATABASE_URL'),
    schema: config.databaseSchema,
    applicationName: config.serviceName,
    poolMax: options.poolMax,
    preparedStatements: config.databasePreparedStatements,
    onError: (err) => logger.warn({ err }, 'postgres pool error'),
  });
  ctx.onClose(() => database.close());
  const bus = await connectBus({ url: required(config.natsUrl, 'NATS_URL'), name: config.serviceName });
  ctx.onClose(() => bus.close());
  await declareStreams(bus.jsm, { namespace: config.busNamespace });
  return { database, bus };
}

/** For `readiness`: Postgres answers a query, and the NATS connection is open and answers a flush. */
export function storeReadiness(state: { database: Pick<Database<unknown>, 'pool'>; bus: Bus }): Record<string, ReadinessCheck> {
  return {
    postgres: () => state.database.pool.query('select 1'),
    nats: async () => {
      if (state.bus.nc.isClosed()) throw new Error('NATS connection closed');
      await state.bus.nc.flush();
    },
  };
}

/** For `migrate`: creates the service's schema when missing, applies `migrations` and logs what ran. */
export async function migrateDatabase(ctx: MigrateContext<unknown>, migrations: Migrations): Promise<void> {
  const { databaseUrl, databaseSchema: schema, serviceName } = ctx.config;
  const applied = await migrateSchema(required(databaseUrl, 'DATABASE_URL'), schema, migrations, {
    applicationName: `${serviceName}-migrate`,
    onAutovacuumOff: () =>
      ctx.logger.warn(
        { schema },
        'Postgres runs with autovacuum off: tables get no statistics, and statements slow down as they grow (turn it on; see deploy/README)',
      ),
  });
  ctx.logger.info({ applied, schema }, 'migrations applied');
}

function required(value: string | undefined, variable: string): string {
  if (!value) throw new Error(`${variable} is required`);
  return value;
}
