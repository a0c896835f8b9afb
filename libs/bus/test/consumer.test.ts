import { randomUUID } from 'node:crypto';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { StringValueSchema, StructSchema, type StringValue } from '@bufbuild/protobuf/wkt';
import { sql, type Transaction } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus } from '../src/connection.js';
import {
  CE,
  DEADLETTER_HEADERS,
  eventHeaders,
  headerRecord,
  publishEvent,
  RetryLater,
  startConsumer,
  streamName,
  subjectFor,
  type ConsumedEvent,
  type ConsumeOutcome,
  type ConsumerOptions,
  type Deferral,
} from '../src/index.js';
import { testNats } from '@punchcard/testing';
import { applicationsPerEvent, harness, Outcomes, readStream, type Harness, type TestDb } from './helpers.js';

let h: Harness;

beforeAll(async () => {
  h = await harness('consumer');
});
afterAll(async () => {
  await h?.close();
});

function visit(aggregateId: string, value: string, extra: { id?: string; aggregateVersion?: number; event?: string; tenantId?: string } = {}) {
  return publishEvent(h.bus.js, {
    namespace: h.namespace,
    source: '/booking/test',
    producer: 'visits',
    event: extra.event ?? 'visit_recorded',
    tenantId: extra.tenantId ?? 'tenant-a',
    aggregateId,
    ...(extra.aggregateVersion !== undefined ? { aggregateVersion: extra.aggregateVersion } : {}),
    ...(extra.id ? { id: extra.id } : {}),
    schema: StringValueSchema,
    message: { value },
  });
}

/** A handler that records one effects row per application. */
function recordEffect(consumer: string) {
  return async (tx: Transaction<TestDb>, event: ConsumedEvent<StringValue>) => {
    await tx
      .insertInto('effects')
      .values({ consumer, event_id: event.id, aggregate_id: event.aggregateId, aggregate_version: event.aggregateVersion ?? null, value: event.data.value })
      .execute();
  };
}

type VisitConsumerOptions = ConsumerOptions<typeof StringValueSchema, TestDb>;

/** Runs a VISITS consumer until its outcomes satisfy `done`, then stops it; returns the outcomes. */
/** A consumer of the VISITS stream on the test bus and database, reporting to `outcomes`. */
function startVisits(options: Pick<VisitConsumerOptions, 'durable'> & Partial<VisitConsumerOptions>, outcomes: Outcomes) {
  return startConsumer({
    db: h.db,
    js: h.bus.js,
    namespace: h.namespace,
    stream: 'VISITS',
    schema: StringValueSchema,
    onOutcome: outcomes.record,
    ...options,
  });
}

async function consumeVisits(
  options: Pick<VisitConsumerOptions, 'durable' | 'handler'> & Partial<VisitConsumerOptions>,
  done: (all: ConsumeOutcome[]) => boolean,
): Promise<Outcomes> {
  const outcomes = new Outcomes();
  const consumer = await startVisits(options, outcomes);
  try {
    await outcomes.until(done);
  } finally {
    await consumer.stop();
  }
  return outcomes;
}

async function deadLetters(durable: string) {
  return (await readStream(h.bus, h.namespace, 'DEADLETTER')).filter((m) => m.headers?.get(DEADLETTER_HEADERS.consumer) === durable);
}

const appliedCount = (n: number) => (all: ConsumeOutcome[]) => all.filter((o) => o.outcome === 'applied').length === n;

