import type { PubAck } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type pg from 'pg';
import { pino, type Logger } from 'pino';
import { publishEnvelope } from './publish.js';
import { OUTBOX_CHANNEL } from './outbox.js';
import { ackRoutingPublisher, type StreamPublisher } from './stream-publisher.js';
import { contextFromHeaders } from './trace.js';

export interface OutboxRelayOptions {
  /**
   * The service's pool (connections with `search_path` = its schema, as `createDb` makes them). The
   * leader keeps one connection for itself: the advisory lock, LISTEN, and the outbox queries.
   */
  pool: pg.Pool;
  /** The bus's connection: the relay publishes on it and receives the streams' acks under one subscription of its own. */
  nc: NatsConnection;
  /** '' in production; a `testNamespace()` in tests. */
  namespace: string;
  /** CloudEvents `source`, e.g. `/punchcard/entitlement-ledger`. */
  source: string;
  logger?: Logger;
  /** Poll fallback when no NOTIFY arrives, and how often a standby relay tries to take over; default 1000. */
  pollIntervalMs?: number;
  /** Rows per query, published together; default 500. */
  batchSize?: number;
  /** How long a publish waits for the stream's ack; default 5000. */
  publishTimeoutMs?: number;
}

export interface OutboxRelayStats {
  /** Events stored by JetStream for the first time by this relay. */
  published: number;
  /** Publishes JetStream recognised as duplicates (`Nats-Msg-Id` seen in its window). */
  duplicates: number;
  /** Times this relay became the leader. */
  leaderships: number;
}

export interface OutboxRelay {
  /** Resolves when every row committed so far is published (by whichever relay leads); rejects after `timeoutMs`. */
  flush(timeoutMs?: number): Promise<void>;
  /** Stops publishing and releases the lock (a standby takes over). */
  stop(): Promise<void>;
  isLeader(): boolean;
  stats(): OutboxRelayStats;
}

interface Leadership {
  client: pg.PoolClient;
  table: string;
  lost: boolean;
  /** The `seq` of rows published and acked, to be deleted by the next query. */
  acked: string[];
  onError: (err: Error) => void;
}

/** An outbox row as the relay reads it (int8 columns as pg returns them: bigint or string). */
export interface OutboxRow {
  /** The row's key (int8, as pg returns it: a string unless the pool parses it). */
  seq: bigint | string;
  id: string;
  event_type: string;
  subject: string;
  tenant_id: string;
  aggregate_id: string;
  aggregate_version: bigint | string | number | null;
  data_type: string;
  payload: Uint8Array;
  headers: Record<string, string> | null;
  created_at: Date;
}

/** Publishes one outbox row as its event, continuing the trace stored with it. */
export function publishOutboxRow(publisher: StreamPublisher, namespace: string, source: string, row: OutboxRow): Promise<PubAck> {
  const headers = row.headers ?? {};
  return publishEnvelope(publisher, {
    namespace,
    subject: row.subject,
    envelope: {
      id: row.id,
      source,
      type: row.event_type,
      time: row.created_at,
      tenantId: row.tenant_id,
      aggregateId: row.aggregate_id,
      aggregateVersion: row.aggregate_version === null ? undefined : Number(row.aggregate_version),
      dataType: row.data_type,
    },
    payload: row.payload,
    headers,
    parent: contextFromHeaders(headers),
  });
}

/** Session advisory lock (two int4 keys): the constant names the purpose, the second the schema. */
const LOCK_SQL = `select pg_try_advisory_lock(hashtext('punchcard.outbox'), hashtext(current_schema())) as locked, current_schema() as schema`;
const IDENTIFIER = /^[a-z_][a-z0-9_$]*$/;
/** How long published rows may stay in the outbox when no further events arrive to carry their delete. */
const DELETE_DELAY_MS = 20;

/**
 * Publishes the outbox of the pool's schema in `seq` order with `Nats-Msg-Id` = event id, deleting
 * rows once JetStream acks them (with the next read, or alone after DELETE_DELAY_MS): the stream is
 * the record of what was published. Any number of relays may run against one schema: one holds a
 * session advisory lock on its own connection and publishes; the others stand by and take over when
 * that connection ends. A crash between publish and delete republishes the rows; JetStream drops
 * them as duplicates inside the stream's duplicate window and consumers' inboxes drop them after it.
 */
