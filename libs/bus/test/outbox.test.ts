import { StringValueSchema } from '@bufbuild/protobuf/wkt';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { createDb, ensureSchema, inTransaction, migrateToLatest, uuidv7 } from '@punchcard/db';
import { countingStatements } from '@punchcard/testing';
import { sql, type Kysely, type QueryCreator } from 'kysely';
import type pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CE,
  declareStreams,
  enqueue,
  enqueueMany,
  headerRecord,
  OUTBOX_CHANNEL,
  outboxDeletedOnPublishMigration,
  outboxKeyedBySeqMigration,
  outboxMigration,
  outboxSeqNotUniqueMigration,
  publishOutboxRow,
  requestingPublisher,
  startConsumer,
  startOutboxRelay,
  streamName,
  type OutboxRelay,
  type OutboxRelayStats,
  type OutboxRow,
  type OutboxTables,
} from '../src/index.js';
import { applicationsPerEvent, harness, Outcomes, readStream, SCHEMA, type Harness } from './helpers.js';

const SOURCE = '/punchcard/test-ledger';
let h: Harness;

beforeAll(async () => {
  h = await harness('outbox');
});
afterAll(async () => {
  await h?.close();
});

/** Enqueues one ledger event per transaction for aggregate `agg`, versions `from`..`to`. */
async function enqueueVersions(agg: string, from: number, to: number): Promise<string[]> {
  const ids: string[] = [];
  for (let v = from; v <= to; v++) {
    const { id } = await inTransaction(h.db, (tx) =>
      enqueue(tx, {
        producer: 'ledger',
        event: 'session_consumed',
        tenantId: 'tenant-a',
        aggregateId: agg,
        aggregateVersion: v,
        schema: StringValueSchema,
        message: { value: `${agg}#${v}` },
        time: new Date(Date.UTC(2030, 0, 1, 0, 0, v)),
      }),
    );
    ids.push(id);
  }
  return ids;
}

/** The harness's pool, showing `see` each connection it hands out (the relay's own, for one). */
function poolSeeing(see: (client: pg.PoolClient) => void): pg.Pool {
  return Object.create(h.pool, {
    connect: {
      value: async () => {
        const client = await h.pool.connect();
        see(client);
        return client;
      },
    },
  }) as pg.Pool;
}

async function unpublished(): Promise<number> {
  const { rows } = await h.pool.query<{ n: number }>('select count(*)::int as n from outbox');
  return rows[0]?.n ?? -1;
}

async function stopAll(relays: OutboxRelay[]): Promise<void> {
  await Promise.all(relays.map((r) => r.stop()));
}

