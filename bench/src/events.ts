import { performance } from 'node:perf_hooks';
import { AckPolicy, DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import { streamName, withNamespace, type StreamKey } from '@punchcard/bus';
import type { BenchEnv } from './env.js';

/**
 * A plain JetStream subscriber (new messages only, no acks), as any downstream system
 * would read Punchcard's events: notes when each message arrives, keyed by `key(message)`.
 */
export class EventWatch {
  readonly seen = new Map<string, number>();
  private constructor(private readonly messages: ConsumerMessages, private readonly done: Promise<void>) {}

  static async start(
    env: BenchEnv,
    stream: StreamKey,
    subject: string,
    key: (data: Uint8Array, headers: { get(name: string): string }) => string | undefined,
  ): Promise<EventWatch> {
    // An ephemeral pull consumer with one filter subject: nats-server 2.9 knows no filter_subjects.
    const name = streamName(env.namespace, stream);
    const info = await env.bus.jsm.consumers.add(name, {
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.New,
      filter_subject: withNamespace(env.namespace, subject),
      inactive_threshold: 60_000_000_000,
    });
    const consumer = await env.bus.js.consumers.get(name, info.name);
    const messages = await consumer.consume();
    let watch: EventWatch | undefined;
    const pending = new Map<string, number>();
    const done = (async () => {
      for await (const m of messages) {
        const at = performance.now();
        const k = key(m.data, { get: (name) => m.headers?.get(name) ?? '' });
        if (k !== undefined) (watch?.seen ?? pending).set(k, at);
      }
    })();
    watch = new EventWatch(messages, done);
    for (const [k, at] of pending) watch.seen.set(k, at);
    env.defer(() => watch.stop());
    return watch;
  }

  /** Resolves once every key has arrived, or `timeoutMs` passed; returns the keys still missing. */
  async waitFor(keys: Iterable<string>, timeoutMs: number, onProgress?: (missing: number) => void): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    let missing = [...keys].filter((k) => !this.seen.has(k));
    while (missing.length > 0 && Date.now() < deadline) {
      onProgress?.(missing.length);
      await new Promise((r) => setTimeout(r, 100));
      missing = missing.filter((k) => !this.seen.has(k));
    }
    return missing;
  }

  async stop(): Promise<void> {
    await this.messages.close();
    await this.done;
  }
}

/**
 * Counts the messages on a subject that `accept` keeps (and sums what `amount` says of them),
 * noting the first and last arrival: for runs too large to track every event by key.
 */
export class EventCounter {
  count = 0;
  total = 0n;
  first: number | undefined;
  last: number | undefined;
  private constructor(private readonly messages: ConsumerMessages, private readonly done: Promise<void>) {}

  static async start(
    env: BenchEnv,
    stream: StreamKey,
    subject: string,
    accept: (data: Uint8Array) => { amount?: bigint } | undefined,
  ): Promise<EventCounter> {
    const name = streamName(env.namespace, stream);
    const info = await env.bus.jsm.consumers.add(name, {
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.New,
      filter_subject: withNamespace(env.namespace, subject),
      inactive_threshold: 60_000_000_000,
    });
    const messages = await (await env.bus.js.consumers.get(name, info.name)).consume();
    const state = { counter: undefined as EventCounter | undefined };
    const done = (async () => {
      for await (const m of messages) {
        const kept = accept(m.data);
        const c = state.counter;
        if (!kept || !c) continue;
        const at = performance.now();
        c.count++;
        c.total += kept.amount ?? 0n;
        c.first ??= at;
        c.last = at;
      }
    })();
    const counter = new EventCounter(messages, done);
    state.counter = counter;
    env.defer(() => counter.stop());
    return counter;
  }

  /** Waits until `n` were counted or nothing arrived for `idleMs`; returns whether all arrived. */
  async waitForCount(n: number, idleMs: number, onProgress?: (count: number) => void): Promise<boolean> {
    let lastCount = -1;
    let lastChange = Date.now();
    while (this.count < n) {
      if (this.count !== lastCount) {
        lastCount = this.count;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > idleMs) {
        return false;
      }
      onProgress?.(this.count);
      await new Promise((r) => setTimeout(r, 250));
    }
    return true;
  }

  async stop(): Promise<void> {
    await this.messages.close();
    await this.done;
  }
}
