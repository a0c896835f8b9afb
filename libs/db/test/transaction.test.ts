import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, ensureSchema, inTransaction, pgErrorCode, SqlState, type Database } from '../src/index.js';
import { deferred, sandbox, type Sandbox } from './helpers.js';

describe('inTransaction', () => {
  let box: Sandbox;
  let handle: Database<any>;

  beforeAll(async () => {
    box = await sandbox('db_tx');
    await ensureSchema(box.database.url, 'svc');
    handle = createDb({ url: box.database.url, schema: 'svc', poolMax: 4 });
    await sql`create table rota (who text, slot int4)`.execute(handle.db);
    await sql`create table notes (note text)`.execute(handle.db);
  });
  afterAll(async () => {
    await handle.close();
    await box.drop();
  });

  it('retries a real serialization failure until both transactions commit serializably', async () => {
    // Write skew: both read the rota, then both append "count + 1". Serializable must not let both see 0.
    let read = 0;
    const bothRead = deferred();
    let retries = 0;
    const book = (who: string) =>
      inTransaction(
        handle.db,
        async (tx) => {
          const { rows } = await sql<{ n: bigint }>`select count(*) as n from rota`.execute(tx);
          if (++read === 2) bothRead.resolve();
          await bothRead.promise;
          await sql`insert into rota values (${who}, ${Number(rows[0]!.n) + 1})`.execute(tx);
        },
        { isolation: 'serializable', onRetry: (err) => (expect(pgErrorCode(err)).toBe(SqlState.serializationFailure), retries++) },
      );
    await Promise.all([book('a'), book('b')]);
    expect(retries).toBeGreaterThanOrEqual(1);
    const { rows } = await sql<{ slot: number }>`select slot from rota order by slot`.execute(handle.db);
    expect(rows.map((r) => r.slot)).toEqual([1, 2]);
  });

  it('rolls back and rethrows other errors without retrying', async () => {
    let calls = 0;
    const run = inTransaction(handle.db, async (tx) => {
      calls++;
      await sql`insert into notes values ('kept?')`.execute(tx);
      throw new Error('rule broken');
    });
    await expect(run).rejects.toThrow('rule broken');
    expect(calls).toBe(1);
    const { rows } = await sql`select * from notes`.execute(handle.db);
    expect(rows).toEqual([]);
  });

  it('gives up after the configured retries with the last serialization failure', async () => {
    let calls = 0;
    const run = inTransaction(
      handle.db,
      async () => {
        calls++;
        throw Object.assign(new Error('could not serialize access'), { code: SqlState.serializationFailure });
      },
      { retries: 2 },
    );
    await expect(run).rejects.toThrow('could not serialize access');
    expect(calls).toBe(3);
  });

  it('commits what fn did and returns its value', async () => {
    const value = await inTransaction(handle.db, async (tx) => {
      await sql`insert into notes values ('committed')`.execute(tx);
      return 42;
    });
    expect(value).toBe(42);
    const { rows } = await sql`select note from notes`.execute(handle.db);
    expect(rows).toEqual([{ note: 'committed' }]);
  });
});