describe('outbox relay', () => {
  it('publishes committed events once, in order, with CloudEvents headers; a rolled-back event never leaves', async () => {
    const before = Date.now();
    const ids = await enqueueVersions('ent-order', 1, 12);
    const after = Date.now();
    // Ids are UUIDv7 made when the event was written (not its `time`), so the keys they go under only grow.
    for (const id of ids) {
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
      const millis = parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
      expect(millis).toBeGreaterThanOrEqual(before);
      expect(millis).toBeLessThanOrEqual(after);
    }
    await expect(
      inTransaction(h.db, async (tx) => {
        await enqueue(tx, {
          producer: 'ledger',
          event: 'session_consumed',
          tenantId: 'tenant-a',
          aggregateId: 'ent-rolled-back',
          schema: StringValueSchema,
          message: { value: 'never' },
        });
        throw new Error('the state change failed');
      }),
    ).rejects.toThrow('the state change failed');

    const relay = startOutboxRelay({ pool: h.pool, nc: h.bus.nc, namespace: h.namespace, source: SOURCE, pollIntervalMs: 50 });
    try {
      await relay.flush();
    } finally {
      await relay.stop();
    }

    const messages = (await readStream(h.bus, h.namespace, 'LEDGER')).filter((m) => m.headers?.get(CE.subject) === 'ent-order');
    expect(messages.map((m) => headerRecord(m.headers)[CE.id])).toEqual(ids);
    expect(messages.map((m) => fromBinary(StringValueSchema, m.data).value)).toEqual(ids.map((_, i) => `ent-order#${i + 1}`));
    const first = headerRecord(messages[0]?.headers);
    expect(first).toMatchObject({
      'nats-msg-id': ids[0],
      [CE.specversion]: '1.0',
      [CE.id]: ids[0],
      [CE.source]: SOURCE,
      [CE.type]: 'punchcard.ledger.session_consumed',
      [CE.time]: '2030-01-01T00:00:01.000Z',
      [CE.subject]: 'ent-order',
      [CE.tenantid]: 'tenant-a',
      [CE.entityversion]: '1',
      [CE.dataschema]: 'proto:google.protobuf.StringValue',
      'content-type': 'application/protobuf',
    });
    expect(messages[0]?.subject).toBe(`${h.namespace}.punchcard.ledger.session_consumed.tenant-a`);
    const all = await readStream(h.bus, h.namespace, 'LEDGER');
    expect(all.some((m) => m.headers?.get(CE.subject) === 'ent-rolled-back')).toBe(false);
    expect(await unpublished()).toBe(0);
  });

  it('a relay that crashed after publishing but before deleting leaves no duplicate for consumers', async () => {
    const ids = await enqueueVersions('ent-crash', 1, 6);
    // What a relay does before it dies: read the batch and publish it; the delete never happens.
    const { rows } = await h.pool.query<OutboxRow>('select * from outbox order by seq');
    expect(rows.map((r) => r.id)).toEqual(ids);
    for (const row of rows) {
      const ack = await publishOutboxRow(requestingPublisher(h.bus.js), h.namespace, SOURCE, row);
      expect(ack.duplicate).toBe(false);
    }
    expect(await unpublished()).toBe(6);

    // The restarted relay republishes all six; JetStream recognises every one by Nats-Msg-Id.
    const relay = startOutboxRelay({ pool: h.pool, nc: h.bus.nc, namespace: h.namespace, source: SOURCE, pollIntervalMs: 50 });
    try {
      await relay.flush();
      expect(relay.stats()).toMatchObject({ published: 0, duplicates: 6 });
    } finally {
      await relay.stop();
    }

    const inStream = (await readStream(h.bus, h.namespace, 'LEDGER')).filter((m) => m.headers?.get(CE.subject) === 'ent-crash');
    expect(inStream.map((m) => m.headers?.get(CE.id))).toEqual(ids);

    const outcomes = new Outcomes();
    const consumer = await startConsumer({
      db: h.db,
      js: h.bus.js,
      namespace: h.namespace,
      stream: 'LEDGER',
      durable: 'crash_check',
      filterSubjects: ['punchcard.ledger.session_consumed.*'],
      schema: StringValueSchema,
      onOutcome: outcomes.record,
      handler: async (tx, event) => {
        if (event.aggregateId !== 'ent-crash') return;
        await tx
          .insertInto('effects')
          .values({ consumer: 'crash_check', event_id: event.id, aggregate_id: event.aggregateId, aggregate_version: event.aggregateVersion ?? null, value: event.data.value })
          .execute();
      },
    });
    try {
      const info = await h.bus.jsm.streams.info(streamName(h.namespace, 'LEDGER'));
      await outcomes.until((all) => all.length >= info.state.messages);
    } finally {
      await consumer.stop();
    }
    const applied = await applicationsPerEvent(h.db, 'crash_check');
    expect([...applied.keys()].sort()).toEqual([...ids].sort());
    expect([...applied.values()].every((n) => n === 1)).toBe(true);
  });

  it('two relays on one schema: one publishes, the other takes over when the leader’s connection dies', async () => {
    const relays = [0, 1].map(() =>
      startOutboxRelay({ pool: h.pool, nc: h.bus.nc, namespace: h.namespace, source: SOURCE, pollIntervalMs: 50 }),
    );
    try {
      const before = (await h.bus.jsm.streams.info(streamName(h.namespace, 'LEDGER'))).state.messages;
      const firstIds = await enqueueVersions('ent-pair', 1, 10);
      await relays[0]!.flush();
      const afterFirst = relays.map((r) => r.stats());
      expect(afterFirst.map((s) => s.published).sort()).toEqual([0, 10]);
      expect(afterFirst.reduce((n, s) => n + s.duplicates, 0)).toBe(0);
      expect(relays.filter((r) => r.isLeader())).toHaveLength(1);

      // Kill the leader's session the way a crashed pod or a failover would.
      const killed = await sql<{ pid: number }>`
        select pg_terminate_backend(pid) as killed, pid from pg_locks
        where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())`.execute(h.db);
      expect(killed.rows).toHaveLength(1);

      const secondIds = await enqueueVersions('ent-pair', 11, 20);
      await relays[1]!.flush();
      const stats = relays.map((r) => r.stats());
      expect(stats.reduce((n, s) => n + s.published, 0)).toBe(20);
      expect(stats.reduce((n, s) => n + s.duplicates, 0)).toBe(0);
      expect(stats.reduce((n, s) => n + s.leaderships, 0)).toBe(2);

      const after = (await h.bus.jsm.streams.info(streamName(h.namespace, 'LEDGER'))).state.messages;
      expect(after - before).toBe(20);
      const pair = (await readStream(h.bus, h.namespace, 'LEDGER')).filter((m) => m.headers?.get(CE.subject) === 'ent-pair');
      expect(pair.map((m) => m.headers?.get(CE.id))).toEqual([...firstIds, ...secondIds]);
    } finally {
      await stopAll(relays);
    }
  });

  it('enqueueMany writes the rows enqueue would, in order, and the relay publishes them in that order', async () => {
    const input = (agg: string, v: number) => ({
      producer: 'ledger',
      event: 'entitlement_expired',
      tenantId: 'tenant-a',
      aggregateId: agg,
      aggregateVersion: v,
      schema: StringValueSchema,
      message: { value: `${agg}#${v}` },
      headers: { 'X-Origin': 'batch' },
      time: new Date(Date.UTC(2030, 0, 2, 0, 0, v)),
    });
    const single = await inTransaction(h.db, (tx) => enqueue(tx, { ...input('ent-single', 1), id: crypto.randomUUID() }));
    const many = await inTransaction(h.db, (tx) => enqueueMany(tx, Array.from({ length: 1500 }, (_, i) => input(`ent-many-${i}`, i + 1))));
    expect(many).toHaveLength(1500);
    expect(new Set(many.map((e) => e.id)).size).toBe(1500);
    expect(many[0]).toMatchObject({ subject: 'punchcard.ledger.entitlement_expired.tenant-a', type: 'punchcard.ledger.entitlement_expired' });

    const { rows } = await h.pool.query<OutboxRow & { producer: string }>(
      `select * from outbox where aggregate_id = $1 or aggregate_id like 'ent-many-%' order by seq`,
      ['ent-single'],
    );
    expect(rows.map((r) => r.id)).toEqual([single.id, ...many.map((e) => e.id)]);
    const shape = ({ id: _id, aggregate_id: _a, aggregate_version: _v, payload: _p, created_at: _c, seq: _s, ...rest }: OutboxRow & { seq?: unknown }) => rest;
    expect(shape(rows[1]!)).toEqual(shape(rows[0]!));
    expect(rows[1]!.headers).toMatchObject({ 'x-origin': 'batch' });
    expect(rows.slice(1).map((r) => fromBinary(StringValueSchema, r.payload).value)).toEqual(many.map((_, i) => `ent-many-${i}#${i + 1}`));

    // A payload the producer already encoded is written as it is.
    const { message: _, ...header } = input('ent-encoded', 1);
    const bytes = toBinary(StringValueSchema, create(StringValueSchema, { value: 'encoded once' }));
    const [encoded] = await inTransaction(h.db, (tx) => enqueueMany(tx, [{ ...header, payload: bytes }, input('ent-encoded', 2)]));
    const { rows: stored } = await h.pool.query<OutboxRow>('select * from outbox where id = $1', [encoded!.id]);
    expect(Buffer.from(stored[0]!.payload).equals(Buffer.from(bytes))).toBe(true);

    const relay = startOutboxRelay({ pool: h.pool, nc: h.bus.nc, namespace: h.namespace, source: SOURCE, pollIntervalMs: 50 });
    try {
      await relay.flush(30_000);
    } finally {
      await relay.stop();
    }
    const published = (await readStream(h.bus, h.namespace, 'LEDGER')).filter((m) => (m.headers?.get(CE.subject) ?? '').startsWith('ent-many-'));
    expect(published.map((m) => m.headers?.get(CE.id))).toEqual(many.map((e) => e.id));
  });

  it('deletes a published batch in the query that reads the next: one query per batch', async () => {
    const ids = await enqueueVersions('ent-deletes', 1, 3);
    let outboxQueries = 0;
    // Counts the relay's queries on its own connection (which it destroys when it stops).
    const counted = poolSeeing((client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as { query: unknown }).query = (...args: unknown[]) => {
        if (typeof args[0] === 'string' && /"\w+"\.outbox/.test(args[0])) outboxQueries++;
        return query(...args);
      };
    });
    const relay = startOutboxRelay({ pool: counted, nc: h.bus.nc, namespace: h.namespace, source: SOURCE, pollIntervalMs: 3_600_000, batchSize: 1 });
    try {
      await waitUntil(async () => {
        const { rows } = await h.pool.query('select count(*)::int as n from outbox where id = any($1::uuid[])', [ids]);
        return rows[0].n === 0;
      });
    } finally {
      await relay.stop();
    }
    // Three batches of one: three reads, and a fourth that deletes the last and finds nothing.
    expect(outboxQueries).toBe(4);
  });

  it('keeps one plan for its read-and-delete statement, whatever the size of the batch it deletes', async () => {
    // Batches of 1 to 3 rows, as events come under light load, over an outbox with history; its
    // statistics taken while a backlog was still unpublished.
    await sql`
      insert into outbox (id, producer, event_type, subject, tenant_id, aggregate_id, data_type, payload)
      select gen_random_uuid(), 'ledger', 'old', 'old', 'tenant-a', 'old-' || g, 'old', '\\x' from generate_series(1, 5000) g`.execute(h.db);
    await sql`analyze outbox`.execute(h.db);
    await sql`delete from outbox`.execute(h.db);
    let relayClient: pg.PoolClient | undefined;
    const watched = poolSeeing((client) => (relayClient = client));
    const relay = startOutboxRelay({ pool: watched, nc: h.bus.nc, namespace: h.namespace, source: SOURCE, pollIntervalMs: 3_600_000, batchSize: 3 });
    let plans: { generic_plans: number; custom_plans: number }[];
    try {
      for (let burst = 1; burst <= 24; burst++) {
        const ids = await enqueueVersions(`ent-plans-${burst}`, 1, 1 + (burst % 3));
        await waitUntil(async () => {
          const { rows } = await h.pool.query('select count(*)::int as n from outbox where id = any($1::uuid[])', [ids]);
          return rows[0].n === 0;
        });
      }
      ({ rows: plans } = await relayClient!.query(`select generic_plans::int, custom_plans::int from pg_prepared_statements where statement like '%delete from "%".outbox where%select seqs from published%'`));
    } finally {
      await relay.stop();
    }
    expect(plans).toHaveLength(1);
    expect(plans[0]!.generic_plans).toBeGreaterThan(plans[0]!.custom_plans);
  });

  it('keeps one index, the key the relay reads and deletes by: seq', async () => {
    const { rows } = await h.pool.query<{ indexname: string; indexdef: string }>(
      'select indexname, indexdef from pg_indexes where schemaname = $1 and tablename = $2 order by indexname',
      [SCHEMA, 'outbox'],
    );
    expect(rows.map((r) => r.indexname)).toEqual(['outbox_pkey']);
    expect(rows[0]!.indexdef).toMatch(/^CREATE UNIQUE INDEX outbox_pkey .* \(seq\)$/);
    // The relay's read takes the oldest rows through it.
    const plan = await h.pool.query<{ 'QUERY PLAN': string }>('explain select id from outbox where seq <> all($1::bigint[]) order by seq limit 500', [[]]);
    expect(plan.rows.map((r) => r['QUERY PLAN']).join('\n')).toMatch(/Index Scan using outbox_pkey/);
  });

  it('keeps the events it could not publish (no stream took them) and publishes them, in order, once a stream does', async () => {
    const failures: Array<{ msg: string; err?: { type?: string; message?: string } }> = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => void failures.push(JSON.parse(line)) });
    await h.bus.jsm.streams.delete(streamName(h.namespace, 'LEDGER'));
    let relay: OutboxRelay | undefined;
    try {
      const ids = await enqueueVersions('ent-no-stream', 1, 5);
      relay = startOutboxRelay({ pool: h.pool, nc: h.bus.nc, namespace: h.namespace, source: SOURCE, pollIntervalMs: 50, logger });
      await waitUntil(() => failures.length >= 2);
      expect(failures[0]).toMatchObject({ msg: 'outbox relay cycle failed', err: { type: 'NoRespondersError' } });
      expect(relay.stats().published).toBe(0);
      expect(await unpublished()).toBe(5);

      await declareStreams(h.bus.jsm, { namespace: h.namespace });
      await relay.flush();
      expect(relay.stats()).toMatchObject({ published: 5, duplicates: 0 });
      const stored = (await readStream(h.bus, h.namespace, 'LEDGER')).filter((m) => m.headers?.get(CE.subject) === 'ent-no-stream');
      expect(stored.map((m) => m.headers?.get(CE.id))).toEqual(ids);
    } finally {
      await relay?.stop();
      await declareStreams(h.bus.jsm, { namespace: h.namespace });
    }
  });

  it('wakes on NOTIFY rather than waiting for the poll', async () => {
    // A poll interval far beyond the test timeout: only the notification can get the event out.
    const relay = startOutboxRelay({ pool: h.pool, nc: h.bus.nc, namespace: h.namespace, source: SOURCE, pollIntervalMs: 3_600_000 });
    try {
      await waitUntil(() => relay.isLeader());
      const [id] = await enqueueVersions('ent-notify', 1, 1);
      await waitUntil(async () => {
        const { rows } = await h.pool.query('select 1 from outbox where id = $1', [id]);
        return rows.length === 0;
      });
      expect(relay.stats().published).toBe(1);
    } finally {
      await relay.stop();
    }
  });
});