describe('consumer with inbox', () => {
  it('hands the handler a decoded event with its CloudEvents attributes', async () => {
    const seen: ConsumedEvent<StringValue>[] = [];
    const sent = await visit('member-attrs', 'hello', { aggregateVersion: 3, tenantId: 'tenant-z' });
    await consumeVisits(
      {
        durable: 'attrs',
        filterSubjects: ['punchcard.visits.*.tenant-z'],
        handler: async (_tx, event) => {
          seen.push(event);
        },
      },
      (all) => all.length === 1,
    );
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      id: sent.id,
      type: 'punchcard.visits.visit_recorded',
      source: '/booking/test',
      subject: 'punchcard.visits.visit_recorded.tenant-z',
      tenantId: 'tenant-z',
      aggregateId: 'member-attrs',
      aggregateVersion: 3,
      deliveryCount: 1,
    });
    expect(seen[0]?.data.value).toBe('hello');
    expect(seen[0]?.headers['content-type']).toBe('application/protobuf');
  });

  it('applies an event once: a replayed consumer and a republish after the duplicate window change nothing', async () => {
    const durable = 'once';
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await visit(`member-once-${i}`, `v${i}`, { event: 'visit_once' })).id);
    const options = { durable, filterSubjects: ['punchcard.visits.visit_once.*'], handler: recordEffect(durable) };
    const first = await consumeVisits(options, (all) => all.length === 4);
    expect(first.count('applied')).toBe(4);

    // Ops replay: the durable consumer is recreated and JetStream delivers the whole stream again.
    await h.bus.jsm.consumers.delete(streamName(h.namespace, 'VISITS'), durable);
    // The producer republishes event 0 after the stream forgot its Nats-Msg-Id (a new msg id, same ce-id).
    const original = (await readStream(h.bus, h.namespace, 'VISITS')).find((m) => m.headers?.get(CE.id) === ids[0]);
    await h.bus.js.publish(original!.subject, original!.data, { headers: original!.headers!, msgID: randomUUID() });

    const second = await consumeVisits(options, (all) => all.length === 5);
    expect(second.count('duplicate')).toBe(5);
    expect(second.count('applied')).toBe(0);
    const applied = await applicationsPerEvent(h.db, durable);
    expect([...applied.entries()].sort()).toEqual(ids.map((id) => [id, 1]).sort());
  });

  it('RetryLater naks with the delay and applies once the missing version has been applied', async () => {
    const durable = 'ordered';
    // Version 2 reaches the stream before version 1.
    const v2 = await visit('ent-gap', 'second', { aggregateVersion: 2, event: 'visit_ordered' });
    const v1 = await visit('ent-gap', 'first', { aggregateVersion: 1, event: 'visit_ordered' });
    const outcomes = await consumeVisits(
      {
        durable,
        filterSubjects: ['punchcard.visits.visit_ordered.*'],
        handler: async (tx, event) => {
          const { rows } = await sql<{ v: number | null }>`
            select max(aggregate_version) as v from effects where consumer = ${durable} and aggregate_id = ${event.aggregateId}`.execute(tx);
          const current = rows[0]?.v ?? 0;
          const version = event.aggregateVersion ?? 0;
          if (version > current + 1) throw new RetryLater(`${event.aggregateId} is at version ${current}, got ${version}`, 100);
          await recordEffect(durable)(tx, event);
        },
      },
      appliedCount(2),
    );
    const retried = outcomes.all.filter((o) => o.outcome === 'retry');
    expect(retried.length).toBeGreaterThanOrEqual(1);
    expect(retried.every((o) => o.eventId === v2.id)).toBe(true);
    expect(outcomes.all.filter((o) => o.outcome === 'applied').map((o) => o.eventId)).toEqual([v1.id, v2.id]);
    const rows = await h.db.selectFrom('effects').select(['aggregate_version']).where('consumer', '=', durable).orderBy('id').execute();
    expect(rows.map((r) => r.aggregate_version)).toEqual([1, 2]);
  });

  it('dead-letters after max deliveries with the reason, and keeps consuming', async () => {
    const durable = 'poison';
    const bad = await visit('member-bad', 'boom', { event: 'visit_poison' });
    const good = await visit('member-good', 'fine', { event: 'visit_poison' });
    const outcomes = await consumeVisits(
      {
        durable,
        filterSubjects: ['punchcard.visits.visit_poison.*'],
        maxDeliver: 3,
        retryDelayMs: () => 50,
        handler: async (tx, event) => {
          if (event.data.value === 'boom') throw new Error('branch br-9 does not exist');
          await recordEffect(durable)(tx, event);
        },
      },
      (all) => all.some((o) => o.outcome === 'deadlettered') && all.some((o) => o.outcome === 'applied'),
    );
    expect(outcomes.all.filter((o) => o.eventId === bad.id).map((o) => o.outcome)).toEqual(['failed', 'failed', 'deadlettered']);
    expect(await applicationsPerEvent(h.db, durable)).toEqual(new Map([[good.id, 1]]));

    const dead = await deadLetters(durable);
    expect(dead).toHaveLength(1);
    expect(dead[0]?.subject).toBe(`${h.namespace}.punchcard.deadletter.poison`);
    const headers = headerRecord(dead[0]?.headers);
    expect(headers[DEADLETTER_HEADERS.reason]).toContain('branch br-9 does not exist');
    expect(headers[DEADLETTER_HEADERS.originalSubject]).toBe(subjectFor(h.namespace, 'visits', 'visit_poison', 'tenant-a'));
    expect(headers[DEADLETTER_HEADERS.originalStream]).toBe(streamName(h.namespace, 'VISITS'));
    expect(headers[DEADLETTER_HEADERS.deliveryCount]).toBe('3');
    expect(headers[CE.id]).toBe(bad.id);
    expect(fromBinary(StringValueSchema, dead[0]!.data).value).toBe('boom');

    // Nothing is left pending or waiting for an ack: the poison message is settled, not stuck.
    const info = await h.bus.jsm.consumers.info(streamName(h.namespace, 'VISITS'), durable);
    expect(info.num_pending).toBe(0);
    expect(info.num_ack_pending).toBe(0);
  });

  it('dead-letters an event still waiting after maxRetryLater deliveries', async () => {
    const durable = 'waiting';
    const stuck = await visit('ent-stuck', 'v9', { aggregateVersion: 9, event: 'visit_waiting' });
    const outcomes = await consumeVisits(
      {
        durable,
        filterSubjects: ['punchcard.visits.visit_waiting.*'],
        maxRetryLater: 3,
        handler: async (_tx, event) => {
          throw new RetryLater(`${event.aggregateId} is at version 0, got ${event.aggregateVersion}`, 20);
        },
      },
      (all) => all.some((o) => o.outcome === 'deadlettered'),
    );
    expect(outcomes.all.map((o) => o.outcome)).toEqual(['retry', 'retry', 'deadlettered']);
    const dead = await deadLetters(durable);
    expect(dead.map((m) => m.headers?.get(CE.id))).toEqual([stuck.id]);
    expect(dead[0]?.headers?.get(DEADLETTER_HEADERS.reason)).toContain('still waiting after 3 deliveries: ent-stuck is at version 0, got 9');
  });

  it('dead-letters a malformed message at once: wrong schema, missing id, tenant mismatch', async () => {
    const durable = 'malformed';
    const subject = subjectFor(h.namespace, 'visits', 'visit_malformed', 'tenant-a');
    const envelope = {
      id: randomUUID(),
      source: '/booking/test',
      type: 'punchcard.visits.visit_malformed',
      time: new Date(),
      tenantId: 'tenant-a',
      aggregateId: 'member-x',
      dataType: StructSchema.typeName,
    };
    const payload = toBinary(StructSchema, create(StructSchema, {}));
    await h.bus.js.publish(subject, payload, { headers: eventHeaders(envelope), msgID: envelope.id });
    const noId = eventHeaders({ ...envelope, id: 'x', dataType: StringValueSchema.typeName });
    noId.delete(CE.id);
    await h.bus.js.publish(subject, payload, { headers: noId });
    const otherTenant = { ...envelope, id: randomUUID(), tenantId: 'tenant-b', dataType: StringValueSchema.typeName };
    await h.bus.js.publish(subject, payload, { headers: eventHeaders(otherTenant), msgID: otherTenant.id });

    const outcomes = await consumeVisits(
      {
        durable,
        filterSubjects: ['punchcard.visits.visit_malformed.*'],
        handler: async () => {
          throw new Error('a malformed event must not reach the handler');
        },
      },
      (all) => all.length === 3,
    );
    expect(outcomes.all.map((o) => o.outcome)).toEqual(['deadlettered', 'deadlettered', 'deadlettered']);
    expect((await deadLetters(durable)).map((m) => m.headers?.get(DEADLETTER_HEADERS.reason))).toEqual([
      expect.stringContaining('no schema for google.protobuf.Struct'),
      expect.stringContaining('no ce-id'),
      expect.stringContaining('does not match the subject'),
    ]);
  });

  it('skips events with other payloads when asked to, and still dead-letters a malformed one', async () => {
    const durable = 'other_payloads';
    const subject = (event: string) => subjectFor(h.namespace, 'visits', event, 'tenant-p');
    const other = { id: randomUUID(), type: 'punchcard.visits.visit_other_p', source: '/booking/test', tenantId: 'tenant-p', aggregateId: 'member-p', time: new Date(), dataType: StructSchema.typeName };
    await h.bus.js.publish(subject('visit_other_p'), toBinary(StructSchema, create(StructSchema, {})), { headers: eventHeaders(other), msgID: other.id });
    const wanted = await visit('member-p', 'w', { event: 'visit_wanted_p', tenantId: 'tenant-p' });
    const broken = { ...other, id: randomUUID(), dataType: StringValueSchema.typeName };
    await h.bus.js.publish(subject('visit_wanted_p'), new Uint8Array([0xff, 0xff, 0xff]), { headers: eventHeaders(broken), msgID: broken.id });

    const outcomes = await consumeVisits(
      { durable, filterSubjects: ['punchcard.visits.*.tenant-p'], otherPayloads: 'skip', handler: recordEffect(durable) },
      (all) => all.length === 3,
    );
    expect(outcomes.all.map((o) => [o.outcome, o.eventId])).toEqual([
      ['skipped', other.id],
      ['applied', wanted.id],
      ['deadlettered', broken.id],
    ]);
    expect([...(await applicationsPerEvent(h.db, durable)).keys()]).toEqual([wanted.id]);
  });

  it('several filter subjects work on a 2.9 server (filtered in the client there)', async () => {
    const durable = 'multi';
    // The unwanted event goes first: by the time both wanted ones are applied it has been passed over.
    await visit('member-m', 'n', { event: 'visit_noshow_m' });
    const recorded = await visit('member-m', 'r', { event: 'visit_recorded_m' });
    const cancelled = await visit('member-m', 'c', { event: 'visit_cancelled_m' });
    await consumeVisits(
      {
        durable,
        filterSubjects: ['punchcard.visits.visit_recorded_m.*', 'punchcard.visits.visit_cancelled_m.*'],
        handler: recordEffect(durable),
      },
      appliedCount(2),
    );
    const applied = await applicationsPerEvent(h.db, durable);
    expect([...applied.keys()].sort()).toEqual([recorded.id, cancelled.id].sort());
  });

  it('changes a durable consumer’s filter and ack wait on the next start (a deploy)', async () => {
    const base = { durable: 'redeployed', handler: async () => undefined };
    await consumeVisits({ ...base, filterSubjects: ['punchcard.visits.old_event.*'] }, () => true);
    await consumeVisits({ ...base, filterSubjects: ['punchcard.visits.new_event.*'], ackWaitMs: 10_000 }, () => true);
    const { config } = await h.bus.jsm.consumers.info(streamName(h.namespace, 'VISITS'), 'redeployed');
    expect(config.filter_subject).toBe(`${h.namespace}.punchcard.visits.new_event.*`);
    expect(config.ack_wait).toBe(10_000_000_000);
    expect(config.max_deliver).toBe(-1);
    // A later version reads the whole stream: the old filter goes.
    await consumeVisits({ ...base, otherPayloads: 'skip' }, () => true);
    const whole = await h.bus.jsm.consumers.info(streamName(h.namespace, 'VISITS'), 'redeployed');
    expect(whole.config.filter_subject ?? '').toBe('');
    expect(whole.config.filter_subjects ?? []).toEqual([]);
  });
});