export function startOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const log = options.logger ?? pino({ level: 'silent' });
  const pollMs = options.pollIntervalMs ?? 1000;
  const batchSize = options.batchSize ?? 500;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new Error(`outbox relay batchSize must be a positive integer, got ${batchSize}`);
  const stats: OutboxRelayStats = { published: 0, duplicates: 0, leaderships: 0 };
  const publisher = ackRoutingPublisher(options.nc, options.publishTimeoutMs ?? 5000);
  let leader: Leadership | undefined;
  let stopped = false;
  let wakePending = false;
  let wakeWaiter: (() => void) | undefined;

  const wake = () => {
    wakePending = true;
    wakeWaiter?.();
  };
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (wakePending || stopped) return resolve();
      const done = () => {
        clearTimeout(timer);
        wakeWaiter = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      wakeWaiter = done;
    });

  async function acquire(): Promise<Leadership | undefined> {
    const client = await options.pool.connect();
    const held: Leadership = { client, table: '', lost: false, acked: [], onError: () => undefined };
    held.onError = (err: Error) => {
      held.lost = true;
      log.warn({ err }, 'outbox relay lost its lock connection');
      wake();
    };
    client.on('error', held.onError);
    try {
      const { rows } = await client.query<{ locked: boolean; schema: string }>(LOCK_SQL);
      const row = rows[0];
      if (!row?.locked) {
        client.removeListener('error', held.onError);
        client.release();
        return undefined;
      }
      if (!IDENTIFIER.test(row.schema)) throw new Error(`outbox schema ${JSON.stringify(row.schema)} is not a plain identifier`);
      held.table = `"${row.schema}".outbox`;
      client.on('notification', (n) => {
        if (n.channel === OUTBOX_CHANNEL && n.payload === row.schema) wake();
      });
      await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
      stats.leaderships++;
      log.info({ schema: row.schema }, 'outbox relay is the leader');
      return held;
    } catch (err) {
      // Destroy rather than return to the pool: it may hold the lock.
      client.release(err as Error);
      throw err;
    }
  }

  async function resign(held: Leadership): Promise<void> {
    if (leader === held) leader = undefined;
    if (!held.lost && held.acked.length > 0) {
      // Rows left would only be published again (and dropped as duplicates); not worth failing over.
      await held.client.query(`delete from ${held.table} where seq = any($1::bigint[])`, [held.acked]).catch(() => undefined);
    }
    if (!held.lost) {
      // Unlock before closing: the session ends asynchronously, and a standby should not wait for it.
      await held.client.query('select pg_advisory_unlock_all()').catch(() => undefined);
    }
    held.client.release(true);
  }

  /**
   * Publishes one batch; returns how many rows it read. The rows are sent at once, in `seq` order on
   * the one connection (JetStream stores them in that order), and their acks awaited in order: a
   * batch costs one round trip instead of one per row. Rows are deleted up to the first failure; any
   * after it are published again next time (JetStream drops those it stored as duplicates), so only
   * a failed publish can let later rows overtake it, as consumers already allow (version gaps wait).
   */
  async function drain(held: Leadership): Promise<number> {
    wakePending = false;
    // Deletes the previous batch in the statement that reads the next one: a round trip per batch
    // instead of two. The read's snapshot predates the delete, hence the explicit exclusion. Neither
    // the keys (jsonb, read into an array once) nor the limit (in the text) show Postgres a size, so it
    // keeps one generic plan: with an array parameter and a `limit $1`, plans for the known sizes
    // looked cheaper, and the statement was planned again for most batches.
    const { rows } = await held.client.query<OutboxRow>(
      `with published as (select array(select v::bigint from jsonb_array_elements_text($1::jsonb) v) as seqs),
         deleted as (delete from ${held.table} where seq = any((select seqs from published)::bigint[]))
       select seq, id, event_type, subject, tenant_id, aggregate_id, aggregate_version, data_type, payload, headers, created_at
         from ${held.table} where seq <> all((select seqs from published)::bigint[]) order by seq limit ${batchSize}`,
      [JSON.stringify(held.acked)],
    );
    held.acked = [];
    if (held.lost || stopped) return rows.length;
    const publishes = rows.map((row) => publishOutboxRow(publisher, options.namespace, options.source, row));
    const acked: string[] = [];
    let failure: unknown;
    for (const [i, publish] of publishes.entries()) {
      try {
        const ack = await publish;
        if (ack.duplicate) stats.duplicates++;
        else stats.published++;
        acked.push(String(rows[i]!.seq));
      } catch (err) {
        failure = err;
        break;
      }
    }
    if (failure !== undefined) await Promise.allSettled(publishes);
    held.acked = acked;
    if (failure !== undefined) throw failure;
    return rows.length;
  }

  async function loop(): Promise<void> {
    while (!stopped) {
      try {
        if (!leader) {
          leader = await acquire();
          if (!leader) {
            await sleep(pollMs);
            wakePending = false;
            continue;
          }
        }
        if (leader.lost) {
          await resign(leader);
          continue;
        }
        const read = await drain(leader);
        if (read < batchSize) await sleep(leader.acked.length > 0 ? DELETE_DELAY_MS : pollMs);
      } catch (err) {
        log.error({ err }, 'outbox relay cycle failed');
        if (leader?.lost) await resign(leader);
        await sleep(pollMs);
        wakePending = false;
      }
    }
    if (leader) await resign(leader);
    publisher.close();
  }

  const running = loop();

  return {
    async flush(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        wake();
        const { rows } = await options.pool.query<{ n: number }>(
          'select count(*)::int as n from outbox',
        );
        const pending = rows[0]?.n ?? 0;
        if (pending === 0) return;
        if (Date.now() > deadline) throw new Error(`outbox still has ${pending} unpublished events after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop() {
      stopped = true;
      wakeWaiter?.();
      await running;
    },
    isLeader: () => leader !== undefined && !leader.lost,
    stats: () => ({ ...stats }),
  };
}