/** An outbox row as an earlier release wrote it, straight into the table `db` reaches; its id. */
async function insertOutboxRow(db: Kysely<OutboxTables>, event: string, publishedAt: Date | null = null): Promise<string> {
  const { rows } = await sql<{ id: string }>`
    insert into outbox (id, producer, event_type, subject, tenant_id, aggregate_id, data_type, payload, published_at)
    values (${uuidv7()}, 'ledger', 'punchcard.ledger.session_consumed', 'punchcard.ledger.session_consumed.tenant-a', 'tenant-a', ${event},
            ${StringValueSchema.typeName}, ${toBinary(StringValueSchema, create(StringValueSchema, { value: event }))}, ${publishedAt})
    returning id`.execute(db);
  return rows[0]!.id;
}

/**
 * This release's relay takes over `pool`'s outbox: it publishes what is there, which must leave the
 * stats given and an empty outbox. Returns the ids the LEDGER stream holds of events about aggregates
 * whose id starts with `prefix`.
 */
async function relayTakesOver(pool: pg.Pool, stats: Partial<OutboxRelayStats>, prefix: string): Promise<string[]> {
  const relay = startOutboxRelay({ pool, nc: h.bus.nc, namespace: h.namespace, source: SOURCE, pollIntervalMs: 50 });
  try {
    await relay.flush();
    expect(relay.stats()).toMatchObject(stats);
  } finally {
    await relay.stop();
  }
  expect((await pool.query('select id from outbox')).rows).toEqual([]);
  const inStream = (await readStream(h.bus, h.namespace, 'LEDGER')).filter((m) => (m.headers?.get(CE.subject) ?? '').startsWith(prefix));
  return inStream.map((m) => m.headers?.get(CE.id) ?? '');
}

