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
    startOutboxRelay({ pool: h.pool, js: h.bus.js, namespace: h.namespace, source: '/punchcard/test', pollIntervalMs: 50 }),
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
