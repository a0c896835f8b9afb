import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';

export interface Bus {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** Flushes what is pending and closes the connection; safe to call twice. */
  close(): Promise<void>;
}

export interface ConnectBusOptions {
  /** One URL or a comma-separated list, e.g. `nats://127.0.0.1:4222`. */
  url: string;
  /** Connection name shown by the server (`nats server report connections`): the service name. */
  name: string;
  /** Milliseconds to wait for a JetStream publish ack or API reply; default 5000. */
  timeoutMs?: number;
}

/** Connects to NATS, reconnecting forever (a service outlives a NATS restart), with JetStream handles. */
export async function connectBus(options: ConnectBusOptions): Promise<Bus> {
  const nc = await connect({
    servers: options.url.split(',').map((s) => s.trim()),
    name: options.name,
    maxReconnectAttempts: -1,
    // Otherwise every request (each JetStream publish) builds two Error objects up front for a stack
    // trace it rarely needs: a measurable share of a relay's CPU. Timeouts still name the subject.
    noAsyncTraces: true,
  });
  const timeout = options.timeoutMs ?? 5000;
  const jsm = await jetstreamManager(nc, { timeout });
  const js = jetstream(nc, { timeout });
  let closing: Promise<void> | undefined;
  return {
    nc,
    js,
    jsm,
    close: () =>
      (closing ??= nc.isClosed()
        ? Promise.resolve()
        : nc.drain().catch(async () => {
            await nc.close();
          })),
  };
}
