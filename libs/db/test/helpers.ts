import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createTestDatabase, testPostgres, type TestDatabase } from '@punchcard/testing';

/** A fresh database plus login roles created in it; `drop()` removes the database, then the roles (which are cluster-wide). */
export interface Sandbox {
  database: TestDatabase;
  /** Unique role name for this run; remembered for cleanup. */
  roleName(label: string): string;
  /** The database URL as `role` (the test server trusts local connections). */
  urlAs(role: string): string;
  drop(): Promise<void>;
}

export async function sandbox(prefix: string): Promise<Sandbox> {
  const database = await createTestDatabase(prefix);
  const roles: string[] = [];
  return {
    database,
    roleName(label) {
      const name = `${label}_${randomBytes(4).toString('hex')}`;
      roles.push(name);
      return name;
    },
    urlAs(role) {
      const url = new URL(database.url);
      url.username = role;
      url.password = '';
      return url.toString();
    },
    async drop() {
      await database.drop();
      const admin = new pg.Client({ connectionString: await testPostgres() });
      await admin.connect();
      try {
        for (const role of roles) await admin.query(`DROP ROLE IF EXISTS "${role}"`);
      } finally {
        await admin.end();
      }
    },
  };
}

export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Polls `condition` until it holds; the test's own timeout bounds the wait. */
export async function eventually(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((r) => setTimeout(r, 10));
}
