import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, ensureSchema, MigrationFailed, migrateSchema, migrateToLatest, type Database, type Migrations } from '../src/index.js';
import { sandbox, type Sandbox } from './helpers.js';

const table = (name: string) => ({
  up: (db: Kysely<any>) => db.schema.createTable(name).addColumn('id', 'int4', (c) => c.primaryKey()).execute(),
});

describe('migrateToLatest', () => {
  let box: Sandbox;
  let handle: Database<any>;
  const schema = 'svc';

  beforeAll(async () => {
    box = await sandbox('db_migrate');
    const role = box.roleName('svc');
    await ensureSchema(box.database.url, schema, { name: role });
    handle = createDb({ url: box.urlAs(role), schema, poolMax: 2 });
  });
  afterAll(async () => {
    await handle.close();
    await box.drop();
  });

  const tablesIn = async (s: string) => {
    const { rows } = await sql<{ table_name: string }>`
      select table_name from information_schema.tables where table_schema = ${s} order by table_name`.execute(handle.db);
    return rows.map((r) => r.table_name);
  };

  it('applies each migration once, in name order, with its bookkeeping inside the schema', async () => {
    const first: Migrations = { '0002_b': table('b'), '0001_a': table('a') };
    expect(await migrateToLatest(handle.db, schema, first)).toEqual(['0001_a', '0002_b']);
    expect(await migrateToLatest(handle.db, schema, first)).toEqual([]);
    expect(await migrateToLatest(handle.db, schema, { ...first, '0003_c': table('c') })).toEqual(['0003_c']);
    expect(await tablesIn(schema)).toEqual(['a', 'b', 'c', 'kysely_migration', 'kysely_migration_lock']);
    expect(await tablesIn('public')).toEqual([]);
  });

  it('names the failed migration and applies nothing of that run', async () => {
    const applied: Migrations = { '0001_a': table('a'), '0002_b': table('b'), '0003_c': table('c') };
    const run = migrateToLatest(handle.db, schema, {
      ...applied,
      '0004_d': table('d'),
      '0005_broken': { up: async (db) => void (await sql`select * from no_such_table`.execute(db)) },
    });
    await expect(run).rejects.toThrow(MigrationFailed);
    await expect(run).rejects.toThrow(/^migration 0005_broken failed in schema svc: relation "no_such_table" does not exist/);
    expect(await tablesIn(schema)).not.toContain('d');
  });

  it('is forward-only: refuses a migration that sorts before the last applied, or a missing one', async () => {
    const applied: Migrations = { '0001_a': table('a'), '0002_b': table('b'), '0003_c': table('c') };
    await expect(migrateToLatest(handle.db, schema, { ...applied, '0000_late': table('late') })).rejects.toThrow(
      /must always have a name that comes alphabetically after/,
    );
    const { '0002_b': _dropped, ...missing } = applied;
    await expect(migrateToLatest(handle.db, schema, missing)).rejects.toThrow(/0002_b.*missing|missing.*0002_b/);
    expect(await migrateToLatest(handle.db, schema, applied)).toEqual([]);
  });

  it('lets concurrent runners apply each migration once', async () => {
    const more: Migrations = {
      '0001_a': table('a'),
      '0002_b': table('b'),
      '0003_c': table('c'),
      '0004_e': table('e'),
      '0005_f': table('f'),
    };
    const runs = await Promise.all([migrateToLatest(handle.db, schema, more), migrateToLatest(handle.db, schema, more)]);
    expect(runs.flat().sort()).toEqual(['0004_e', '0005_f']);
  });
});

describe('migrateSchema', () => {
  let box: Sandbox;

  beforeAll(async () => {
    box = await sandbox('db_migrate_schema');
  });
  afterAll(() => box.drop());

  const schemaExists = async (schema: string) => {
    const client = new pg.Client({ connectionString: box.database.url });
    await client.connect();
    try {
      const { rowCount } = await client.query('select 1 from pg_namespace where nspname = $1', [schema]);
      return rowCount === 1;
    } finally {
      await client.end();
    }
  };

  it('creates a missing schema, migrates it under the given application name, and applies nothing twice', async () => {
    const seen: string[] = [];
    const migrations: Migrations = {
      '0001_a': {
        async up(db) {
          const { rows } = await sql<{ name: string }>`select current_setting('application_name') as name`.execute(db);
          seen.push(rows[0]?.name ?? '');
          await table('a').up(db);
        },
      },
    };
    expect(await schemaExists('fresh')).toBe(false);
    expect(await migrateSchema(box.database.url, 'fresh', migrations, { applicationName: 'fresh-migrate' })).toEqual(['0001_a']);
    expect(seen).toEqual(['fresh-migrate']);
    expect(await schemaExists('fresh')).toBe(true);
    expect(await migrateSchema(box.database.url, 'fresh', { ...migrations, '0002_b': table('b') })).toEqual(['0002_b']);
    expect(await migrateSchema(box.database.url, 'fresh', { ...migrations, '0002_b': table('b') })).toEqual([]);
  });

  it('migrates an existing schema as a service role that may not create schemas', async () => {
    const role = box.roleName('svc');
    await ensureSchema(box.database.url, 'owned', { name: role });
    // Even for a schema that exists: CREATE SCHEMA IF NOT EXISTS checks the database privilege first.
    await expect(ensureSchema(box.urlAs(role), 'owned')).rejects.toThrow(/permission denied/);
    expect(await migrateSchema(box.urlAs(role), 'owned', { '0001_a': table('a') })).toEqual(['0001_a']);
  });
});
