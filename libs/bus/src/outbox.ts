import { create, toBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import { PackedBytes, uuidv7, type Migration } from '@punchcard/db';
import { sql, type RawBuilder, type ColumnType, type Generated, type Kysely, type QueryCreator } from 'kysely';
import { eventSubject, eventType } from './names.js';
import { traceHeaders } from './trace.js';

/** NOTIFY channel; the payload is the schema whose outbox got rows. */
export const OUTBOX_CHANNEL = 'punchcard_outbox';

/** Add to a service's migrations so its own schema gets the `outbox` table. */
export const outboxMigration: Migration = {
  async up(db) {
    await db.schema
      .createTable('outbox')
      .addColumn('id', 'uuid', (c) => c.primaryKey())
      // Allocation order; the relay publishes in it.
      .addColumn('seq', 'bigserial', (c) => c.notNull().unique())
      .addColumn('producer', 'text', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('subject', 'text', (c) => c.notNull())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('aggregate_id', 'text', (c) => c.notNull())
      .addColumn('aggregate_version', 'bigint')
      .addColumn('data_type', 'text', (c) => c.notNull())
      .addColumn('payload', 'bytea', (c) => c.notNull())
      .addColumn('headers', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
      .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addColumn('published_at', 'timestamptz')
      .execute();
    await sql`create index outbox_unpublished on outbox (seq) where published_at is null`.execute(db);
    await sql`create index outbox_published_at on outbox (published_at) where published_at is not null`.execute(db);
  },
};

/**
 * Append after {@link outboxMigration}: `seq` is no longer unique. Its values come from its own
 * sequence and no read uses an index on it but the relay's partial one, while the unique index took
 * an entry on every insert and on every mark (a mark is no HOT update: `published_at` is in the
 * partial indexes' predicates).
 */
export const outboxSeqNotUniqueMigration: Migration = {
  async up(db) {
    await sql`alter table outbox drop constraint outbox_seq_key`.execute(db);
  },
};

/**
 * Append after {@link outboxSeqNotUniqueMigration}: the relay deletes a row once JetStream has acked
 * it, where it used to mark it published and housekeeping deleted it a week later. A mark was an
 * update that could not be HOT (`published_at` was in both partial indexes' predicates): a second
 * copy of the row with two index entries, then a delete, for every event. Rows already published
 * go now, and the relay reads what is left in `seq` order. `published_at` itself stays, unused by
 * this code, so that the previous release's relay keeps working against the migrated schema during
 * a rollout and after a rollback (deploy/README: expand now, contract in a later release): rows it
 * marks meanwhile are published again by this release's relay, dropped by JetStream or by the
 * consumers' inboxes, and deleted.
 */
export const outboxDeletedOnPublishMigration: Migration = {
  async up(db) {
    await sql`delete from outbox where published_at is not null`.execute(db);
    await sql`create index outbox_seq on outbox (seq)`.execute(db);
    await sql`drop index outbox_unpublished`.execute(db);
    await sql`drop index outbox_published_at`.execute(db);
  },
};

/**
 * Append after {@link outboxDeletedOnPublishMigration}: rows are keyed by `seq`, the order the relay
 * reads them in and now deletes them by, and the primary key on `id` goes: one index entry fewer for
 * every event (four per expiry in the expiry sweep; bench/JOURNAL.md, 7 December from 19:03). The
 * event's id stays in its column: it is the message id JetStream deduplicates by. During a rollout
 * the previous release's relay deletes by id without an index, a scan of what is still unpublished.
 */
export const outboxKeyedBySeqMigration: Migration = {
  async up(db) {
    await sql`alter table outbox drop constraint outbox_pkey`.execute(db);
    await sql`drop index outbox_seq`.execute(db);
    await sql`alter table outbox add constraint outbox_pkey primary key (seq)`.execute(db);
  },
};

export interface OutboxTable {
  id: string;
  seq: Generated<bigint | string>;
  producer: string;
  event_type: string;
  /** Namespace-free: the relay adds its namespace when it publishes. */
  subject: string;
  tenant_id: string;
  aggregate_id: string;
  aggregate_version: ColumnType<bigint | string | null, number | null | undefined, never>;
  /** Full protobuf type name of the payload. */
  data_type: string;
  payload: Uint8Array;
  /** Trace context (`traceparent`, `tracestate`) and producer headers, copied onto the message. */
  headers: ColumnType<Record<string, string>, string, never>;
  created_at: ColumnType<Date, Date | undefined, never>;
}

export interface OutboxTables {
  outbox: OutboxTable;
}

/** One event as a producer describes it (see {@link enqueue}); {@link publishEvent} takes the same. */
export interface EventInput<S extends DescMessage> {
  /** The producer's token, which picks the stream: `ledger`, `catalogue`, `expiry`, `revenue`, `billing`, `visits`. */
  producer: string;
  /** snake_case event name, e.g. `session_consumed`. */
  event: string;
  tenantId: string;
  /** The entity the event is about (e.g. the entitlement id): CloudEvents `subject`. */
  aggregateId: string;
  /** The entity's version after this change (1, 2, 3 …); consumers apply an entity's events in this order. */
  aggregateVersion?: number;
  schema: S;
  message: MessageInitShape<S>;
  /** Default a new UUIDv7 (time-ordered: `uuidv7` in @punchcard/db); a sender that retries a publish must reuse its id so the retry is deduplicated. */
  id?: string;
  /** Event time (CloudEvents `time`); default now. Pass the service's clock. */
  time?: Date;
  /** Extra message headers (lower-case names). */
  headers?: Record<string, string>;
}

/**
 * An event for the outbox: as {@link EventInput}, or with its payload already encoded
 * (`toBinary(schema, message)`), for a producer that has those bytes at hand anyway.
 */
export type EnqueueInput<S extends DescMessage> = EventInput<S> | (Omit<EventInput<S>, 'message'> & { payload: Uint8Array });

export interface EnqueuedEvent {
  id: string;
  /** Namespace-free subject. */
  subject: string;
  type: string;
}

/** A write of the producer's own: an insert, update or delete query built on the given creator. */
export type OwnWrite = Parameters<QueryCreator<any>['with']>[1];

/**
 * An {@link OwnWrite} in SQL (a data-modifying statement kysely's builders do not express, such as an
 * update from `jsonb_to_recordset`): kysely compiles a common table expression from any operation
 * node, though its types admit only its builders. `build` runs when the statement is built.
 */
export function sqlWrite(build: () => RawBuilder<unknown>): OwnWrite {
  // Parenthesised as kysely does its own builders' statements there.
  return (() => sql`(${build()})`) as unknown as OwnWrite;
}

export interface EnqueueOptions {
  /**
   * Writes of the producer's own (insert, update or delete queries) made in the same statement as
   * the outbox rows, typically the rows the event is about: one round trip instead of several. Each
   * runs as a common table expression, so none sees the others' rows nor the outbox rows (an AFTER
   * trigger, which runs when the statement is done, sees them all). They run when there are no
   * events too, alone in one statement.
   */
  alongside?: OwnWrite | readonly OwnWrite[];
}

/**
 * Writes an event to the outbox inside the caller's transaction, so it is published if and only if
 * the state change commits, and wakes the relay on commit. Captures the active trace context.
 */
export async function enqueue<S extends DescMessage>(tx: Kysely<any>, input: EnqueueInput<S>, options: EnqueueOptions = {}): Promise<EnqueuedEvent> {
  return (await enqueueMany(tx, [input], options))[0]!;
}

/**
 * {@link enqueue} for many events at once (a batch operation): the same rows, in the given order (the
 * relay publishes them in it), written by one statement and with one wake-up for the relay.
 */
export async function enqueueMany<S extends DescMessage>(
  tx: Kysely<any>,
  inputs: readonly EnqueueInput<S>[],
  options: EnqueueOptions = {},
): Promise<EnqueuedEvent[]> {
  const own = options.alongside === undefined ? [] : typeof options.alongside === 'function' ? [options.alongside] : options.alongside;
  const writes = own.reduce<QueryCreator<OutboxTables>>((q, write, i) => q.with(`alongside_${i}`, write), tx as Kysely<OutboxTables>);
  if (inputs.length === 0) {
    if (own.length > 0) await writes.selectNoFrom(sql<number>`1`.as('written')).execute();
    return [];
  }
  // One trace context for the lot: they are written by the same operation.
  const trace = traceHeaders();
  const events: EnqueuedEvent[] = [];
  const rows = inputs.map((input) => {
    if (input.aggregateVersion !== undefined && !(Number.isSafeInteger(input.aggregateVersion) && input.aggregateVersion > 0)) {
      throw new Error(`aggregate_version must be a positive integer, got ${input.aggregateVersion}`);
    }
    const id = input.id ?? uuidv7();
    const subject = eventSubject(input.producer, input.event, input.tenantId);
    const type = eventType(input.producer, input.event);
    events.push({ id, subject, type });
    return {
      id,
      producer: input.producer,
      event_type: type,
      subject,
      tenant_id: input.tenantId,
      aggregate_id: input.aggregateId,
      aggregate_version: input.aggregateVersion ?? null,
      data_type: input.schema.typeName,
      payload: 'payload' in input ? input.payload : toBinary(input.schema, create(input.schema, input.message)),
      headers: { ...lowerCaseKeys(input.headers ?? {}), ...trace },
      created_at: input.time ?? new Date(),
    };
  });
  // The rows and the NOTIFY that wakes the relay go in one statement (one round trip less). The
  // notification is delivered at commit, and only then; several in one transaction fold into one.
  const single = rows.length === 1 ? rows[0]! : undefined;
  // The rows without their payloads, each saying where its payload sits in the packed parameter.
  const payloads = new PackedBytes();
  const packedRows = single
    ? ''
    : JSON.stringify(
        rows.map((row) => {
          const { at, length } = payloads.add(row.payload);
          // JSON.stringify leaves out a key whose value is undefined. Object.assign, not a leading spread (see receive in consumer.ts).
          return Object.assign({}, row, { payload: undefined, payload_at: at, payload_length: length });
        }),
      );
  await writes
    .with('queued', (q) =>
      single
        ? q.insertInto('outbox').values({ ...single, payload: Buffer.from(single.payload.buffer, single.payload.byteOffset, single.payload.byteLength), headers: JSON.stringify(single.headers) }).returning('id')
        : q
            .insertInto('outbox')
            .columns(['id', 'producer', 'event_type', 'subject', 'tenant_id', 'aggregate_id', 'aggregate_version', 'data_type', 'payload', 'headers', 'created_at'])
            // One jsonb parameter rather than a VALUES list: the statement's text (and so its prepared
            // plan) is the same whatever the number of rows, and there is no bind-parameter limit. The
            // payloads go apart from it, packed into one binary parameter (see PackedBytes).
            .expression(
              sql`select v.id, v.producer, v.event_type, v.subject, v.tenant_id, v.aggregate_id, v.aggregate_version, v.data_type,
                  substring(${payloads.bytes()}::bytea from v.payload_at for v.payload_length), v.headers, v.created_at
                from rows from (jsonb_to_recordset(${packedRows}::jsonb) as (
                  id uuid, producer text, event_type text, subject text, tenant_id text, aggregate_id text, aggregate_version bigint,
                  data_type text, payload_at int, payload_length int, headers jsonb, created_at timestamptz)) with ordinality as v
                order by v.ordinality`,
            )
            .returning('id'),
    )
    .selectNoFrom(sql<string>`pg_notify(${OUTBOX_CHANNEL}, current_schema())`.as('notified'))
    .execute();
  return events;
}

function lowerCaseKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k.toLowerCase(), v]));
}
