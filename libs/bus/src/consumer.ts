import { fromBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerConfig,
  type ConsumerMessages,
  type ConsumerUpdateConfig,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { headers as natsHeaders, nanos } from '@nats-io/nats-core';
import { context, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import { deleteOlderThan, inTransaction, pgErrorCode, type Migration } from '@punchcard/db';
import { sql, type ColumnType, type Kysely, type Transaction } from 'kysely';
import { pino, type Logger } from 'pino';
import { CE, CONTENT_TYPE, headerRecord, PROTOBUF_CONTENT_TYPE, typeNameOfDataSchema } from './cloudevents.js';
import { assertToken, deadLetterSubject, STREAMS, streamName, subjectMatches, withNamespace, withoutNamespace, type StreamKey } from './names.js';
import { busTracer, contextFromHeaders } from './trace.js';

/** Add to a consuming service's migrations: the ids of the events each consumer has applied. */
export const inboxMigration: Migration = {
  async up(db) {
    await db.schema
      .createTable('inbox')
      .addColumn('consumer', 'text', (c) => c.notNull())
      // Text, not uuid: inbound events (booking systems) bring their own ids.
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('subject', 'text', (c) => c.notNull())
      .addColumn('applied_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
      .addPrimaryKeyConstraint('inbox_pkey', ['consumer', 'event_id'])
      .execute();
    await db.schema.createIndex('inbox_applied_at').on('inbox').column('applied_at').execute();
  },
};

/**
 * Thrown by a handler that cannot apply the event yet (e.g. an entitlement's version 5 arrives before
 * 4): the transaction rolls back and the message is redelivered after `delayMs`.
 */
export class RetryLater extends Error {
  override readonly name = 'RetryLater';
  constructor(
    readonly reason: string,
    readonly delayMs: number,
  ) {
    super(`retry later (${delayMs} ms): ${reason}`);
  }
}

/** An event as a handler sees it. */
export interface ConsumedEvent<T> {
  id: string;
  /** CloudEvents type, `punchcard.<producer>.<event>`. */
  type: string;
  source: string;
  /** Namespace-free NATS subject, `punchcard.<producer>.<event>.<tenant>`. */
  subject: string;
  tenantId: string;
  time: Date;
  /** CloudEvents subject: the entity the event is about. */
  aggregateId: string;
  aggregateVersion: number | undefined;
  data: T;
  /** All message headers, lower-case names. */
  headers: Record<string, string>;
  deliveryCount: number;
  streamSequence: number;
  /**
   * The context of this event's process span (a child of the producer's). A per-event handler runs in
   * it; a batch handler runs what belongs to one event in it (`context.with`), so the events it
   * enqueues continue that event's trace.
   */
  traceContext: Context;
}

/** An event a batch handler cannot apply yet: it is redelivered after `delayMs`, as with {@link RetryLater}. */
export interface Deferral {
  eventId: string;
  reason: string;
  delayMs: number;
}

export type ConsumeOutcome =
  | { outcome: 'applied' | 'duplicate'; eventId: string; subject: string; deliveryCount: number }
  | { outcome: 'retry' | 'failed' | 'deadlettered'; eventId: string | undefined; subject: string; deliveryCount: number; reason: string }
  | { outcome: 'skipped'; eventId: string | undefined; subject: string; deliveryCount: number };

export interface ConsumerOptions<S extends DescMessage, DB> {
  db: Kysely<DB>;
  js: JetStreamClient;
  /** '' in production; a `testNamespace()` in tests. */
  namespace: string;
  stream: StreamKey;
  /** Durable consumer name, unique per consuming service and purpose, e.g. `revenue_ledger`; also the inbox key. */
  durable: string;
  /** Namespace-free subject filters, e.g. `['punchcard.ledger.session_consumed.*']`; default the whole stream. */
  filterSubjects?: readonly string[];
  /** Payload schema; with several, the one named by the message's `ce-dataschema`. */
  schema: S | readonly S[];
  /**
   * A message whose `ce-dataschema` names a payload type not among `schema`: `'deadletter'` (default)
   * or `'skip'` (acked unread), for a consumer of the whole stream that reads one kind of its events,
   * so a new event of that kind reaches it without a filter to keep in step with the producer.
   */
  otherPayloads?: 'deadletter' | 'skip';
  /**
   * Applies one event, in the transaction that records it in the inbox; throw `RetryLater` to wait for
   * an earlier event. Give this or `batchHandler`.
   */
  handler?: (tx: Transaction<DB>, event: ConsumedEvent<MessageShape<S>>) => Promise<void>;
  /**
   * Applies the new events among the messages at hand (up to `maxBatch`, in stream order, each id once,
   * duplicates already dropped by the inbox) in one transaction with their inbox rows. Returns the
   * events it could not apply yet and must have written nothing for: their inbox rows are removed and
   * they are redelivered after their delay. When it throws, the events are applied again one at a time
   * (a batch of one each), so a failing event is retried and dead-lettered on its own.
   */
  batchHandler?: (tx: Transaction<DB>, events: ConsumedEvent<MessageShape<S>>[]) => Promise<readonly Deferral[] | void>;
  /** Most events in one `batchHandler` transaction; default 250. */
  maxBatch?: number;
  /**
   * How long a batch may wait for more events, up to `maxBatch`, after its first has arrived; default
   * 0: whatever has arrived is taken. Fewer, larger transactions for a latency of at most this.
   */
  batchWaitMs?: number;
  /** Deliveries after which a failing event is dead-lettered; default 5. */
  maxDeliver?: number;
  /** Deliveries after which an event still answered with `RetryLater` is dead-lettered; default 100. */
  maxRetryLater?: number;
  /** Redelivery delay after a handler error; default 1 s doubling to 60 s. */
  retryDelayMs?: (deliveryCount: number) => number;
  /** Server-side ack wait; the consumer signals progress while a handler runs. Default 30 000. */
  ackWaitMs?: number;
  /** Messages pulled ahead; default 10, with a `batchHandler` `maxBatch`. */
  batch?: number;
  logger?: Logger;
  /** Called after each message is settled: metrics, and tests waiting for an effect. */
  onOutcome?: (outcome: ConsumeOutcome) => void;
}

export interface RunningConsumer {
  durable: string;
  stream: string;
  /** Stops pulling and waits for the messages in hand to settle. */
  stop(): Promise<void>;
}

/** Headers a dead-lettered message carries besides its original ones. */
export const DEADLETTER_HEADERS = {
  reason: 'punchcard-deadletter-reason',
  consumer: 'punchcard-deadletter-consumer',
  originalSubject: 'punchcard-original-subject',
  originalStream: 'punchcard-original-stream',
  originalSequence: 'punchcard-original-sequence',
  deliveryCount: 'punchcard-delivery-count',
  time: 'punchcard-deadletter-time',
} as const;

class PoisonMessage extends Error {
  override readonly name: string = 'PoisonMessage';
}

/** A well-formed event with a payload type the consumer does not read. */
class OtherPayload extends PoisonMessage {
  override readonly name = 'OtherPayload';
}

export function defaultRetryDelayMs(deliveryCount: number): number {
  return Math.min(60_000, 1000 * 2 ** Math.max(0, deliveryCount - 1));
}

/** A decoded message with its process span, on its way to being settled. */
interface InHand<T> {
  m: JsMsg;
  event: ConsumedEvent<T>;
  span: Span;
}

/**
 * A durable pull consumer with explicit acks that applies each event exactly once in effect: the inbox
 * row and the handler's writes commit together, so a redelivered event finds its id and is only acked.
 * Messages are handled in stream order, one at a time with `handler`, or with `batchHandler` as many
 * as have arrived in one transaction. Failures are redelivered with backoff; after `maxDeliver` (or a
 * malformed message, at once) the message is copied to the DEADLETTER stream with the reason and
 * terminated. The server never gives up on its own (`max_deliver` -1), so a crash in the last attempt
 * cannot drop a message. Acks follow the commit: a crash in between redelivers, and the inbox answers.
 */
export async function startConsumer<S extends DescMessage, DB>(options: ConsumerOptions<S, DB>): Promise<RunningConsumer> {
  type Event = ConsumedEvent<MessageShape<S>>;
  const log = (options.logger ?? pino({ level: 'silent' })).child({ consumer: options.durable });
  const { js, namespace, batchHandler } = options;
  if ((options.handler === undefined) === (batchHandler === undefined)) throw new Error(`consumer ${options.durable}: give handler or batchHandler, not both or neither`);
  const handler =
    options.handler ??
    // One event as a batch of one: a deferral is a RetryLater, which rolls back its inbox row.
    (async (tx: Transaction<DB>, event: Event) => {
      const deferral = ((await batchHandler!(tx, [event])) ?? []).find((d) => d.eventId === event.id);
      if (deferral) throw new RetryLater(deferral.reason, deferral.delayMs);
    });
  const durable = assertToken(options.durable, 'durable');
  const stream = streamName(namespace, options.stream);
  const maxDeliver = options.maxDeliver ?? 5;
  const maxRetryLater = options.maxRetryLater ?? 100;
  const retryDelayMs = options.retryDelayMs ?? defaultRetryDelayMs;
  const ackWaitMs = options.ackWaitMs ?? 30_000;
  const maxBatch = batchHandler ? Math.max(1, options.maxBatch ?? 250) : 1;
  const batchWaitMs = batchHandler ? Math.max(0, options.batchWaitMs ?? 0) : 0;
  const schemas: readonly S[] = Array.isArray(options.schema) ? options.schema : [options.schema as S];
  const filters = (options.filterSubjects ?? []).filter((f) => f !== STREAMS[options.stream]);

  const jsm = await js.jetstreamManager();
  const clientFilter = await ensureConsumer(jsm, stream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(ackWaitMs),
    max_deliver: -1,
    max_ack_pending: Math.max(1000, 4 * maxBatch),
  }, filters.map((f) => withNamespace(namespace, f)));

  const consumer = await js.consumers.get(stream, durable);
  const messages: ConsumerMessages = await consumer.consume({ max_messages: options.batch ?? (batchHandler ? maxBatch : 10) });
  const report = (o: ConsumeOutcome) => {
    try {
      options.onOutcome?.(o);
    } catch (err) {
      log.warn({ err }, 'onOutcome threw');
    }
  };
  /** Acks, naks and terms after the commit: a lost one (a closed connection) only means a redelivery the inbox answers. */
  const settle = (m: JsMsg, how: (m: JsMsg) => void) => {
    try {
      how(m);
    } catch (err) {
      log.warn({ err, subject: m.subject }, 'could not settle a message; it is redelivered after the ack wait');
    }
  };

  async function deadLetter(m: JsMsg, eventId: string | undefined, reason: string): Promise<void> {
    const h = natsHeaders();
    for (const [k, v] of Object.entries(headerRecord(m.headers))) {
      if (!k.startsWith('nats-')) h.set(k, v);
    }
    h.set(DEADLETTER_HEADERS.reason, headerValue(reason));
    h.set(DEADLETTER_HEADERS.consumer, durable);
    h.set(DEADLETTER_HEADERS.originalSubject, m.subject);
    h.set(DEADLETTER_HEADERS.originalStream, m.info.stream);
    h.set(DEADLETTER_HEADERS.originalSequence, String(m.seq));
    h.set(DEADLETTER_HEADERS.deliveryCount, String(m.info.deliveryCount));
    h.set(DEADLETTER_HEADERS.time, new Date().toISOString());
    const subject = withoutNamespace(namespace, m.subject);
    try {
      await js.publish(deadLetterSubject(namespace, durable), m.data, {
        headers: h,
        // A retry after a crash between this publish and the term is stored once.
        msgID: `${durable}:${m.info.stream}:${m.seq}`,
        expect: { streamName: streamName(namespace, 'DEADLETTER') },
      });
    } catch (err) {
      log.error({ err, subject, eventId }, 'dead-lettering failed; redelivering instead');
      settle(m, (x) => x.nak(retryDelayMs(m.info.deliveryCount)));
      report({ outcome: 'failed', eventId, subject, deliveryCount: m.info.deliveryCount, reason: `dead-letter failed: ${(err as Error).message}` });
      return;
    }
    // Plain term: a term reason needs nats-server 2.11; the reason travels in the dead letter.
    settle(m, (x) => x.term());
    log.error({ subject, eventId, reason, deliveryCount: m.info.deliveryCount }, 'event dead-lettered');
    report({ outcome: 'deadlettered', eventId, subject, deliveryCount: m.info.deliveryCount, reason });
  }

  /** Decodes a message and opens its process span; settles at once what no handler will see. */
  async function receive(m: JsMsg): Promise<InHand<MessageShape<S>> | undefined> {
    const subject = withoutNamespace(namespace, m.subject);
    const deliveryCount = m.info.deliveryCount;
    if (clientFilter && !clientFilter.some((f) => subjectMatches(f, m.subject))) {
      settle(m, (x) => x.ack());
      report({ outcome: 'skipped', eventId: undefined, subject, deliveryCount });
      return undefined;
    }
    const headers = headerRecord(m.headers);
    let decoded: Omit<Event, 'traceContext'>;
    try {
      decoded = decodeEvent(m, subject, headers, schemas);
    } catch (err) {
      if (err instanceof OtherPayload && options.otherPayloads === 'skip') {
        settle(m, (x) => x.ack());
        report({ outcome: 'skipped', eventId: headers[CE.id], subject, deliveryCount });
        return undefined;
      }
      await deadLetter(m, headers[CE.id], `malformed event: ${(err as Error).message}`);
      return undefined;
    }
    const parent = contextFromHeaders(headers);
    const span = busTracer().startSpan(
      `${subject} process`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          'messaging.system': 'nats',
          'messaging.operation.type': 'process',
          'messaging.destination.name': m.subject,
          'messaging.consumer.group.name': durable,
          'messaging.message.id': decoded.id,
          'messaging.nats.delivery_count': deliveryCount,
          'cloudevents.event_type': decoded.type,
        },
      },
      parent,
    );
    // Object.assign, not a leading spread: on Node 20's V8 a key after a leading spread gives every
    // object a hidden class of its own, made in the old generation.
    return { m, event: Object.assign({}, decoded, { traceContext: trace.setSpan(parent, span) }), span };
  }

  /** Settles a message whose event is to wait for another: later, or dead-lettered after `maxRetryLater`. */
  async function retryLater({ m, event, span }: InHand<MessageShape<S>>, reason: string, delayMs: number): Promise<void> {
    if (event.deliveryCount >= maxRetryLater) {
      const message = `still waiting after ${event.deliveryCount} deliveries: ${reason}`;
      span.setStatus({ code: SpanStatusCode.ERROR, message });
      await deadLetter(m, event.id, message);
      return;
    }
    settle(m, (x) => x.nak(Math.max(0, delayMs)));
    log.debug({ subject: event.subject, eventId: event.id, reason }, 'event deferred');
    report({ outcome: 'retry', eventId: event.id, subject: event.subject, deliveryCount: event.deliveryCount, reason });
  }

  /** One event in its own transaction (the per-event path, and a failed batch's fallback); ends its span. */
  async function applyOne(item: InHand<MessageShape<S>>): Promise<void> {
    const { m, event, span } = item;
    const { subject, deliveryCount } = event;
    try {
      const applied = await context.with(event.traceContext, () =>
        inTransaction(options.db, async (tx) => {
          const claimed = await sql<{ event_id: string }>`
            insert into inbox (consumer, event_id, subject) values (${durable}, ${event.id}, ${subject})
            on conflict do nothing returning event_id`.execute(tx);
          if (claimed.rows.length === 0) return false;
          await handler(tx, event);
          return true;
        }),
      );
      settle(m, (x) => x.ack());
      span.setAttribute('punchcard.inbox.duplicate', !applied);
      report({ outcome: applied ? 'applied' : 'duplicate', eventId: event.id, subject, deliveryCount });
    } catch (err) {
      span.recordException(err as Error);
      if (err instanceof RetryLater) {
        await retryLater(item, err.reason, err.delayMs);
        return;
      }
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      const reason = `handler failed on delivery ${deliveryCount} of ${maxDeliver}: ${(err as Error).message}`;
      // An outage of the database is no fault of the event: wait it out rather than dead-letter.
      if (deliveryCount >= maxDeliver && !isTransient(err)) {
        await deadLetter(m, event.id, reason);
      } else {
        settle(m, (x) => x.nak(retryDelayMs(deliveryCount)));
        log.warn({ err, subject, eventId: event.id, deliveryCount }, 'event handler failed; redelivering');
        report({ outcome: 'failed', eventId: event.id, subject, deliveryCount, reason });
      }
    } finally {
      span.end();
    }
  }

  /**
   * Several events in one transaction: one inbox insert claims the new ids, the batch handler applies
   * them, the inbox rows of deferred events go again. If anything throws, each event is applied on its
   * own instead, so one bad event neither holds back nor dead-letters the others.
   */
  async function applyBatch(items: InHand<MessageShape<S>>[]): Promise<void> {
    const first = new Map<string, InHand<MessageShape<S>>>();
    for (const item of items) if (!first.has(item.event.id)) first.set(item.event.id, item);
    const unique = [...first.values()];
    const batchSpan = busTracer().startSpan(`${options.stream} process`, {
      kind: SpanKind.CONSUMER,
      attributes: {
        'messaging.system': 'nats',
        'messaging.operation.type': 'process',
        'messaging.destination.name': stream,
        'messaging.consumer.group.name': durable,
        'messaging.batch.message_count': items.length,
      },
      links: items.map((i) => ({ context: i.span.spanContext() })),
    });
    let outcome: { claimed: Set<string>; deferred: Map<string, Deferral> };
    try {
      outcome = await context.with(trace.setSpan(context.active(), batchSpan), () =>
        inTransaction(options.db, async (tx) => {
          const ids = unique.map((i) => i.event.id);
          const { rows } = await sql<{ event_id: string }>`
            insert into inbox (consumer, event_id, subject)
            select ${durable}, e.id, e.subject from unnest(${ids}::text[], ${unique.map((i) => i.event.subject)}::text[]) as e(id, subject)
            on conflict do nothing returning event_id`.execute(tx);
          const claimed = new Set(rows.map((r) => r.event_id));
          const fresh = unique.filter((i) => claimed.has(i.event.id)).map((i) => i.event);
          const deferred = new Map<string, Deferral>();
          if (fresh.length === 0) return { claimed, deferred };
          for (const d of (await batchHandler!(tx, fresh)) ?? []) {
            if (!claimed.has(d.eventId)) throw new Error(`batch handler deferred ${d.eventId}, which is not one of its events`);
            deferred.set(d.eventId, d);
          }
          if (deferred.size > 0) {
            await sql`delete from inbox where consumer = ${durable} and event_id = any(${[...deferred.keys()]}::text[])`.execute(tx);
          }
          return { claimed, deferred };
        }),
      );
    } catch (err) {
      batchSpan.recordException(err as Error);
      batchSpan.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      batchSpan.end();
      log.warn({ err, events: items.length }, 'batch failed; applying its events one at a time');
      for (const item of items) await applyOne(item);
      return;
    }
    batchSpan.setAttribute('punchcard.batch.deferred', outcome.deferred.size);
    batchSpan.end();
    for (const item of items) {
      const { m, event, span } = item;
      const deferral = first.get(event.id) === item ? outcome.deferred.get(event.id) : undefined;
      if (deferral) {
        await retryLater(item, deferral.reason, deferral.delayMs);
      } else {
        const applied = first.get(event.id) === item && outcome.claimed.has(event.id);
        settle(m, (x) => x.ack());
        span.setAttribute('punchcard.inbox.duplicate', !applied);
        report({ outcome: applied ? 'applied' : 'duplicate', eventId: event.id, subject: event.subject, deliveryCount: event.deliveryCount });
      }
      span.end();
    }
  }

  async function handle(batch: JsMsg[]): Promise<void> {
    const items: InHand<MessageShape<S>>[] = [];
    for (const m of batch) {
      const item = await receive(m);
      if (item) items.push(item);
    }
    if (items.length === 1) await applyOne(items[0]!);
    else if (items.length > 1) await applyBatch(items);
  }

  // Messages move from the iterator to `waiting` (at most maxBatch, so the library pulls no further
  // ahead than that); the worker takes all that are waiting as one batch and settles them.
  let stopping = false;
  const waiting: JsMsg[] = [];
  // When the first of the messages waiting arrived: a batch waits for more until batchWaitMs after it.
  let firstWaitingAt = 0;
  let inHand: JsMsg[] = [];
  let wakeWorker: (() => void) | undefined;
  let wakePump: (() => void) | undefined;
  const heartbeat = setInterval(() => {
    // Progress for the messages being handled and those queued behind them.
    for (const m of [...inHand, ...waiting]) settle(m, (x) => x.working());
  }, Math.max(500, Math.floor(ackWaitMs / 3)));
  heartbeat.unref();

  let pumpDone = false;
  const pump = (async () => {
    for await (const m of messages) {
      if (stopping) {
        // Pulled but not started: hand it back now rather than after the ack wait.
        settle(m, (x) => x.nak());
        continue;
      }
      if (waiting.length === 0) firstWaitingAt = performance.now();
      waiting.push(m);
      wakeWorker?.();
      while (waiting.length >= maxBatch && !stopping) await new Promise<void>((resolve) => (wakePump = resolve));
    }
  })().finally(() => {
    pumpDone = true;
    wakeWorker?.();
  });

  const worker = (async () => {
    for (;;) {
      if (stopping) return;
      if (waiting.length === 0) {
        if (pumpDone) return;
        await new Promise<void>((resolve) => (wakeWorker = resolve));
        wakeWorker = undefined;
        // The messages of one read from the socket reach `waiting` in microtasks: let them all arrive.
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      const waitMore = firstWaitingAt + batchWaitMs - performance.now();
      if (waiting.length < maxBatch && waitMore > 0 && !pumpDone) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => wakeWorker?.(), waitMore);
          wakeWorker = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wakeWorker = undefined;
        continue;
      }
      inHand = waiting.splice(0, maxBatch);
      wakePump?.();
      try {
        await handle(inHand);
      } catch (err) {
        // Only the database or the connection can fail here; the messages are redelivered after ack wait.
        log.error({ err, messages: inHand.length }, 'consumer could not settle its messages');
      }
      inHand = [];
    }
  })();

  return {
    durable,
    stream,
    async stop() {
      stopping = true;
      wakePump?.();
      wakeWorker?.();
      await messages.close();
      await pump;
      await worker;
      clearInterval(heartbeat);
      for (const m of waiting.splice(0)) settle(m, (x) => x.nak());
    },
  };
}