/** Runs `test` against a schema of its own (an earlier release's outbox, migrated by the test), then closes its pool. */
async function inOwnSchema(schema: string, test: (db: Kysely<OutboxTables>, pool: pg.Pool) => Promise<void>): Promise<void> {
  await ensureSchema(h.database.url, schema);
  const { db, pool, close } = createDb<OutboxTables>({ url: h.database.url, schema, poolMax: 2 });
  try {
    await test(db, pool);
  } finally {
    await close();
  }
}

describe('outboxDeletedOnPublishMigration', () => {
  it("drops the rows an earlier relay marked published, keeps those still owed, and leaves the previous release's relay working", async () => {
    const schema = 'svc_upgrade';
    await inOwnSchema(schema, async (db, pool) => {
      const before = { '0001_outbox': outboxMigration, '0002_outbox_seq_not_unique': outboxSeqNotUniqueMigration };
      await migrateToLatest(db, schema, before);
      await insertOutboxRow(db, 'ent-upgrade-published', new Date());
      const owed = await insertOutboxRow(db, 'ent-upgrade-owed');

      await migrateToLatest(db, schema, { ...before, '0003_outbox_deleted_on_publish': outboxDeletedOnPublishMigration });
      expect((await pool.query<{ id: string }>('select id from outbox')).rows.map((r) => r.id)).toEqual([owed]);

      // During the rollout the previous release's relay may still lead: it reads the rows not marked,
      // publishes them and marks them, as it always did.
      const { rows } = await pool.query<OutboxRow>('select * from outbox where published_at is null order by seq limit 500');
      expect(rows.map((r) => r.id)).toEqual([owed]);
      expect((await publishOutboxRow(requestingPublisher(h.bus.js), h.namespace, SOURCE, rows[0]!)).duplicate).toBe(false);
      await pool.query('update outbox set published_at = now() where id = any($1::uuid[])', [[owed]]);

      // This release's relay takes over: the marked row goes out again, JetStream drops it, and it is deleted.
      expect(await relayTakesOver(pool, { published: 0, duplicates: 1 }, 'ent-upgrade-')).toEqual([owed]);
    });
  });
});

