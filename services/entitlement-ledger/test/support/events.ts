import { fromBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { publishEvent, streamName, withNamespace, type Bus } from '@punchcard/bus';
import { RefundPayoutSchema } from '@punchcard/contracts/punchcard/events/v1/billing_events_pb';
import { readStream } from '@punchcard/testing';

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
  const messages = await readStream(bus.nc, streamName(namespace, 'LEDGER'), withNamespace(namespace, filter));
  return messages.map((m) => ({
    subject: m.subject.slice(namespace.length + 1),
    type: m.headers?.get('ce-type') ?? '',
    id: m.headers?.get('Nats-Msg-Id') ?? '',
    entityVersion: m.headers?.get('ce-entityversion') || undefined,
    aggregateId: m.headers?.get('ce-subject') || undefined,
    dataSchema: m.headers?.get('ce-dataschema') || undefined,
    data: m.data,
  }));
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
