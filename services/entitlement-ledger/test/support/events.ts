import { fromBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { AckPolicy, DeliverPolicy } from '@nats-io/jetstream';
import { publishEvent, streamName, withNamespace, type Bus } from '@punchcard/bus';
import { RefundPayoutSchema } from '@punchcard/contracts/punchcard/events/v1/billing_events_pb';

export interface RawEvent {
  subject: string;
  type: string;
  id: string;
  entityVersion: string | undefined;
  aggregateId: string | undefined;
  dataSchema: string | undefined;
  data: Uint8Array;
}

/** Reads the LEDGER stream's events on `filter` (namespace-free) with a plain JetStream consumer. */
export async function readEvents(bus: Bus, namespace: string, filter: string): Promise<RawEvent[]> {
  const stream = streamName(namespace, 'LEDGER');
  const info = await bus.jsm.consumers.add(stream, {
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
    filter_subject: withNamespace(namespace, filter),
    inactive_threshold: 30_000_000_000,
  });
  const consumer = await bus.js.consumers.get(stream, info.name);
  const out: RawEvent[] = [];
  let pending = info.num_pending;
  while (pending > 0) {
    const batch = await consumer.fetch({ max_messages: pending, expires: 5000 });
    let got = 0;
    for await (const m of batch) {
      out.push({
        subject: m.subject.slice(namespace.length + 1),
        type: m.headers?.get('ce-type') ?? '',
        id: m.headers?.get('Nats-Msg-Id') ?? '',
        entityVersion: m.headers?.get('ce-entityversion') || undefined,
        aggregateId: m.headers?.get('ce-subject') || undefined,
        dataSchema: m.headers?.get('ce-dataschema') || undefined,
        data: m.data,
      });
      got++;
    }
    if (got === 0) break;
    pending -= got;
  }
  await bus.jsm.consumers.delete(stream, info.name);
  return out;
}

export function decode<S extends DescMessage>(schema: S, e: RawEvent): MessageShape<S> {
  return fromBinary(schema, e.data);
}

/** Publishes billing.refund_paid / billing.refund_failed as billing-integration does (its contract). */
export async function publishPayout(
  bus: Bus,
  namespace: string,
  outcome: 'refund_paid' | 'refund_failed',
  p: { tenantId: string; refundId: string; entitlementId: string; currency: string; amountMinor: bigint; providerReference?: string; failureReason?: string },
  eventId?: string,
): Promise<string> {
  const { id } = await publishEvent(bus.js, {
    namespace,
    source: '/punchcard/billing-integration',
    producer: 'billing',
    event: outcome,
    tenantId: p.tenantId,
    aggregateId: p.refundId,
    schema: RefundPayoutSchema,
    message: {
      tenantId: p.tenantId,
      refundId: p.refundId,
      entitlementId: p.entitlementId,
      amount: { currencyCode: p.currency, amountMinor: p.amountMinor },
      providerReference: p.providerReference ?? '',
      failureReason: p.failureReason ?? '',
    },
    ...(eventId ? { id: eventId } : {}),
  });
  return id;
}
