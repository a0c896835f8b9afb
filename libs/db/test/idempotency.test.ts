import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  answerWrite,
  createDb,
  ensureSchema,
  IdempotencyKeyInvalid,
  IdempotencyKeyReused,
  idempotencyMigration,
  inTransaction,
  migrateToLatest,
  requestHash,
  withIdempotency,
  type Database,
  type TransactionOptions,
} from '../src/index.js';
import { countingStatements } from '@punchcard/testing';
import { deferred, eventually, sandbox, type Sandbox } from './helpers.js';

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const METHOD = 'punchcard.ledger.v1.LedgerService/ConsumeSession';

describe('withIdempotency', () => {
  let box: Sandbox;
  let handle: Database<any>;
  let observer: pg.Client;

  beforeAll(async () => {
    box = await sandbox('db_idem');
    const role = box.roleName('ledger');
    await ensureSchema(box.database.url, 'ledger', { name: role });
    handle = createDb({ url: box.urlAs(role), schema: 'ledger', poolMax: 12, applicationName: 'idem-test' });
    await migrateToLatest(handle.db, 'ledger', {
      '0000_idempotency_keys': idempotencyMigration,
      '0001_effects': {
        up: (db) =>
          db.schema
            .createTable('effects')
            .addColumn('id', 'serial', (c) => c.primaryKey())
            .addColumn('tenant_id', 'text', (c) => c.notNull())
            .addColumn('note', 'text', (c) => c.notNull())
            .execute(),
      },
    });
    observer = new pg.Client({ connectionString: box.database.url });
    await observer.connect();
  });
  afterAll(async () => {
    await observer.end();
    await handle.close();
    await box.drop();
  });

  /** A consume-like RPC: the effect is one row in `effects`; the response names that row. */
  function consume(
    key: string,
    request: string,
    options: { tenantId?: string; method?: string; beforeEffect?: () => Promise<void>; tx?: TransactionOptions } = {},
  ) {
    const tenantId = options.tenantId ?? 'tenant-a';
    return inTransaction(
      handle.db,
      (tx) =>
        withIdempotency(tx, { tenantId, key, method: options.method ?? METHOD, requestHash: requestHash(bytes(request)) }, async () => {
          await options.beforeEffect?.();
          const row = await tx.insertInto('effects').values({ tenant_id: tenantId, note: request }).returning('id').executeTakeFirstOrThrow();
          return bytes(`effect ${row.id}`);
        }),
      options.tx,
    );
  }

  const effects = async (note: string) =>
    (await handle.db.selectFrom('effects').select('id').where('note', '=', note).execute()).length;

  /** True once some backend of this test's pool waits on a lock (the second caller, on the key). */
  const someoneWaitsOnALock = async () => {
    const { rows } = await observer.query(
      `select 1 from pg_stat_activity where datname = current_database() and application_name = 'idem-test' and wait_event_type = 'Lock'`,
    );
    return rows.length > 0;
  };

  it('runs once and replays the first response for a repeat', async () => {
    const first = await consume('k-replay', 'replay');
    const again = await consume('k-replay', 'replay');
    expect(first.replayed).toBe(false);
    expect(again.replayed).toBe(true);
    expect(text(again.response)).toBe(text(first.response));
    expect(again.response).toBeInstanceOf(Uint8Array);
    expect(await effects('replay')).toBe(1);
  });

  it('stores an answer written with the effect without writing it again, and replays it', async () => {
    const counted = countingStatements(handle.db);
    const request = { tenantId: 'tenant-a', key: 'k-alongside', method: METHOD, requestHash: requestHash(bytes('alongside')) };
    const run = (answer: (tx: Kysely<any>) => Uint8Array) =>
      inTransaction(counted.db, (tx) =>
        withIdempotency(tx, request, async () => {
          const response = answer(tx);
          const write = answerWrite(tx, response);
          if (!write) throw new Error('no claim open');
          await tx.with('answered', write).insertInto('effects').values({ tenant_id: 'tenant-a', note: 'alongside' }).execute();
          return response;
        }),
      );
    const first = await run(() => bytes('written with the effect'));
    // The claim and the effect with its answer: no third statement to store the answer.
    expect(counted.statements()).toBe(2);
    counted.reset();
    const again = await run(() => bytes('never run'));
    expect(again).toMatchObject({ replayed: true });
    expect(text(again.response)).toBe(text(first.response));
    expect(counted.statements()).toBe(2);
    expect(await effects('alongside')).toBe(1);
    expect(answerWrite(handle.db, bytes('x'))).toBeUndefined();
  });

  it('stores what run returns when it is not the answer written with the effect', async () => {
    const request = { tenantId: 'tenant-a', key: 'k-other-answer', method: METHOD, requestHash: requestHash(bytes('other')) };
    const run = () =>
      inTransaction(handle.db, (tx) =>
        withIdempotency(tx, request, async () => {
          await tx.with('answered', answerWrite(tx, bytes('an earlier answer'))!).insertInto('effects').values({ tenant_id: 'tenant-a', note: 'other' }).execute();
          return bytes('the final answer');
        }),
      );
    expect(text((await run()).response)).toBe('the final answer');
    expect(text((await run()).response)).toBe('the final answer');
  });

  it('rejects the same key with a different request, naming idempotency_key', async () => {
    await consume('k-reused', 'original');
    const reuse = consume('k-reused', 'different');
    await expect(reuse).rejects.toThrow(IdempotencyKeyReused);
    await expect(reuse).rejects.toMatchObject({ field: 'idempotency_key', message: expect.stringContaining('idempotency_key "k-reused"') });
    expect(await effects('different')).toBe(0);
  });

  it('keeps keys apart per tenant and per method', async () => {
    const a = await consume('k-shared', 'scoped', { tenantId: 'tenant-a' });
    const b = await consume('k-shared', 'scoped', { tenantId: 'tenant-b' });
    const c = await consume('k-shared', 'scoped', { method: 'punchcard.ledger.v1.LedgerService/Reverse' });
    expect([a.replayed, b.replayed, c.replayed]).toEqual([false, false, false]);
    expect(await effects('scoped')).toBe(3);
  });

  it('makes a concurrent first call with the same key wait, then replay', async () => {
    const gate = deferred();
    const started = deferred();
    const first = consume('k-race', 'race', { beforeEffect: async () => (started.resolve(), gate.promise) });
    await started.promise;
    const second = consume('k-race', 'race');
    await eventually(someoneWaitsOnALock);
    expect(await effects('race')).toBe(0);
    gate.resolve();
    const results = await Promise.all([first, second]);
    expect(results.map((r) => r.replayed)).toEqual([false, true]);
    expect(text(results[1]!.response)).toBe(text(results[0]!.response));
    expect(await effects('race')).toBe(1);
  });

  it('lets the waiting call run when the first one rolls back', async () => {
    const gate = deferred();
    const started = deferred();
    const first = consume('k-rollback', 'rollback', {
      beforeEffect: async () => {
        started.resolve();
        await gate.promise;
        throw new Error('payment declined');
      },
    });
    await started.promise;
    const second = consume('k-rollback', 'rollback');
    await eventually(someoneWaitsOnALock);
    gate.resolve();
    await expect(first).rejects.toThrow('payment declined');
    expect((await second).replayed).toBe(false);
    expect(await effects('rollback')).toBe(1);
  });

  it('under serializable, the waiting call retries into a replay', async () => {
    const gate = deferred();
    const started = deferred();
    let retries = 0;
    const tx: TransactionOptions = { isolation: 'serializable', onRetry: () => retries++ };
    const first = consume('k-serial', 'serial', { tx, beforeEffect: async () => (started.resolve(), gate.promise) });
    await started.promise;
    const second = consume('k-serial', 'serial', { tx });
    await eventually(someoneWaitsOnALock);
    gate.resolve();
    const results = await Promise.all([first, second]);
    expect(results.map((r) => r.replayed)).toEqual([false, true]);
    expect(retries).toBeGreaterThanOrEqual(1);
    expect(await effects('serial')).toBe(1);
  });

  it('applies the effect once among many simultaneous calls', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, () => consume('k-storm', 'storm')));
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    expect(new Set(results.map((r) => text(r.response))).size).toBe(1);
    expect(await effects('storm')).toBe(1);
  });

  it('stores nothing when the effect fails, so a retry runs it', async () => {
    await expect(consume('k-fail', 'fail', { beforeEffect: () => Promise.reject(new Error('boom')) })).rejects.toThrow('boom');
    expect((await consume('k-fail', 'fail')).replayed).toBe(false);
    expect(await effects('fail')).toBe(1);
  });

  it('releases the claim even if the caller swallows the error and commits', async () => {
    await inTransaction(handle.db, async (tx) => {
      const attempt = withIdempotency(tx, { tenantId: 'tenant-a', key: 'k-swallow', method: METHOD, requestHash: 'h' }, () =>
        Promise.reject(new Error('declined')),
      );
      await expect(attempt).rejects.toThrow('declined');
    });
    const { rows } = await sql`select * from idempotency_keys where key = 'k-swallow'`.execute(handle.db);
    expect(rows).toEqual([]);
  });

  it('refuses to run outside a transaction and rejects empty or oversized keys', async () => {
    const run = async () => bytes('x');
    const request = { tenantId: 'tenant-a', method: METHOD, requestHash: 'h' };
    await expect(withIdempotency(handle.db as Kysely<any>, { ...request, key: 'k' }, run)).rejects.toThrow(/inside the transaction/);
    await expect(inTransaction(handle.db, (tx) => withIdempotency(tx, { ...request, key: '' }, run))).rejects.toThrow(IdempotencyKeyInvalid);
    await expect(inTransaction(handle.db, (tx) => withIdempotency(tx, { ...request, key: 'x'.repeat(256) }, run))).rejects.toMatchObject({
      field: 'idempotency_key',
    });
  });
});
