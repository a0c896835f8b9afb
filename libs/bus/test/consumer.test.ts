import { randomUUID } from 'node:crypto';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { StringValueSchema, StructSchema, type StringValue } from '@bufbuild/protobuf/wkt';
import { sql, type Transaction } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
} from '../src/index.js';
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
async function consumeVisits(
  options: Pick<VisitConsumerOptions, 'durable' | 'handler'> & Partial<VisitConsumerOptions>,
  done: (all: ConsumeOutcome[]) => boolean,
): Promise<Outcomes> {
  const outcomes = new Outcomes();
  const consumer = await startConsumer({
    db: h.db,
    js: h.bus.js,
    namespace: h.namespace,
    stream: 'VISITS',
    schema: StringValueSchema,
    onOutcome: outcomes.record,
    ...options,
  });
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
  });
});