/**
 * Creates the durable consumer or updates one that exists. Several filters need nats-server 2.10; on
 * older servers the consumer takes the whole stream and returns the filters for the client to apply.
 */
async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  base: Partial<ConsumerConfig> & { durable_name: string },
  filters: string[],
): Promise<string[] | undefined> {
  const single = filters.length === 1 ? { filter_subject: filters[0] } : {};
  if (filters.length > 1) {
    try {
      await addOrUpdate(jsm, stream, { ...base, filter_subjects: filters });
      return undefined;
    } catch (err) {
      if (!/requires server/i.test((err as Error).message)) throw err;
    }
    await addOrUpdate(jsm, stream, base);
    return filters;
  }
  await addOrUpdate(jsm, stream, { ...base, ...single });
  return undefined;
}

/** Undefined fields are left out of the update request, so the server keeps no filter. */
const NO_FILTER = { filter_subject: undefined, filter_subjects: undefined } as unknown as Partial<ConsumerUpdateConfig>;

async function addOrUpdate(jsm: JetStreamManager, stream: string, config: Partial<ConsumerConfig> & { durable_name: string }): Promise<void> {
  try {
    await jsm.consumers.add(stream, config);
  } catch (err) {
    if (!(err instanceof JetStreamApiError)) throw err;
    if (err.code === JetStreamApiCodes.StreamNotFound) throw new Error(`stream ${stream} does not exist: run declareStreams first`, { cause: err });
    // It exists with another configuration (e.g. new filters after a deploy): update what may change.
    const changeable: Partial<ConsumerUpdateConfig> = {
      ack_wait: config.ack_wait,
      max_deliver: config.max_deliver,
      max_ack_pending: config.max_ack_pending,
      ...(config.filter_subject !== undefined ? { filter_subject: config.filter_subject } : {}),
      ...(config.filter_subjects !== undefined ? { filter_subjects: config.filter_subjects } : {}),
      // No filter asked for: clear the ones an earlier version set (the update merges into the old config).
      ...(config.filter_subject === undefined && config.filter_subjects === undefined ? NO_FILTER : {}),
    };
    try {
      await jsm.consumers.update(stream, config.durable_name, changeable);
    } catch (updateErr) {
      throw new Error(`consumer ${config.durable_name} on ${stream}: ${(err as Error).message}; update failed: ${(updateErr as Error).message}`, {
        cause: updateErr,
      });
    }
  }
}

