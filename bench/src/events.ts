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

/** Returns once `count()` reaches `n`, or has not moved for `idleMs`; reports it every 250 ms meanwhile. */
async function whileGrowing(count: () => number, n: number, idleMs: number, onProgress?: (count: number) => void): Promise<void> {
  let lastCount = -1;
  let lastChange = Date.now();
  while (count() < n) {
    const now = count();
    if (now !== lastCount) {
      lastCount = now;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > idleMs) {
      return;
    }
    onProgress?.(now);
    await new Promise((r) => setTimeout(r, 250));
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

  /** Counts the messages stored from now on, or from stream sequence `fromSequence` on. */
  static async start(
    env: BenchEnv,
    stream: StreamKey,
    subject: string,
    accept: (data: Uint8Array) => { amount?: bigint } | undefined,
    fromSequence?: number,
  ): Promise<EventCounter> {
    const name = streamName(env.namespace, stream);
    const info = await env.bus.jsm.consumers.add(name, {
      ack_policy: AckPolicy.None,
      ...(fromSequence === undefined ? { deliver_policy: DeliverPolicy.New } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSequence }),
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
    await whileGrowing(() => this.count, n, idleMs, onProgress);
    return this.count >= n;
  }

  async stop(): Promise<void> {
    await this.messages.close();
    await this.done;
  }
}

/**
 * How often a tally asks the server. The times come from the stream, so this only bounds how soon the
 * end is noticed; each ask counts the subject over the stream's blocks (about 1–2 ms of the server's
 * CPU at a million messages on the VMs of 7 December).
 */
const POLL_MS = 1000;

/**
 * Follows how many messages a stream has stored on one subject since `start`, and when the first and the
 * last of them were stored, from the stream's own state (polled), without receiving them: a run's observer
 * then adds no deliveries to the NATS server and no decoding to the bench process, whose CPU counts in
 * the machine's. Times are on `performance.now()`'s clock, to the millisecond the server stores.
 */
export class SubjectTally {
  count = 0;
  first: number | undefined;
  last: number | undefined;
  private readonly timer: NodeJS.Timeout;
  private polling: Promise<void> = Promise.resolve();
  private failure: Error | undefined;

  private constructor(
    private readonly env: BenchEnv,
    private readonly stream: string,
    private readonly subject: string,
    private readonly baseline: number,
    /** The stream's last sequence at the start: the first message counted comes after it. */
    readonly startSequence: number,
  ) {
    this.timer = setInterval(() => void this.poll(), POLL_MS);
  }

  static async start(env: BenchEnv, stream: StreamKey, subject: string): Promise<SubjectTally> {
    const name = streamName(env.namespace, stream);
    const natsSubject = withNamespace(env.namespace, subject);
    const { stored, lastSequence } = await storedOn(env, name, natsSubject);
    const tally = new SubjectTally(env, name, natsSubject, stored, lastSequence);
    env.defer(() => tally.stop());
    return tally;
  }

  /** Waits until `n` were stored or nothing was for `idleMs`; returns whether all were. */
  async waitForCount(n: number, idleMs: number, onProgress?: (count: number) => void): Promise<boolean> {
    // A failed poll ends the wait; the poll after it throws the failure.
    await whileGrowing(() => (this.failure ? n : this.count), n, idleMs, onProgress);
    await this.poll();
    if (this.failure) throw this.failure;
    return this.count >= n;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.polling;
  }

  /** One poll after those before it; the first failure is kept for `waitForCount` to throw. */
  private poll(): Promise<void> {
    this.polling = this.polling.then(() => this.refresh()).catch((err: Error) => void (this.failure ??= err));
    return this.polling;
  }

  private async refresh(): Promise<void> {
    const { stored, lastSequence } = await storedOn(this.env, this.stream, this.subject);
    const count = stored - this.baseline;
    if (count === this.count) return;
    const jsm = this.env.bus.jsm;
    if (this.first === undefined) {
      // Other subjects may share the stream: the first of this one is the first stored after the start on it.
      for (let seq = this.startSequence + 1; seq <= lastSequence; seq++) {
        const m = await jsm.streams.getMessage(this.stream, { seq });
        if (m?.subject === this.subject) {
          this.first = clockOf(m.time);
          break;
        }
      }
    }
    const last = await jsm.streams.getMessage(this.stream, { last_by_subj: this.subject });
    if (last) this.last = clockOf(last.time);
    // Set last, so whoever sees the count sees the times that go with it.
    this.count = count;
  }
}

async function storedOn(env: BenchEnv, stream: string, subject: string): Promise<{ stored: number; lastSequence: number }> {
  const info = await env.bus.jsm.streams.info(stream, { subjects_filter: subject });
  return { stored: info.state.subjects?.[subject] ?? 0, lastSequence: info.state.last_seq };
}

/** A server time on `performance.now()`'s clock. */
function clockOf(time: Date): number {
  return time.getTime() - performance.timeOrigin;
}
