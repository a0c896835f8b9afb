import { jetstream, type ConsumerMessages } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';

/** One event as a plain JetStream subscriber sees it. */
export interface SeenEvent {
  stream: string;
  /** Subject without the test namespace, e.g. `punchcard.ledger.session_consumed.<tenant>`. */
  subject: string;
  headers: Record<string, string>;
  data: Uint8Array;
}

export interface EventObserver {
  events: SeenEvent[];
  /** Resolves with the first event (seen so far or later) that matches. */
  waitFor(what: string, match: (e: SeenEvent) => boolean, timeoutMs?: number): Promise<SeenEvent>;
  close(): Promise<void>;
}

/**
 * Reads every event of `streams` (namespaced names, e.g. `<ns>_LEDGER`) from the start with
 * ordered consumers: no durable state, no acks, nothing shared with the services' consumers.
 */
export async function observeStreams(url: string, namespace: string, streams: readonly string[]): Promise<EventObserver> {
  const nc: NatsConnection = await connect({ servers: url, name: 'e2e-observer' });
  const js = jetstream(nc);
  const events: SeenEvent[] = [];
  const waiters = new Set<{ match: (e: SeenEvent) => boolean; resolve: (e: SeenEvent) => void }>();
  const subscriptions: ConsumerMessages[] = [];
  for (const stream of streams) {
    const consumer = await js.consumers.get(stream);
    const messages = await consumer.consume();
    subscriptions.push(messages);
    void (async () => {
      for await (const m of messages) {
        const headers: Record<string, string> = {};
        for (const key of m.headers?.keys() ?? []) headers[key.toLowerCase()] = m.headers!.get(key);
        const event = { stream, subject: m.subject.slice(namespace.length + 1), headers, data: m.data };
        events.push(event);
        for (const w of waiters) {
          if (w.match(event)) {
            waiters.delete(w);
            w.resolve(event);
          }
        }
      }
    })();
  }
  return {
    events,
    waitFor(what, match, timeoutMs = 30_000) {
      const seen = events.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = {
          match,
          resolve: (e: SeenEvent) => {
            clearTimeout(timer);
            resolve(e);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no ${what} event within ${timeoutMs} ms; seen: ${events.map((e) => e.subject).join(', ')}`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    async close() {
      for (const s of subscriptions) s.stop();
      await nc.drain();
    },
  };
}
