import { createDb, ensureSchema, migrateToLatest } from '@punchcard/db';
import { createTestDatabase, readStream as readStoredMessages, testNats, testNamespace, type TestDatabase } from '@punchcard/testing';
import type { JsMsg } from '@nats-io/jetstream';
import { sql, type Kysely } from 'kysely';
import type pg from 'pg';
import { connectBus, declareStreams, deleteStreams, inboxMigration, outboxMigration, outboxSeqNotUniqueMigration, outboxDeletedOnPublishMigration, outboxKeyedBySeqMigration, streamName, type Bus, type ConsumeOutcome, type StreamKey } from '../src/index.js';

export const SCHEMA = 'svc';

/** What a test consumer does: one row per application, so a double application shows as two rows. */
export interface EffectsTable {
  id: import('kysely').Generated<number>;
  consumer: string;
  event_id: string;
  aggregate_id: string;
  aggregate_version: number | null;
  value: string;
}

export interface TestDb {
  effects: EffectsTable;
}

export interface Harness {
  database: TestDatabase;
  db: Kysely<TestDb>;
  pool: pg.Pool;
  bus: Bus;
  namespace: string;
  close(): Promise<void>;
}

/** A fresh database with outbox, inbox and effects tables in one service schema, and a fresh bus namespace. */
export async function harness(label: string): Promise<Harness> {
  const database = await createTestDatabase(`bus_${label}`);
  await ensureSchema(database.url, SCHEMA);
  const { db, pool, close } = createDb<TestDb>({ url: database.url, schema: SCHEMA, poolMax: 12 });
  await migrateToLatest(db, SCHEMA, {
    '0001_outbox': outboxMigration,
    '0002_inbox': inboxMigration,
    '0003_effects': {
      async up(d) {
        await d.schema
          .createTable('effects')
          .addColumn('id', 'serial', (c) => c.primaryKey())
          .addColumn('consumer', 'text', (c) => c.notNull())
          .addColumn('event_id', 'text', (c) => c.notNull())
          .addColumn('aggregate_id', 'text', (c) => c.notNull())
          .addColumn('aggregate_version', 'integer')
          .addColumn('value', 'text', (c) => c.notNull())
          .execute();
      },
    },
    '0004_outbox_seq_not_unique': outboxSeqNotUniqueMigration,
    '0005_outbox_deleted_on_publish': outboxDeletedOnPublishMigration,
    '0006_outbox_keyed_by_seq': outboxKeyedBySeqMigration,
  });
  const namespace = testNamespace(label);
  const bus = await connectBus({ url: await testNats(), name: `bus-test-${label}` });
  await declareStreams(bus.jsm, { namespace });
  return {
    database,
    db,
    pool,
    bus,
    namespace,
    async close() {
      await deleteStreams(bus.jsm, namespace).catch(() => undefined);
      await bus.close();
      await close();
      await database.drop();
    },
  };
}

/** Rows of `effects` per event id for one consumer. */
export async function applicationsPerEvent(db: Kysely<TestDb>, consumer: string): Promise<Map<string, number>> {
  const rows = await db
    .selectFrom('effects')
    .select(['event_id', sql<number>`count(*)::int`.as('n')])
    .where('consumer', '=', consumer)
    .groupBy('event_id')
    .execute();
  return new Map(rows.map((r) => [r.event_id, r.n]));
}

/** Every message of a stream, in stream order, read with an ephemeral consumer. */
export function readStream(bus: Bus, namespace: string, key: StreamKey): Promise<JsMsg[]> {
  return readStoredMessages(bus.nc, streamName(namespace, key));
}

/** Collects consumer outcomes and waits for conditions on them. */
export class Outcomes {
  readonly all: ConsumeOutcome[] = [];
  private waiters: Array<() => void> = [];

  readonly record = (o: ConsumeOutcome): void => {
    this.all.push(o);
    for (const w of this.waiters) w();
  };

  count(outcome: ConsumeOutcome['outcome']): number {
    return this.all.filter((o) => o.outcome === outcome).length;
  }

  /** Resolves once `predicate` holds; rejects after `timeoutMs` with what was seen. */
  until(predicate: (all: ConsumeOutcome[]) => boolean, timeoutMs = 15_000): Promise<void> {
    if (predicate(this.all)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate(this.all)) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`timed out; outcomes so far: ${JSON.stringify(this.all.map((o) => [o.outcome, o.subject]))}`));
      }, timeoutMs);
      this.waiters.push(check);
    });
  }
}
