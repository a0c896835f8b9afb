import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testPostgres, type TestDatabase } from '@punchcard/testing';
import { createDb } from '../src/index.js';

describe('createDb', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('createdb');
  });
  afterAll(() => database.drop());

  it('survives a checked-out connection dying between queries: the error is reported, the pool recovers', async () => {
    const errors: Error[] = [];
    const { pool, close } = createDb({ url: database.url, schema: 'public', poolMax: 2, onError: (err) => errors.push(err) });
    try {
      const client = await pool.connect();
      const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
      const admin = new pg.Client({ connectionString: await testPostgres() });
      await admin.connect();
      await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
      await admin.end();
      await expect.poll(() => errors.length).toBeGreaterThan(0);
      await expect(client.query('select 1')).rejects.toThrow();
      client.release(true);
      const { rows: after } = await pool.query<{ one: number }>('select 1 as one');
      expect(after).toEqual([{ one: 1 }]);
    } finally {
      await close();
    }
  });

  it('closes a pool that only ever ran plain pg queries, leaving no connection behind', async () => {
    const { pool, close } = createDb({ url: database.url, schema: 'public', applicationName: 'createdb_close_check' });
    await pool.query('select 1');
    await close();
    expect(pool.ended).toBe(true);
    const admin = new pg.Client({ connectionString: await testPostgres() });
    await admin.connect();
    const { rows } = await admin.query("select count(*)::int as n from pg_stat_activity where application_name = 'createdb_close_check'");
    await admin.end();
    expect(rows[0]?.n).toBe(0);
  });
});
