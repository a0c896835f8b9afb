import { createTestDatabase, testPostgres, type TestDatabase } from '@punchcard/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresBackends, type PostgresBackends } from '../src/cpu.js';

let database: TestDatabase;
let backends: PostgresBackends;
const clients: pg.Client[] = [];

async function connectToDatabase(): Promise<number> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  clients.push(client);
  return (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
}

beforeAll(async () => {
  database = await createTestDatabase('bench_cpu');
  backends = await postgresBackends(await testPostgres(), database.name);
});

afterAll(async () => {
  await backends?.close();
  for (const c of clients) await c.end();
  await database?.drop();
});

describe("the CPU meter's list of Postgres backends", () => {
  it("lists the database's backends as they come, with the WAL writer and without its own", async () => {
    const first = await connectToDatabase();
    const listed = await backends.pids();
    expect(listed).toContain(first);

    const second = await connectToDatabase();
    expect(await backends.pids()).toEqual(expect.arrayContaining([first, second]));

    const admin = new pg.Client({ connectionString: await testPostgres() });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ pid: number; application_name: string; backend_type: string }>(
        `select pid, application_name, backend_type from pg_stat_activity where backend_type = 'walwriter' or application_name = 'bench-cpu-meter'`,
      );
      const walWriter = rows.find((r) => r.backend_type === 'walwriter')!.pid;
      const meters = rows.filter((r) => r.application_name === 'bench-cpu-meter');
      expect(listed).toContain(walWriter);
      // One connection however often it lists, and that one is not the database's work.
      expect(meters).toHaveLength(1);
      expect(listed).not.toContain(meters[0]!.pid);
    } finally {
      await admin.end();
    }
  });
});
