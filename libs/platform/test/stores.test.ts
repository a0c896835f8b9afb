import { streamName } from '@punchcard/bus';
import { createDb, type Migrations } from '@punchcard/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectStores,
  createLogger,
  defineService,
  loadConfig,
  migrateDatabase,
  startService,
  storeReadiness,
  type ServiceConfig,
  type Stores,
} from '../src/index.js';
import { captureLogs, storesSandbox, type StoresSandbox } from './helpers.js';

interface Tables {
  visit: { id: number };
}

/** A service's own state next to its stores, as the real services keep it. */
interface SampleState extends Stores<Tables> {
  label: string;
}

const migrations: Migrations = {
  '0001_visit': { up: (db) => db.schema.createTable('visit').addColumn('id', 'int4', (c) => c.primaryKey()).execute() },
};

const definition = defineService<SampleState>({
  name: 'stores-sample',
  defaultPorts: { api: 7198, ops: 7298 },
  requires: ['database', 'nats'],
  async setup(ctx) {
    return { ...(await connectStores<Tables>(ctx, { poolMax: 3 })), label: 'sample' };
  },
  register() {},
  readiness: (ctx) => storeReadiness(ctx.state),
  migrate: (ctx) => migrateDatabase(ctx, migrations),
});

describe('stores of a service: Postgres and NATS', () => {
  let sandbox: StoresSandbox;
  let config: ServiceConfig;

  beforeAll(async () => {
    sandbox = await storesSandbox('stores');
    config = loadConfig(definition, sandbox.env());
  });
  afterAll(async () => {
    await sandbox?.drop();
  });

  it('migrate creates the schema, applies the migrations once and logs what it applied', async () => {
    const logs = captureLogs();
    const logger = createLogger({ serviceName: config.serviceName, level: 'info', destination: logs.destination });
    await definition.migrate!({ config, logger });
    await definition.migrate!({ config, logger });
    expect(logs.lines.filter((l) => l.msg === 'migrations applied').map((l) => [l.applied, l.schema])).toEqual([
      [['0001_visit'], 'stores_sample'],
      [[], 'stores_sample'],
    ]);
  });

  it('migrate warns when the server runs with autovacuum off, and only then', async () => {
    const logs = captureLogs();
    const logger = createLogger({ serviceName: config.serviceName, level: 'info', destination: logs.destination });
    await definition.migrate!({ config, logger });
    const server = createDb({ url: sandbox.database.url, schema: 'public', poolMax: 1 });
    const autovacuum = (await server.pool.query<{ setting: string }>("select current_setting('autovacuum') as setting")).rows[0]!.setting;
    await server.close();
    expect(['on', 'off']).toContain(autovacuum);
    const warnings = logs.lines.filter((l) => l.level === 'warn' && String(l.msg).includes('autovacuum off'));
    expect(warnings.map((w) => w.schema)).toEqual(autovacuum === 'off' ? ['stores_sample'] : []);
  });

  it('setup connects both, the service is ready while they answer, and stop closes them', async () => {
    const logs = captureLogs();
    const service = await startService(definition, config, { logDestination: logs.destination });
    const { database: db, bus, label } = service.state;
    expect(label).toBe('sample');

    // Tables unqualified (search_path is the service schema), the connection named after the service.
    await db.db.insertInto('visit').values({ id: 1 }).execute();
    const { rows } = await db.pool.query<{ name: string }>('select current_setting($1) as name', ['application_name']);
    expect(rows).toEqual([{ name: 'stores-sample' }]);
    expect(db.pool.options.max).toBe(3);
    await expect(bus.jsm.streams.info(streamName(sandbox.namespace, 'LEDGER'))).resolves.toBeDefined();

    const readyz = async () => {
      const res = await fetch(`${service.opsUrl}/readyz`);
      return { status: res.status, body: (await res.json()) as unknown };
    };
    expect(await readyz()).toEqual({ status: 200, body: { status: 'ready', checks: { postgres: 'ok', nats: 'ok' } } });
    await bus.close();
    expect(await readyz()).toEqual({ status: 503, body: { status: 'not ready', checks: { postgres: 'ok', nats: 'NATS connection closed' } } });

    await service.stop();
    expect(db.pool.ended).toBe(true);
    expect(bus.nc.isClosed()).toBe(true);
  });

  it('names the missing URL', async () => {
    const logger = createLogger({ serviceName: config.serviceName, level: 'silent' });
    await expect(startService(definition, { ...config, databaseUrl: undefined }, { logDestination: captureLogs().destination })).rejects.toThrow(
      'DATABASE_URL is required',
    );
    await expect(startService(definition, { ...config, natsUrl: undefined }, { logDestination: captureLogs().destination })).rejects.toThrow(
      'NATS_URL is required',
    );
    await expect(definition.migrate!({ config: { ...config, databaseUrl: undefined }, logger })).rejects.toThrow('DATABASE_URL is required');
  });
});
