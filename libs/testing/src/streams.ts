import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';

/**
 * Every message stored so far on `stream` (or on its `filterSubject`), in stream order, read by an
 * ephemeral consumer that acks nothing: a test sees what any subscriber would, and takes it from no one.
 */
export async function readStream(nc: NatsConnection, stream: string, filterSubject?: string): Promise<JsMsg[]> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.consumers.add(stream, {
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
    ...(filterSubject ? { filter_subject: filterSubject } : {}),
    // Cleaned up by the server should the test die before deleting it (nanoseconds).
    inactive_threshold: 30_000_000_000,
  });
  const consumer = await jetstream(nc).consumers.get(stream, info.name);
  const out: JsMsg[] = [];
  let pending = info.num_pending;
  while (pending > 0) {
    const batch = await consumer.fetch({ max_messages: pending, expires: 5000 });
    let got = 0;
    for await (const m of batch) {
      out.push(m);
      got++;
    }
    if (got === 0) break;
    pending -= got;
  }
  await jsm.consumers.delete(stream, info.name);
  return out;
}
