import { createTestDatabase, type TestDatabase } from '@punchcard/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastAutovacuum, standInForAutovacuum } from '../src/autovacuum.js';
import { sqlOnOwnConnection } from './support/sql.js';

let database: TestDatabase;

const sql = <R extends pg.QueryResultRow>(text: string) => sqlOnOwnConnection<R>(database.url, text);

/** How often each table was vacuumed and analyzed (by hand: autovacuum is off, or the test returns early). */
async function counts(): Promise<Record<string, string>> {
  const rows = await sql<{ relname: string; v: string; a: string }>(
    'select relname, vacuum_count as v, analyze_count as a from pg_stat_user_tables order by relname',
  );
  return Object.fromEntries(rows.map((r) => [r.relname, `vacuum ${r.v}, analyze ${r.a}`]));
}

/** A table of 1,000 dead rows: past the vacuum threshold (50 + 20 %). */
async function tableOfDeadRows(name: string): Promise<void> {
  await sql(`create table ${name} (n int)`);
  await sql(`insert into ${name} select g from generate_series(1, 1000) g`);
  await sql(`delete from ${name}`);
}

beforeAll(async () => {
  database = await createTestDatabase('bench_autovacuum');
  for (const table of ['grown', 'churned', 'barely']) await sql(`create table ${table} (n int)`);
  // Changed past the analyze threshold (50 rows + 10 %), not past the insert one (1,000 + 20 %).
  await sql('insert into grown select g from generate_series(1, 1000) g');
  // 100 dead rows: past the vacuum threshold (50 + 20 %), and 200 changes past the analyze one.
  await sql('insert into churned select g from generate_series(1, 100) g');
  await sql('delete from churned');
  // Below every threshold.
  await sql('insert into barely select g from generate_series(1, 10) g');
});

afterAll(async () => {
  await database?.drop();
});

describe('the bench standing in for autovacuum', () => {
  it('vacuums and analyzes the tables past autovacuum\'s thresholds, when the server runs without autovacuum', async () => {
    const stop = await standInForAutovacuum(database.url, 50);
    try {
      if (lastAutovacuum.autovacuum === 'on') {
        expect(lastAutovacuum.standInEverySeconds).toBe(0);
        return;
      }
      expect(lastAutovacuum.standInEverySeconds).toBe(0.05);
      const deadline = Date.now() + 15_000;
      while (lastAutovacuum.analyzes < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    } finally {
      await stop();
    }
    expect(await counts()).toEqual({
      barely: 'vacuum 0, analyze 0',
      churned: 'vacuum 1, analyze 1',
      grown: 'vacuum 0, analyze 1',
    });
    expect(lastAutovacuum).toMatchObject({ vacuums: 1, analyzes: 2 });
  });

  it('cancels a vacuum still running when it is stopped', async () => {
    // Dead rows past the vacuum threshold, in a table this test keeps locked against vacuum: the
    // stand-in's vacuum waits for the lock until the stop cancels it (without the cancel, the stop
    // would wait for the vacuum, and the vacuum for this test's lock).
    await tableOfDeadRows('held');
    const holder = new pg.Client({ connectionString: database.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table held in share update exclusive mode');
      const stop = await standInForAutovacuum(database.url, 50);
      if (lastAutovacuum.autovacuum === 'on') return stop();
      const deadline = Date.now() + 15_000;
      let waiting = false;
      while (!waiting && Date.now() < deadline) {
        const rows = await sql<{ n: string }>(`
          select count(*) as n from pg_stat_activity
          where application_name = 'bench-autovacuum' and wait_event_type = 'Lock' and query ilike 'vacuum%held'`);
        waiting = rows[0]!.n === '1';
      }
      expect(waiting).toBe(true);
      // Several ticks pass while the vacuum waits: they must not queue rounds that would vacuum again
      // after the cancel (and wait for this lock once more).
      await new Promise((r) => setTimeout(r, 200));
      await stop();
    } finally {
      await holder.query('rollback');
      await holder.end();
    }
    expect((await counts()).held).toBe('vacuum 0, analyze 0');
  });

  it('does nothing when told never to', async () => {
    await sql('insert into barely select g from generate_series(1, 1000) g');
    const stop = await standInForAutovacuum(database.url, 0);
    await new Promise((r) => setTimeout(r, 200));
    await stop();
    expect(lastAutovacuum.standInEverySeconds).toBe(0);
    expect((await counts()).barely).toBe('vacuum 0, analyze 0');
  });

  it("leaves other sessions' temporary tables alone, as autovacuum does, and vacuums the rest", async () => {
    await tableOfDeadRows('beside');
    // A temporary table past the insert threshold, in a session of its own that stays open (the
    // expiry sweep's loader makes one): no other session can vacuum it, and it may be gone by the
    // time a vacuum names it.
    const owner = new pg.Client({ connectionString: database.url });
    await owner.connect();
    const vacuumsDone = async () => Object.values(await counts()).reduce((n, c) => n + Number(/vacuum (\d+)/.exec(c)![1]), 0);
    let done = 0;
    try {
      await owner.query('create temporary table scratch (n int)');
      await owner.query('insert into scratch select g from generate_series(1, 5000) g');
      await owner.query('select pg_stat_force_next_flush()');
      await owner.query('select 1');
      const before = await vacuumsDone();
      const stop = await standInForAutovacuum(database.url, 50);
      if (lastAutovacuum.autovacuum === 'on') return stop();
      const deadline = Date.now() + 15_000;
      while ((await counts()).beside !== 'vacuum 1, analyze 1' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      // A few more rounds: each would name the temporary table again.
      await new Promise((r) => setTimeout(r, 300));
      await stop();
      done = (await vacuumsDone()) - before;
    } finally {
      await owner.end();
    }
    expect((await counts()).beside).toBe('vacuum 1, analyze 1');
    // Every vacuum the stand-in counts is one the server did.
    expect(lastAutovacuum.vacuums).toBe(done);
  });
});