/** A batch handler that records one effects row per event, and each batch's event ids. */
function recordBatches(consumer: string, batches: string[][]) {
  return async (tx: Transaction<TestDb>, events: ConsumedEvent<StringValue>[]) => {
    batches.push(events.map((e) => e.id));
    for (const event of events) await recordEffect(consumer)(tx, event);
  };
}

async function inboxIds(consumer: string): Promise<string[]> {
  const rows = await h.db.selectFrom('inbox' as never).select('event_id' as never).where('consumer' as never, '=', consumer as never).execute();
  return (rows as { event_id: string }[]).map((r) => r.event_id).sort();
}

/**
 * Long enough for events already in the stream to reach a consumer that waits for a full batch; the
 * wait ends as soon as the batch is full, so tests do not take this long.
 */
const GATHER_MS = 3_000;

describe('batch consumer', () => {
  it('applies what has arrived in one transaction, each event once, also when a replay delivers it all again', async () => {
    const durable = 'batch_once';
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await visit(`member-b-${i}`, `v${i}`, { event: 'visit_batch_once' })).id);
    const batches: string[][] = [];
    const options = { durable, filterSubjects: ['punchcard.visits.visit_batch_once.*'], batchHandler: recordBatches(durable, batches) };
    const first = await consumeVisits(options, appliedCount(20));
    expect(first.all.map((o) => o.outcome)).toEqual(Array<string>(20).fill('applied'));
    // Published before the consumer started, they arrive together: fewer transactions than events.
    expect(batches.length).toBeLessThan(20);
    expect(batches.flat()).toEqual(ids);

    await h.bus.jsm.consumers.delete(streamName(h.namespace, 'VISITS'), durable);
    const again = await consumeVisits(options, (all) => all.length === 20);
    expect(again.count('duplicate')).toBe(20);
    expect(batches.flat()).toEqual(ids);
    const applied = await applicationsPerEvent(h.db, durable);
    expect([...applied.entries()].sort()).toEqual(ids.map((id) => [id, 1]).sort());
  });

  it('drops a duplicate inside one batch: the handler sees the event once, the copy is acked as a duplicate', async () => {
    const durable = 'batch_dup';
    const a = await visit('member-d1', 'a', { event: 'visit_batch_dup' });
    const original = (await readStream(h.bus, h.namespace, 'VISITS')).find((m) => m.headers?.get(CE.id) === a.id)!;
    // The same event again under a new Nats-Msg-Id (a producer retrying after the duplicate window).
    await h.bus.js.publish(original.subject, original.data, { headers: original.headers!, msgID: randomUUID() });
    const b = await visit('member-d2', 'b', { event: 'visit_batch_dup' });
    const batches: string[][] = [];
    const outcomes = await consumeVisits(
      // All three in one batch: it waits for them.
      { durable, filterSubjects: ['punchcard.visits.visit_batch_dup.*'], batchHandler: recordBatches(durable, batches), maxBatch: 3, batchWaitMs: GATHER_MS },
      (all) => all.length === 3,
    );
    expect(batches).toEqual([[a.id, b.id]]);
    expect(outcomes.all.map((o) => [o.outcome, o.eventId])).toEqual([
      ['applied', a.id],
      ['duplicate', a.id],
      ['applied', b.id],
    ]);
    expect(await applicationsPerEvent(h.db, durable)).toEqual(new Map([[a.id, 1], [b.id, 1]]));
  });

  it('defers an event in the middle of a batch without its inbox row, applies the others, and the deferred one later', async () => {
    const durable = 'batch_defer';
    const before = await visit('ent-x', 'x1', { aggregateVersion: 1, event: 'visit_batch_defer' });
    const early = await visit('ent-y', 'y2', { aggregateVersion: 2, event: 'visit_batch_defer' });
    const after = await visit('ent-z', 'z1', { aggregateVersion: 1, event: 'visit_batch_defer' });
    const batches: string[][] = [];
    let sawDeferred = false;
    const batchHandler = async (tx: Transaction<TestDb>, events: ConsumedEvent<StringValue>[]): Promise<Deferral[]> => {
      batches.push(events.map((e) => e.id));
      const deferred: Deferral[] = [];
      for (const event of events) {
        const { rows } = await sql<{ v: number | null }>`
          select max(aggregate_version) as v from effects where consumer = ${durable} and aggregate_id = ${event.aggregateId}`.execute(tx);
        if ((event.aggregateVersion ?? 0) > (rows[0]?.v ?? 0) + 1) {
          deferred.push({ eventId: event.id, reason: `${event.aggregateId} waits`, delayMs: 50 });
          continue;
        }
        await recordEffect(durable)(tx, event);
      }
      return deferred;
    };
    const outcomes = new Outcomes();
    const consumer = await startVisits(
      {
        durable,
        filterSubjects: ['punchcard.visits.visit_batch_defer.*'],
        // The first three in one batch: it waits for them.
        maxBatch: 3,
        batchWaitMs: GATHER_MS,
        onOutcome: (o) => {
          outcomes.record(o);
          if (o.outcome === 'retry') sawDeferred = true;
        },
        batchHandler,
      },
      outcomes,
    );
    let missing: { id: string } | undefined;
    try {
      await outcomes.until((all) => all.filter((o) => o.outcome === 'applied').length === 2 && sawDeferred);
      expect(batches[0]).toEqual([before.id, early.id, after.id]);
      expect(outcomes.all.slice(0, 3).map((o) => [o.outcome, o.eventId])).toEqual([
        ['applied', before.id],
        ['retry', early.id],
        ['applied', after.id],
      ]);
      // Its inbox row went with the deferral: nothing of the deferred event was recorded.
      expect(await inboxIds(durable)).toEqual([before.id, after.id].sort());
      missing = await visit('ent-y', 'y1', { aggregateVersion: 1, event: 'visit_batch_defer' });
      await outcomes.until((all) => all.filter((o) => o.outcome === 'applied').length === 4);
    } finally {
      await consumer.stop();
    }
    const rows = await h.db.selectFrom('effects').select(['aggregate_id', 'aggregate_version']).where('consumer', '=', durable).orderBy('id').execute();
    expect(rows).toEqual([
      { aggregate_id: 'ent-x', aggregate_version: 1 },
      { aggregate_id: 'ent-z', aggregate_version: 1 },
      { aggregate_id: 'ent-y', aggregate_version: 1 },
      { aggregate_id: 'ent-y', aggregate_version: 2 },
    ]);
    expect(await inboxIds(durable)).toEqual([before.id, early.id, after.id, missing!.id].sort());
  });

  it('applies a failed batch one event at a time: the poison event is dead-lettered alone, the others applied once', async () => {
    const durable = 'batch_poison';
    const good1 = await visit('member-p1', 'fine', { event: 'visit_batch_poison' });
    const bad = await visit('member-p2', 'boom', { event: 'visit_batch_poison' });
    const good2 = await visit('member-p3', 'fine', { event: 'visit_batch_poison' });
    const batches: string[][] = [];
    const outcomes = await consumeVisits(
      {
        durable,
        filterSubjects: ['punchcard.visits.visit_batch_poison.*'],
        maxDeliver: 2,
        retryDelayMs: () => 50,
        batchHandler: async (tx, events) => {
          batches.push(events.map((e) => e.id));
          for (const event of events) {
            if (event.data.value === 'boom') throw new Error('no such branch');
            await recordEffect(durable)(tx, event);
          }
        },
      },
      (all) => all.some((o) => o.outcome === 'deadlettered') && all.filter((o) => o.outcome === 'applied').length === 2,
    );
    // The batch, then each of its events on its own. A batch takes what has arrived: the third event
    // is usually in it, but may come after it (then it is applied later, in a batch of its own).
    const [first, ...after] = batches;
    expect(first!.slice(0, 2)).toEqual([good1.id, bad.id]);
    expect(first!.slice(2)).toEqual(first!.length === 3 ? [good2.id] : []);
    expect(after.slice(0, first!.length)).toEqual(first!.map((id) => [id]));
    expect(outcomes.all.filter((o) => o.eventId === bad.id).map((o) => o.outcome)).toEqual(['failed', 'deadlettered']);
    expect(await applicationsPerEvent(h.db, durable)).toEqual(new Map([[good1.id, 1], [good2.id, 1]]));
    expect((await deadLetters(durable)).map((m) => m.headers?.get(CE.id))).toEqual([bad.id]);
    const info = await h.bus.jsm.consumers.info(streamName(h.namespace, 'VISITS'), durable);
    expect(info.num_pending).toBe(0);
    expect(info.num_ack_pending).toBe(0);
  });

  it('after a crash between commit and ack, the redelivered batch is acked as duplicates and applied once', async () => {
    const durable = 'batch_crash';
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await visit(`member-c-${i}`, `v${i}`, { event: 'visit_batch_crash' })).id);
    const crashing = await connectBus({ url: await testNats(), name: 'bus-test-crashing' });
    const firstRun = new Outcomes();
    const batches: string[][] = [];
    const options = {
      db: h.db,
      namespace: h.namespace,
      stream: 'VISITS' as const,
      schema: StringValueSchema,
      durable,
      filterSubjects: ['punchcard.visits.visit_batch_crash.*'],
      ackWaitMs: 1000,
      // All five in one batch: it waits for them.
      maxBatch: 5,
      batchWaitMs: GATHER_MS,
    };
    const first = await startConsumer({
      ...options,
      js: crashing.js,
      onOutcome: firstRun.record,
      batchHandler: async (tx, events) => {
        await recordBatches(durable, batches)(tx, events);
        // The process dies after the handler: the transaction commits, the acks never leave.
        await crashing.nc.close();
      },
    });
    await firstRun.until((all) => all.length === 5);
    expect(await applicationsPerEvent(h.db, durable)).toEqual(new Map(ids.map((id) => [id, 1])));

    const secondRun = new Outcomes();
    const second = await startConsumer({ ...options, js: h.bus.js, onOutcome: secondRun.record, batchHandler: recordBatches(durable, batches) });
    try {
      await secondRun.until((all) => all.length === 5);
    } finally {
      await second.stop();
      await first.stop().catch(() => undefined);
    }
    expect(secondRun.all.map((o) => o.outcome)).toEqual(Array<string>(5).fill('duplicate'));
    expect(secondRun.all.every((o) => o.deliveryCount === 2)).toBe(true);
    expect(batches).toEqual([ids]);
    expect(await applicationsPerEvent(h.db, durable)).toEqual(new Map(ids.map((id) => [id, 1])));
  });

  it('with batchWaitMs, a batch waits for more events up to maxBatch: events published apart are applied together', async () => {
    const durable = 'batch_wait_full';
    const batches: string[][] = [];
    const outcomes = new Outcomes();
    const consumer = await startVisits(
      { durable, filterSubjects: ['punchcard.visits.visit_batch_wait_full.*'], maxBatch: 3, batchWaitMs: GATHER_MS, batchHandler: recordBatches(durable, batches) },
      outcomes,
    );
    const ids: string[] = [];
    try {
      // Each published after the one before was delivered to the consumer: without the wait each is a batch of its own.
      for (let i = 0; i < 3; i++) {
        ids.push((await visit(`member-w-${i}`, `v${i}`, { event: 'visit_batch_wait_full' })).id);
        const info = () => h.bus.jsm.consumers.info(streamName(h.namespace, 'VISITS'), durable);
        while ((await info()).num_pending > 0) await new Promise((r) => setTimeout(r, 10));
      }
      await outcomes.until(appliedCount(3));
    } finally {
      await consumer.stop();
    }
    expect(batches).toEqual([ids]);
  });

  it('with batchWaitMs, a batch that does not fill is applied when the wait ends', async () => {
    const durable = 'batch_wait_partial';
    const batches: string[][] = [];
    const only = await visit('member-w-only', 'v', { event: 'visit_batch_wait_partial' });
    await consumeVisits(
      { durable, filterSubjects: ['punchcard.visits.visit_batch_wait_partial.*'], maxBatch: 3, batchWaitMs: 200, batchHandler: recordBatches(durable, batches) },
      appliedCount(1),
    );
    expect(batches).toEqual([[only.id]]);
    expect(await applicationsPerEvent(h.db, durable)).toEqual(new Map([[only.id, 1]]));
  });
});
