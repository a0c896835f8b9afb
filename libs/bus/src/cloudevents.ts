import { headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';

/** CloudEvents 1.0 binary-mode header names for NATS, plus Punchcard's extensions. */
export const CE = {
  specversion: 'ce-specversion',
  id: 'ce-id',
  source: 'ce-source',
  type: 'ce-type',
  time: 'ce-time',
  subject: 'ce-subject',
  dataschema: 'ce-dataschema',
  tenantid: 'ce-tenantid',
  entityversion: 'ce-entityversion',
} as const;

export const CONTENT_TYPE = 'content-type';
export const PROTOBUF_CONTENT_TYPE = 'application/protobuf';
export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';

/** Everything but the payload of one event. */
export interface EventEnvelope {
  /** Event id: CloudEvents `id` and `Nats-Msg-Id`, the key of deduplication everywhere. */
  id: string;
  /** CloudEvents `source`, e.g. `/punchcard/entitlement-ledger`. */
  source: string;
  /** CloudEvents `type`, `punchcard.<producer>.<event>`. */
  type: string;
  time: Date;
  tenantId: string;
  /** CloudEvents `subject`: the aggregate the event is about (e.g. the entitlement id). */
  aggregateId: string;
  /** The aggregate's version after this event (1, 2, 3 …), for per-aggregate ordering. */
  aggregateVersion?: number | undefined;
  /** Full protobuf type name of the payload, e.g. `punchcard.events.v1.SessionConsumed`. */
  dataType: string;
}

/** `ce-dataschema` value for a protobuf type name. */
export function dataSchemaFor(typeName: string): string {
  return `proto:${typeName}`;
}

/** The protobuf type name in a `ce-dataschema` value, if it names one. */
export function typeNameOfDataSchema(value: string | undefined): string | undefined {
  return value?.startsWith('proto:') ? value.slice('proto:'.length) : undefined;
}

/**
 * NATS headers of an event: CloudEvents binary mode, content type, then `extra` (trace context and any
 * producer headers), which cannot override the CloudEvents attributes.
 */
export function eventHeaders(envelope: EventEnvelope, extra: Record<string, string> = {}): MsgHdrs {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(extra)) h.set(k.toLowerCase(), v);
  h.set(CE.specversion, '1.0');
  h.set(CE.id, envelope.id);
  h.set(CE.source, envelope.source);
  h.set(CE.type, envelope.type);
  h.set(CE.time, envelope.time.toISOString());
  h.set(CE.subject, envelope.aggregateId);
  h.set(CE.dataschema, dataSchemaFor(envelope.dataType));
  h.set(CE.tenantid, envelope.tenantId);
  if (envelope.aggregateVersion !== undefined) h.set(CE.entityversion, String(envelope.aggregateVersion));
  h.set(CONTENT_TYPE, PROTOBUF_CONTENT_TYPE);
  return h;
}

/** Headers as a record with lower-case names (last value wins), so senders' casing does not matter. */
export function headerRecord(h: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const [k, values] of h) {
    const last = values[values.length - 1];
    if (last !== undefined) out[k.toLowerCase()] = last;
  }
  return out;
}
