import { createTestDatabase, type TestDatabase } from '@punchcard/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keepStatistics, lastStatistics } from '../src/statistics.js';

let database: TestDatabase;

async function sql<R extends pg.QueryResultRow>(text: string): Promise<R[]> {
  // A client of its own per call: a backend reports its table counters when it exits, at the latest.
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}

const analyzed = async (table: string) =>
  (await sql<{ n: string }>(`select analyze_count as n from pg_stat_user_tables where relname = '${table}'`))[0]?.n;

beforeAll(async () => {
  database = await createTestDatabase('bench_statistics');
  await sql('create table grown (n int)');
  await sql('create table barely (n int)');
  await sql('insert into grown select g from generate_series(1, 1000) g');
  // Below autovacuum's threshold (50 rows plus 10 % of the table).
  await sql('insert into barely select g from generate_series(1, 10) g');
});

afterAll(async () => {
  await database?.drop();
});

describe('keepStatistics, standing in for autovacuum', () => {
  it('analyzes the tables changed past autovacuum\'s threshold, when the server runs without autovacuum', async () => {
    const stop = await keepStatistics(database.url, 50);
    try {
      if (lastStatistics.autovacuum === 'on') {
        expect(lastStatistics.standInEverySeconds).toBe(0);
        return;
      }
      expect(lastStatistics.standInEverySeconds).toBe(0.05);
      const deadline = Date.now() + 15_000;
      while ((await analyzed('grown')) === '0' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(await analyzed('grown')).toBe('1');
      expect(await analyzed('barely')).toBe('0');
      expect(lastStatistics.analyzes).toBe(1);
    } finally {
      await stop();
    }
  });

  it('does nothing when told never to', async () => {
    await sql('insert into barely select g from generate_series(1, 1000) g');
    const stop = await keepStatistics(database.url, 0);
    await new Promise((r) => setTimeout(r, 200));
    await stop();
    expect(lastStatistics.standInEverySeconds).toBe(0);
    expect(await analyzed('barely')).toBe('0');
  });
});
