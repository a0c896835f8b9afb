import { StringValueSchema } from '@bufbuild/protobuf/wkt';
import { context, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { inTransaction } from '@punchcard/db';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { enqueue, startConsumer, startOutboxRelay, traceHeaders } from '../src/index.js';
import { harness, Outcomes, type Harness } from './helpers.js';

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
let h: Harness;

beforeAll(async () => {
  provider.register();
  h = await harness('trace');
});
afterAll(async () => {
  await h?.close();
  await provider.shutdown();
});

it('continues the producer’s trace through outbox, relay and consumer', async () => {
  const tracer = trace.getTracer('test');
  const api = await tracer.startActiveSpan('POST /sessions:consume', async (span) => {
    await inTransaction(h.db, (tx) =>
      enqueue(tx, {
        producer: 'ledger',
        event: 'session_consumed',
        tenantId: 'tenant-t',
        aggregateId: 'ent-traced',
        aggregateVersion: 1,
        schema: StringValueSchema,
        message: { value: 'traced' },
      }),
    );
    span.end();
    return span.spanContext();
  });
  const stored = await h.pool.query<{ headers: Record<string, string> }>('select headers from outbox');
  expect(stored.rows[0]?.headers.traceparent).toBe(`00-${api.traceId}-${api.spanId}-01`);

  // The relay runs outside any request (a root context): its publish span joins the stored trace.
  const relay = context.with(ROOT_CONTEXT, () =>
    startOutboxRelay({ pool: h.pool, nc: h.bus.nc, namespace: h.namespace, source: '/punchcard/test', pollIntervalMs: 50 }),
  );
  const outcomes = new Outcomes();
  let handlerTrace: Record<string, string> = {};
  const consumer = await startConsumer({
    db: h.db,
    js: h.bus.js,
    namespace: h.namespace,
    stream: 'LEDGER',
    durable: 'traced',
    schema: StringValueSchema,
    onOutcome: outcomes.record,
    handler: async () => {
      handlerTrace = traceHeaders();
    },
  });
  try {
    await relay.flush();
    await outcomes.until((all) => all.some((o) => o.outcome === 'applied'));
  } finally {
    await consumer.stop();
    await relay.stop();
  }

  const spans = exporter.getFinishedSpans();
  const publish = spans.find((s) => s.kind === SpanKind.PRODUCER && s.name.includes('session_consumed'));
  const process = spans.find((s) => s.kind === SpanKind.CONSUMER && s.name.includes('session_consumed'));
  expect(publish?.spanContext().traceId).toBe(api.traceId);
  expect(publish?.parentSpanContext?.spanId).toBe(api.spanId);
  expect(process?.spanContext().traceId).toBe(api.traceId);
  expect(process?.parentSpanContext?.spanId).toBe(publish?.spanContext().spanId);
  // The handler runs inside the consumer span.
  expect(handlerTrace.traceparent).toBe(`00-${api.traceId}-${process?.spanContext().spanId}-01`);
});

it('a batch keeps one process span per event, each in its producer’s trace, and a batch span linking them', async () => {
  exporter.reset();
  const tracer = trace.getTracer('test');
  const requests: { traceId: string; spanId: string }[] = [];
  for (let i = 0; i < 3; i++) {
    requests.push(
      await tracer.startActiveSpan(`POST /sessions:consume ${i}`, async (span) => {
        await inTransaction(h.db, (tx) =>
          enqueue(tx, { producer: 'ledger', event: 'session_batched', tenantId: 'tenant-t', aggregateId: `ent-${i}`, aggregateVersion: 1, schema: StringValueSchema, message: { value: `${i}` } }),
        );
        span.end();
        return span.spanContext();
      }),
    );
  }
  const relay = context.with(ROOT_CONTEXT, () => startOutboxRelay({ pool: h.pool, nc: h.bus.nc, namespace: h.namespace, source: '/punchcard/test', pollIntervalMs: 50 }));
  await relay.flush();
  await relay.stop();

  const outcomes = new Outcomes();
  const handlerTraces = new Map<string, string | undefined>();
  const consumer = await startConsumer({
    db: h.db,
    js: h.bus.js,
    namespace: h.namespace,
    stream: 'LEDGER',
    durable: 'traced_batch',
    filterSubjects: ['punchcard.ledger.session_batched.*'],
    schema: StringValueSchema,
    onOutcome: outcomes.record,
    batchHandler: async (_tx, events) => {
      for (const e of events) handlerTraces.set(e.data.value, context.with(e.traceContext, () => traceHeaders().traceparent));
    },
  });
  try {
    await outcomes.until((all) => all.filter((o) => o.outcome === 'applied').length === 3);
  } finally {
    await consumer.stop();
  }

  const spans = exporter.getFinishedSpans();
  const processSpans = spans.filter((s) => s.kind === SpanKind.CONSUMER && s.name.includes('session_batched'));
  expect(processSpans).toHaveLength(3);
  for (const [i, request] of requests.entries()) {
    const publish = spans.find((s) => s.kind === SpanKind.PRODUCER && s.spanContext().traceId === request.traceId);
    const process = processSpans.find((s) => s.spanContext().traceId === request.traceId);
    expect(publish?.parentSpanContext?.spanId).toBe(request.spanId);
    expect(process?.parentSpanContext?.spanId).toBe(publish?.spanContext().spanId);
    expect(handlerTraces.get(`${i}`)).toBe(`00-${request.traceId}-${process?.spanContext().spanId}-01`);
  }
  // A batch takes what has arrived: the three usually come together, but the first can be applied
  // on its own (no batch span) before the other two arrive. Each batch span links exactly its own.
  const batches = spans.filter((s) => s.kind === SpanKind.CONSUMER && s.name === 'LEDGER process');
  const processIds = processSpans.map((s) => s.spanContext().spanId);
  const linked = batches.flatMap((b) => b.links.map((l) => l.context.spanId));
  expect(batches.length).toBeGreaterThanOrEqual(1);
  for (const b of batches) expect(b.attributes['messaging.batch.message_count']).toBe(b.links.length);
  expect(linked.length).toBeGreaterThanOrEqual(2);
  expect(new Set(linked).size).toBe(linked.length);
  expect(linked.filter((id) => processIds.includes(id))).toEqual(linked);
});
