import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, ensureSchema, migrateToLatest, pgErrorCode, SqlState, type Database } from '../src/index.js';
import { sandbox, type Sandbox } from './helpers.js';

describe('ensureSchema and createDb', () => {
  let box: Sandbox;
  const open: Database<any>[] = [];
  const connect = (url: string, schema: string) => {
    const handle = createDb<any>({ url, schema, poolMax: 2 });
    open.push(handle);
    return handle.db;
  };

  beforeAll(async () => {
    box = await sandbox('db_schema');
  });
  afterAll(async () => {
    for (const handle of open) await handle.close();
    await box.drop();
  });

  it('seals a service role inside its own schema', async () => {
    const ledgerRole = box.roleName('ledger');
    const catalogueRole = box.roleName('catalogue');
    await ensureSchema(box.database.url, 'ledger', { name: ledgerRole, password: 'ledger-secret' });
    await ensureSchema(box.database.url, 'catalogue', { name: catalogueRole });

    const catalogue = connect(box.urlAs(catalogueRole), 'catalogue');
    await migrateToLatest(catalogue, 'catalogue', {
      '0001_packages': { up: (db) => db.schema.createTable('packages').addColumn('id', 'text', (c) => c.primaryKey()).execute() },
    });
    await catalogue.insertInto('packages').values({ id: 'pkg-1' }).execute();

    const ledger = connect(box.urlAs(ledgerRole), 'ledger');
    await migrateToLatest(ledger, 'ledger', {
      '0001_entries': { up: (db) => db.schema.createTable('entries').addColumn('id', 'text', (c) => c.primaryKey()).execute() },
    });
    await ledger.insertInto('entries').values({ id: 'e-1' }).execute();
    expect(await ledger.selectFrom('entries').selectAll().execute()).toEqual([{ id: 'e-1' }]);

    const denied = async (query: Promise<unknown>) => pgErrorCode(await query.then(() => undefined, (e: unknown) => e));
    expect(await denied(sql`select * from catalogue.packages`.execute(ledger))).toBe(SqlState.insufficientPrivilege);
    expect(await denied(sql`create table catalogue.sneaky (id int)`.execute(ledger))).toBe(SqlState.insufficientPrivilege);
    expect(await denied(sql`create table public.sneaky (id int)`.execute(ledger))).toBe(SqlState.insufficientPrivilege);
    expect(await denied(sql`create schema elsewhere`.execute(ledger))).toBe(SqlState.insufficientPrivilege);
  });

  it('lets the role use tables the admin creates in its schema', async () => {
    const role = box.roleName('revenue');
    await ensureSchema(box.database.url, 'revenue', { name: role });
    const admin = connect(box.database.url, 'revenue');
    await sql`create table journal (id int primary key)`.execute(admin);
    const asRole = connect(box.urlAs(role), 'revenue');
    await asRole.insertInto('journal').values({ id: 1 }).execute();
    expect(await asRole.selectFrom('journal').select('id').execute()).toEqual([{ id: 1 }]);
  });

  it('is idempotent and safe to run concurrently', async () => {
    const role = box.roleName('expiry');
    await Promise.all(Array.from({ length: 4 }, () => ensureSchema(box.database.url, 'expiry', { name: role })));
    await ensureSchema(box.database.url, 'expiry', { name: role, password: 'rotated' });
    await ensureSchema(box.database.url, 'expiry');
    const admin = connect(box.database.url, 'expiry');
    const { rows } = await sql<{ n: bigint }>`select count(*) as n from pg_namespace where nspname = 'expiry'`.execute(admin);
    expect(rows).toEqual([{ n: 1n }]);
  });

  it('refuses schema and role names that would need quoting', async () => {
    await expect(ensureSchema(box.database.url, 'Bad-Name')).rejects.toThrow(/^schema must match/);
    await expect(ensureSchema(box.database.url, 'ok', { name: 'x; drop' })).rejects.toThrow(/^role name must match/);
    expect(() => createDb({ url: box.database.url, schema: 'a b' })).toThrow(/^schema must match/);
  });

  it('sets search_path to the schema and parses int8, numeric and date without loss', async () => {
    await ensureSchema(box.database.url, 'billing');
    const db = connect(box.database.url, 'billing');
    await sql`create table amounts (minor int8, rate numeric, day date, many int8[])`.execute(db);
    await sql`insert into amounts values (9007199254740993, 0.1000000000000000000001, '2024-02-29', '{1,2}')`.execute(db);
    const { rows } = await sql`select current_setting('search_path') as path, a.* from amounts a`.execute(db);
    expect(rows).toEqual([
      { path: 'billing', minor: 9007199254740993n, rate: '0.1000000000000000000001', day: '2024-02-29', many: [1n, 2n] },
    ]);
    // bigint parameters go in exactly too.
    const back = await db.selectFrom('amounts').select('minor').where('minor', '=', 9007199254740993n).execute();
    expect(back).toEqual([{ minor: 9007199254740993n }]);
  });
});
