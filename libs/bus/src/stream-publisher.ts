import { createInbox, errors, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/nats-core';
import { JetStreamApiError, JetStreamError, type ApiError, type JetStreamClient, type PubAck } from '@nats-io/jetstream';
import { TransientMap } from './transient-map.js';

/**
 * Sends one message to JetStream and resolves with the stream's ack. The headers already hold what
 * JetStream reads (`Nats-Msg-Id`, `Nats-Expected-Stream`).
 */
export interface StreamPublisher {
  publish(natsSubject: string, payload: Uint8Array, headers: MsgHdrs): Promise<PubAck>;
}

/** A StreamPublisher that owns a subscription, ended by `close`. */
export interface AckRoutingPublisher extends StreamPublisher {
  /** Ends the subscription; publishes still waiting are rejected. */
  close(): void;
}

/** Publishes through `js.publish`: a NATS request per message. For one-off publishes. */
export function requestingPublisher(js: JetStreamClient): StreamPublisher {
  return { publish: (natsSubject, payload, headers) => js.publish(natsSubject, payload, { headers }) };
}

interface Waiting {
  natsSubject: string;
  deadline: number;
  resolve(ack: PubAck): void;
  reject(err: Error): void;
}

interface AckBody {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  domain?: string;
  error?: ApiError;
}

/**
 * Publishes as core NATS messages, each with a reply subject of its own under one subscription that
 * routes the streams' acks back to their publishes. `js.publish` makes a request of each message
 * (options copied, a request object and its timer, the ack decoded by a new TextDecoder); for a relay
 * sending hundreds at a time that was about a third more client CPU per message (measured in
 * bench/JOURNAL.md). One timeout for every publish means they fall due in the order they were sent,
 * so one timer serves them all. Failures are those `js.publish` raises: `NoRespondersError` when no
 * stream takes the subject, `JetStreamApiError` for a refusal (e.g. the expected stream does not
 * match), `TimeoutError` when no ack arrives in time, `ClosedConnectionError` once the connection or
 * the publisher is closed.
 */
export function ackRoutingPublisher(nc: NatsConnection, timeoutMs: number): AckRoutingPublisher {
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new Error(`publish timeout must be a positive integer of milliseconds, got ${timeoutMs}`);
  const inbox = createInbox();
  const prefix = `${inbox}.`;
  // Insertion order is deadline order (one timeout for all), which the timer relies on. Every
  // publish passes through it, so a TransientMap, not a Map.
  const waiting = new TransientMap<string, Waiting>();
  let sent = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const settle = (msg: Msg) => {
    const token = msg.subject.slice(prefix.length);
    const w = waiting.get(token);
    // An ack after its publish timed out: the publish is already reported failed.
    if (!w) return;
    waiting.delete(token);
    try {
      w.resolve(ackOf(msg, w.natsSubject));
    } catch (err) {
      w.reject(err as Error);
    }
  };
  const rejectAll = (err: Error) => {
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
    clearTimeout(timer);
    timer = undefined;
  };
  const expire = () => {
    timer = undefined;
    const now = Date.now();
    for (const [token, w] of waiting) {
      if (w.deadline > now) break;
      waiting.delete(token);
      w.reject(new errors.TimeoutError());
    }
    arm();
  };
  const arm = () => {
    if (timer !== undefined) return;
    const first = waiting.values().next();
    if (first.done) return;
    timer = setTimeout(expire, Math.max(0, first.value.deadline - Date.now()));
  };

  const sub = nc.subscribe(`${inbox}.*`, {
    callback: (err, msg) => {
      if (err) rejectAll(err);
      else settle(msg);
    },
  });
  void nc.closed().then(() => {
    closed = true;
    rejectAll(new errors.ClosedConnectionError());
  });

  return {
    publish(natsSubject, payload, headers) {
      if (closed || nc.isClosed()) return Promise.reject(new errors.ClosedConnectionError());
      const token = (sent++).toString(36);
      return new Promise<PubAck>((resolve, reject) => {
        waiting.set(token, { natsSubject, deadline: Date.now() + timeoutMs, resolve, reject });
        try {
          nc.publish(natsSubject, payload, { reply: prefix + token, headers });
        } catch (err) {
          waiting.delete(token);
          reject(err as Error);
          return;
        }
        arm();
      });
    },
    close() {
      if (closed) return;
      closed = true;
      rejectAll(new errors.ClosedConnectionError());
      if (!nc.isClosed()) sub.unsubscribe();
    },
  };
}

/** The stream's answer to one publish, as `js.publish` reads it. */
function ackOf(msg: Msg, natsSubject: string): PubAck {
  if (msg.data.length === 0 && msg.headers?.hasError) {
    if (msg.headers.code === 503) throw new errors.NoRespondersError(natsSubject);
    throw new errors.RequestError(`publish to ${natsSubject} answered ${msg.headers.status}`);
  }
  const body = msg.json<AckBody>();
  if (body.error) throw new JetStreamApiError(body.error);
  if (!body.stream || body.seq === undefined) throw new JetStreamError('invalid ack response');
  return { stream: body.stream, seq: body.seq, duplicate: body.duplicate === true, ...(body.domain ? { domain: body.domain } : {}) };
}
