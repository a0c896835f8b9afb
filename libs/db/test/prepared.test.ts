import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@punchcard/testing';
import { createDb, inTransaction, MAX_PREPARED_TEXT_LENGTH, statementName } from '../src/index.js';

interface Db {
  visit: { id: number; note: string | null };
}

describe('prepared statements', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('prepared');
  });
  afterAll(() => database.drop());

  async function preparedOn(db: Kysely<Db>): Promise<string[]> {
    const { rows } = await sql<{ name: string }>`select name from pg_prepared_statements order by name`.execute(db);
    return rows.map((r) => r.name);
  }

  it('names a statement by its text, the same everywhere; leaves out texts too long to keep', () => {
    const text = 'select * from "visit" where "id" = $1';
    expect(statementName(text)).toBe(statementName(`${text}`));
    expect(statementName(text)).not.toBe(statementName(`${text} and "note" = $2`));
    expect(statementName(`select ${'1, '.repeat(MAX_PREPARED_TEXT_LENGTH)}$1`)).toBeUndefined();
  });

  it('prepares statements with parameters once per connection, and only when asked to', async () => {
    const on = createDb<Db>({ url: database.url, schema: 'public', poolMax: 1 });
    const off = createDb<Db>({ url: database.url, schema: 'public', poolMax: 1, preparedStatements: false });
    try {
      await sql`create table visit (id int primary key, note text)`.execute(on.db);
      await on.db.insertInto('visit').values({ id: 1, note: 'first' }).execute();
      const lookup = (db: Kysely<Db>, id: number) => db.selectFrom('visit').select('note').where('id', '=', id).executeTakeFirst();
      expect(await lookup(on.db, 1)).toEqual({ note: 'first' });
      expect(await lookup(on.db, 2)).toBeUndefined();
      const text = on.db.selectFrom('visit').select('note').where('id', '=', 0).compile().sql;
      expect(await preparedOn(on.db)).toContain(statementName(text));
      expect(await preparedOn(on.db)).toHaveLength(2);

      expect(await lookup(off.db, 1)).toEqual({ note: 'first' });
      expect(await preparedOn(off.db)).toEqual([]);
    } finally {
      await sql`drop table if exists visit`.execute(on.db);
      await Promise.all([on.close(), off.close()]);
    }
  });

  it('prepares a statement again when a migration changed the table behind it, in and out of transactions', async () => {
    const { db, close } = createDb<Db>({ url: database.url, schema: 'public', poolMax: 1 });
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      await admin.query('create table visit (id int primary key)');
      await admin.query('insert into visit values (1)');
      const all = (on: Kysely<Db>) => on.selectFrom('visit').selectAll().where('id', '=', 1).execute();
      expect(await all(db)).toEqual([{ id: 1 }]);

      await admin.query('alter table visit add column note text');
      expect(await all(db)).toEqual([{ id: 1, note: null }]);

      await admin.query("alter table visit add column branch text default 'north'");
      const retries: unknown[] = [];
      const rows = await inTransaction(db, (tx) => all(tx), { onRetry: (err) => retries.push(err) });
      expect(rows).toEqual([{ id: 1, note: null, branch: 'north' }]);
      expect(retries).toHaveLength(1);
      expect(String(retries[0])).toMatch(/cached plan must not change result type/);
    } finally {
      await admin.query('drop table if exists visit');
      await admin.end();
      await close();
    }
  });
});