function decodeEvent<S extends DescMessage>(
  m: JsMsg,
  subject: string,
  headers: Record<string, string>,
  schemas: readonly S[],
): Omit<ConsumedEvent<MessageShape<S>>, 'traceContext'> {
  const id = headers[CE.id] ?? headers['nats-msg-id'];
  if (!id) throw new PoisonMessage('no ce-id header');
  const type = headers[CE.type];
  if (!type) throw new PoisonMessage('no ce-type header');
  const contentType = headers[CONTENT_TYPE];
  if (contentType !== undefined && contentType.split(';')[0]?.trim() !== PROTOBUF_CONTENT_TYPE) {
    throw new PoisonMessage(`content-type ${contentType} is not ${PROTOBUF_CONTENT_TYPE}`);
  }
  const subjectTenant = subject.split('.')[3];
  const tenantId = headers[CE.tenantid] ?? subjectTenant;
  if (!tenantId) throw new PoisonMessage('no ce-tenantid header and no tenant in the subject');
  if (subjectTenant !== undefined && subjectTenant !== tenantId) {
    throw new PoisonMessage(`ce-tenantid ${tenantId} does not match the subject's tenant ${subjectTenant}`);
  }
  let aggregateVersion: number | undefined;
  const version = headers[CE.entityversion];
  if (version !== undefined) {
    aggregateVersion = Number(version);
    if (!Number.isSafeInteger(aggregateVersion) || aggregateVersion < 1) throw new PoisonMessage(`ce-entityversion ${version} is not a positive integer`);
  }
  const schema = pickSchema(schemas, typeNameOfDataSchema(headers[CE.dataschema]));
  let data: MessageShape<S>;
  try {
    data = fromBinary(schema, m.data);
  } catch (err) {
    throw new PoisonMessage(`payload is not a ${schema.typeName}: ${(err as Error).message}`);
  }
  const ceTime = headers[CE.time];
  const time = ceTime ? new Date(ceTime) : m.time;
  return {
    id,
    type,
    source: headers[CE.source] ?? '',
    subject,
    tenantId,
    time: Number.isNaN(time.getTime()) ? m.time : time,
    aggregateId: headers[CE.subject] ?? '',
    aggregateVersion,
    data,
    headers,
    deliveryCount: m.info.deliveryCount,
    streamSequence: m.seq,
  };
}

