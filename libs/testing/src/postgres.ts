import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { dockerEngineAnswers } from './docker.js';

const LOCAL_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
let adminUrl: Promise<string> | undefined;

/**
 * A connection URL for a role that may create databases, in this order:
 * TEST_DATABASE_URL, a testcontainers Postgres when a Docker engine answers, else the local server.
 */
export function testPostgres(): Promise<string> {
  adminUrl ??= resolveAdminUrl();
  return adminUrl;
}

async function resolveAdminUrl(): Promise<string> {
  const fromEnv = process.env.TEST_DATABASE_URL;
  if (fromEnv) return fromEnv;
  if (dockerEngineAnswers()) {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer('postgres:16-alpine').start();
    return container.getConnectionUri();
  }
  await assertReachable(LOCAL_URL);
  return LOCAL_URL;
}

async function assertReachable(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `No Postgres for tests: set TEST_DATABASE_URL, run a Docker engine, or start the local server on 127.0.0.1:5432 (${(err as Error).message})`,
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface TestDatabase {
  /** URL of the fresh database, as the admin role. */
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A fresh, empty database for one test file; `drop()` removes it. */
export async function createTestDatabase(prefix = 'test'): Promise<TestDatabase> {
  const admin = await testPostgres();
  const name = `${prefix.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(5).toString('hex')}`;
  await withClient(admin, (c) => c.query(`CREATE DATABASE "${name}"`));
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () => withClient(admin, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined),
  };
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
