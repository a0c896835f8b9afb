import { create, toBinary, type DescMessage } from '@bufbuild/protobuf';
import { PubHeaders, type JetStreamClient, type PubAck } from '@nats-io/jetstream';
import { uuidv7 } from '@punchcard/db';
import { context, SpanKind, SpanStatusCode, type Context } from '@opentelemetry/api';
import { eventHeaders, TRACEPARENT, TRACESTATE, type EventEnvelope } from './cloudevents.js';
import { eventSubject, eventType, streamKeyOf, streamName, withNamespace } from './names.js';
import type { EventInput } from './outbox.js';
import { requestingPublisher, type StreamPublisher } from './stream-publisher.js';
import { busTracer, traceHeaders } from './trace.js';

export interface PublishEnvelopeOptions {
  namespace: string;
  /** Namespace-free subject `punchcard.<producer>.<event>.<tenant>`. */
  subject: string;
  envelope: EventEnvelope;
  payload: Uint8Array;
  /** Extra headers (e.g. the producer's stored trace context); the publish span's context replaces the trace ones. */
  headers?: Record<string, string>;
  /** The trace the publish span belongs to; default the active context. */
  parent?: Context;
}

/**
 * Publishes one event with `Nats-Msg-Id` = event id, so a republish inside the stream's duplicate
 * window is stored once, and expects the producer's own stream (a subject caught by any other stream
 * is refused rather than misfiled).
 */
export async function publishEnvelope(publisher: StreamPublisher, options: PublishEnvelopeOptions): Promise<PubAck> {
  const { namespace, subject, envelope } = options;
  const producer = subject.split('.')[1] ?? '';
  const stream = streamName(namespace, streamKeyOf(producer));
  const natsSubject = withNamespace(namespace, subject);
  const parent = options.parent ?? context.active();
  return busTracer().startActiveSpan(
    `${subject} publish`,
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.system': 'nats',
        'messaging.operation.type': 'send',
        'messaging.destination.name': natsSubject,
        'messaging.message.id': envelope.id,
        'cloudevents.event_type': envelope.type,
      },
    },
    parent,
    async (span) => {
      try {
        // Copied without the stored trace rather than deleted from a copy: a deleted key turns the
        // object into a dictionary, and a second spread gives it a hidden class of its own.
        const extra: Record<string, string> = {};
        for (const [k, v] of Object.entries(options.headers ?? {})) if (k !== TRACEPARENT && k !== TRACESTATE) extra[k] = v;
        const h = eventHeaders(envelope, Object.assign(extra, traceHeaders()));
        h.set(PubHeaders.MsgIdHdr, envelope.id);
        h.set(PubHeaders.ExpectedStreamHdr, stream);
        const ack = await publisher.publish(natsSubject, options.payload, h);
        span.setAttribute('messaging.nats.duplicate', ack.duplicate);
        return ack;
      } catch (err) {
        span.recordException(err as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

export interface PublishEventInput<S extends DescMessage> extends EventInput<S> {
  namespace: string;
  /** CloudEvents `source` of the sender, e.g. `/booking/acme-clinic`. */
  source: string;
}

/**
 * Publishes an event straight to JetStream with the same headers the outbox relay writes: for
 * inbound events (booking systems feeding VISITS) and tests. Services publish through the outbox.
 */
export async function publishEvent<S extends DescMessage>(
  js: JetStreamClient,
  input: PublishEventInput<S>,
): Promise<PubAck & { id: string; subject: string }> {
  const id = input.id ?? uuidv7();
  const subject = eventSubject(input.producer, input.event, input.tenantId);
  const ack = await publishEnvelope(requestingPublisher(js), {
    namespace: input.namespace,
    subject,
    envelope: {
      id,
      source: input.source,
      type: eventType(input.producer, input.event),
      time: input.time ?? new Date(),
      tenantId: input.tenantId,
      aggregateId: input.aggregateId,
      aggregateVersion: input.aggregateVersion,
      dataType: input.schema.typeName,
    },
    payload: toBinary(input.schema, create(input.schema, input.message)),
    ...(input.headers ? { headers: input.headers } : {}),
  });
  return { ...ack, id, subject };
}