describe('outboxKeyedBySeqMigration', () => {
  it("keeps the rows still owed, which this release's relay publishes and deletes by seq, and leaves the previous release's relay working", async () => {
    const schema = 'svc_keyed_by_seq';
    await inOwnSchema(schema, async (db, pool) => {
      const before = {
        '0001_outbox': outboxMigration,
        '0002_outbox_seq_not_unique': outboxSeqNotUniqueMigration,
        '0003_outbox_deleted_on_publish': outboxDeletedOnPublishMigration,
      };
      await migrateToLatest(db, schema, before);
      const first = await insertOutboxRow(db, 'ent-keyed-first');
      const second = await insertOutboxRow(db, 'ent-keyed-second');

      await migrateToLatest(db, schema, { ...before, '0004_outbox_keyed_by_seq': outboxKeyedBySeqMigration });
      const { rows: keys } = await pool.query<{ attname: string }>(
        `select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
         where i.indrelid = 'outbox'::regclass and i.indisprimary`,
      );
      expect(keys.map((k) => k.attname)).toEqual(['seq']);

      // During the rollout the previous release's relay may still lead: it reads by seq and deletes by id.
      const { rows } = await pool.query<OutboxRow>('select * from outbox where id <> all($1::uuid[]) order by seq limit 500', [[]]);
      expect(rows.map((r) => r.id)).toEqual([first, second]);
      expect((await publishOutboxRow(requestingPublisher(h.bus.js), h.namespace, SOURCE, rows[0]!)).duplicate).toBe(false);
      await pool.query('delete from outbox where id = any($1::uuid[])', [[first]]);

      // This release's relay takes over and publishes the rest, deleting by seq.
      expect(await relayTakesOver(pool, { published: 1, duplicates: 0 }, 'ent-keyed-')).toEqual([first, second]);
    });
  });
});

