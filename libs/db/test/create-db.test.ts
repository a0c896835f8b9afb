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

  it('reads timestamptz as the instant Postgres holds, in any session time zone, infinity and BC included', async () => {
    const { pool, close } = createDb({ url: database.url, schema: 'public', poolMax: 1 });
    const client = await pool.connect();
    try {
      const literals = [
        '2026-12-07 11:00:44.123456+00',
        '2026-12-07 11:00:44+00',
        '2026-06-30 23:59:59.999999+00',
        '1900-01-01 00:00:00+00',
        '1000-01-01 00:00:00.5+00',
        '9999-12-31 23:59:59.000001+00',
      ];
      // Offsets in hours, with minutes, negative, and with seconds (a local mean time before 1900).
      for (const zone of ['UTC', 'Asia/Kolkata', 'America/St_Johns', 'Pacific/Chatham', 'Europe/Amsterdam']) {
        await client.query(`set time zone '${zone}'`);
        const { rows } = await client.query<{ at: Date; printed: string; millis: string }>(
          `select t as at, t::text as printed, floor(extract(epoch from t) * 1000)::text as millis from unnest($1::timestamptz[]) as t`,
          [literals],
        );
        for (const row of rows) expect([zone, row.printed, row.at.getTime()]).toEqual([zone, row.printed, Number(row.millis)]);
      }
      const { rows: special } = await client.query<{ at: unknown }>(
        `select t as at from unnest(array['infinity', '-infinity', '0044-03-15 12:00:00+00 BC']::timestamptz[]) with ordinality as u(t, n) order by n`,
      );
      expect(special.map((r) => r.at)).toEqual([Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, new Date(Date.UTC(-43, 2, 15, 12))]);
    } finally {
      client.release();
      await close();
    }
  });
});