function pickSchema<S extends DescMessage>(schemas: readonly S[], typeName: string | undefined): S {
  if (typeName === undefined) {
    if (schemas.length === 1 && schemas[0]) return schemas[0];
    throw new PoisonMessage('no ce-dataschema header to choose among several schemas');
  }
  const match = schemas.find((s) => s.typeName === typeName);
  if (!match) throw new OtherPayload(`no schema for ${typeName} (expected ${schemas.map((s) => s.typeName).join(' or ')})`);
  return match;
}

const TRANSIENT_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND']);

/**
 * Connection loss, server shutdown or exhaustion (SQLSTATE classes 08, 53, 57P), retries of
 * serialization failures used up, or a pool that cannot connect.
 */
function isTransient(err: unknown): boolean {
  const state = pgErrorCode(err);
  if (state) return /^(08|53|57P0)/.test(state) || state === '40001' || state === '40P01';
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TRANSIENT_NODE_CODES.has(code)) return true;
    if (/Connection terminated|timeout exceeded when trying to connect/i.test(e.message)) return true;
    e = e.cause;
  }
  return false;
}

/** NATS header values are one line. */
function headerValue(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 1000);
}

export interface InboxTable {
  consumer: string;
  event_id: string;
  subject: string;
  applied_at: ColumnType<Date, Date | undefined, never>;
}

export interface InboxTables {
  inbox: InboxTable;
}

/**
 * Deletes inbox rows applied before `before`; returns how many. Keep them longer than any redelivery
 * or replay can arrive (the streams' retention), or an old event would apply again.
 */
export function pruneInbox(db: Kysely<any>, before: Date): Promise<number> {
  return deleteOlderThan(db, 'inbox', 'applied_at', before);
}