describe('enqueue', () => {
  /** Counts the statements a query builder sends (plugins see every one, raw SQL included). */
  const counting = () => countingStatements(h.db);

  /** Runs `check` while a connection listens on the relay's channel; `notified` gets each payload. */
  const withNotifications = async (check: (notified: string[]) => Promise<void>) => {
    const listener = await h.pool.connect();
    const notified: string[] = [];
    listener.on('notification', (n) => notified.push(n.payload ?? ''));
    await listener.query(`listen ${OUTBOX_CHANNEL}`);
    try {
      await check(notified);
    } finally {
      await listener.query(`unlisten ${OUTBOX_CHANNEL}`);
      listener.release();
    }
  };

  it('writes one event, or many, the relay wake-up and a write of the producer\'s in one statement, notified at commit only', async () => {
    await withNotifications(async (notified) => {
      const event = (v: number) => ({
        producer: 'ledger',
        event: 'session_consumed',
        tenantId: 'tenant-a',
        aggregateId: 'ent-one-statement',
        aggregateVersion: v,
        schema: StringValueSchema,
        message: { value: `#${v}` },
      });
      const one = counting();
      await inTransaction(one.db, async (tx) => {
        const before = one.statements();
        await enqueue(tx, event(1));
        expect(one.statements() - before).toBe(1);
      });
      await waitUntil(() => notified.length === 1);
      const many = counting();
      await inTransaction(many.db, async (tx) => {
        const before = many.statements();
        await enqueueMany(tx, [event(2), event(3), event(4)], {
          alongside: [
            (q) => q.insertInto('effects').values({ consumer: 'producer', event_id: 'e', aggregate_id: 'ent-one-statement', value: 'its own row' }),
            (q) => q.insertInto('effects').values({ consumer: 'producer', event_id: 'f', aggregate_id: 'ent-one-statement', value: 'another' }),
          ],
        });
        expect(many.statements() - before).toBe(1);
        await new Promise((r) => setTimeout(r, 100));
        expect(notified).toHaveLength(1);
      });
      await waitUntil(() => notified.length === 2);
      expect(notified).toEqual([SCHEMA, SCHEMA]);
      const { rows } = await h.pool.query<{ aggregate_version: string }>(
        "select aggregate_version from outbox where aggregate_id = 'ent-one-statement' order by seq",
      );
      expect(rows.map((r) => Number(r.aggregate_version))).toEqual([1, 2, 3, 4]);
      const own = await h.pool.query("select value from effects where aggregate_id = 'ent-one-statement'");
      expect(own.rows.map((r) => r.value).sort()).toEqual(['another', 'its own row']);
    });
  });

  it('a write alongside one event commits and rolls back with it', async () => {
    const write = (value: string) => ({
      alongside: (q: QueryCreator<any>) =>
        q.insertInto('effects').values({ consumer: 'producer', event_id: value, aggregate_id: 'ent-alongside', value }),
    });
    const input = { producer: 'ledger', event: 'session_consumed', tenantId: 'tenant-a', aggregateId: 'ent-alongside', schema: StringValueSchema, message: { value: 'x' } };
    const { id } = await inTransaction(h.db, (tx) => enqueue(tx, input, write('kept')));
    await expect(
      inTransaction(h.db, async (tx) => {
        await enqueue(tx, input, write('rolled back'));
        throw new Error('the state change failed');
      }),
    ).rejects.toThrow('the state change failed');
    const own = await h.pool.query("select value from effects where aggregate_id = 'ent-alongside'");
    expect(own.rows).toEqual([{ value: 'kept' }]);
    const events = await h.pool.query("select id from outbox where aggregate_id = 'ent-alongside'");
    expect(events.rows).toEqual([{ id }]);
  });

  it('writes alongside no events run alone, in one statement, and wake no relay', async () => {
    await withNotifications(async (notified) => {
      const c = counting();
      const written = await inTransaction(c.db, async (tx) => {
        const before = c.statements();
        const events = await enqueueMany(tx, [], {
          alongside: [
            (q) => q.insertInto('effects').values({ consumer: 'producer', event_id: 'g', aggregate_id: 'ent-no-events', value: 'first' }),
            (q) => q.insertInto('effects').values({ consumer: 'producer', event_id: 'h', aggregate_id: 'ent-no-events', value: 'second' }),
          ],
        });
        return { events, statements: c.statements() - before };
      });
      expect(written).toEqual({ events: [], statements: 1 });
      const own = await h.pool.query("select value from effects where aggregate_id = 'ent-no-events' order by value");
      expect(own.rows.map((r) => r.value)).toEqual(['first', 'second']);
      await inTransaction(c.db, async (tx) => {
        const before = c.statements();
        await enqueueMany(tx, []);
        expect(c.statements() - before).toBe(0);
      });
      await new Promise((r) => setTimeout(r, 100));
      expect(notified).toEqual([]);
    });
  });
});

async function waitUntil(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
