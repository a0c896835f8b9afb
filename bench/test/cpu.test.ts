import { createServer, type Server } from 'node:net';
import { createTestDatabase, testNats, testPostgres, type TestDatabase } from '@punchcard/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listeningProcess, localNatsServer, postgresBackends, type PostgresBackends } from '../src/cpu.js';

let database: TestDatabase;
let backends: PostgresBackends;
const clients: pg.Client[] = [];

async function connectToDatabase(applicationName = 'bench-cpu-test'): Promise<number> {
  const client = new pg.Client({ connectionString: database.url, application_name: applicationName });
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

  it("tells the autovacuum stand-in's connections from the services'", async () => {
    const service = await connectToDatabase('entitlement-ledger');
    const vacuum = await connectToDatabase('bench-autovacuum');
    const all = await backends.pids();
    expect(all).toEqual(expect.arrayContaining([service, vacuum]));
    expect(await backends.pids('vacuum')).toEqual([vacuum]);
    const services = await backends.pids('services');
    expect(services).toContain(service);
    expect(services).not.toContain(vacuum);
    expect([...services, vacuum].sort()).toEqual([...all].sort());
  });
});

describe('the process behind a local port', () => {
  let server: Server;
  let port: number;

  beforeAll(async () => {
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('finds the process listening on a loopback port, and none on a closed one or another host', async () => {
    expect(listeningProcess(`nats://127.0.0.1:${port}`)).toEqual({ pid: process.pid, command: expect.any(String) });
    expect(listeningProcess(`nats://localhost:${port}`)?.pid).toBe(process.pid);
    // A port nothing listens on: the one just released.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const freed = (closed.address() as { port: number }).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    expect(listeningProcess(`nats://127.0.0.1:${freed}`)).toBeUndefined();
    expect(listeningProcess(`nats://nats.example.com:${port}`)).toBeUndefined();
  });

  it('meters the NATS server only when it is a nats-server process on this machine', async () => {
    // This process listens on `port`, but it is not a NATS server.
    expect(localNatsServer(`nats://127.0.0.1:${port}`)).toBeUndefined();
    const url = await testNats();
    const found = listeningProcess(url);
    expect(localNatsServer(url)).toBe(found?.command === 'nats-server' ? found.pid : undefined);
  });
});
