import { errors, headers as natsHeaders, type NoRespondersError } from '@nats-io/nats-core';
import { JetStreamApiError, PubHeaders } from '@nats-io/jetstream';
import { testNats, testNamespace } from '@punchcard/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ackRoutingPublisher, connectBus, declareStreams, deleteStreams, streamName, type AckRoutingPublisher, type Bus } from '../src/index.js';
import { readStream } from './helpers.js';

let bus: Bus;
let namespace: string;
const publishers: AckRoutingPublisher[] = [];

beforeAll(async () => {
  namespace = testNamespace('publisher');
  bus = await connectBus({ url: await testNats(), name: 'bus-test-publisher' });
  await declareStreams(bus.jsm, { namespace });
});
afterAll(async () => {
  for (const p of publishers) p.close();
  await deleteStreams(bus.jsm, namespace).catch(() => undefined);
  await bus.close();
});

function publisher(timeoutMs = 5000, on: Bus = bus): AckRoutingPublisher {
  const p = ackRoutingPublisher(on.nc, timeoutMs);
  publishers.push(p);
  return p;
}

/** Headers as the outbox relay sends them: message id and the stream the subject must land in. */
function sent(msgId: string, stream = streamName(namespace, 'LEDGER')) {
  const h = natsHeaders();
  h.set('ce-id', msgId);
  h.set(PubHeaders.MsgIdHdr, msgId);
  h.set(PubHeaders.ExpectedStreamHdr, stream);
  return h;
}

const ledgerSubject = (event: string) => `${namespace}.punchcard.ledger.${event}.tenant-a`;
const payload = (text: string) => new TextEncoder().encode(text);

describe('ackRoutingPublisher', () => {
  it('routes each ack to its publish, hundreds in flight at once, and stores a repeated message id once', async () => {
    const p = publisher();
    const ids = Array.from({ length: 300 }, (_, i) => `routed-${i}`);
    const acks = await Promise.all(ids.map((id) => p.publish(ledgerSubject('routed'), payload(id), sent(id))));
    const stream = streamName(namespace, 'LEDGER');
    expect(acks.every((a) => a.stream === stream && !a.duplicate)).toBe(true);
    // Sent in order on one connection, stored in that order: each publish got its own message's ack.
    const first = acks[0]!.seq;
    expect(acks.map((a) => a.seq)).toEqual(ids.map((_, i) => first + i));

    const again = await p.publish(ledgerSubject('routed'), payload('routed-7'), sent('routed-7'));
    expect(again).toMatchObject({ stream, seq: first + 7, duplicate: true });

    const stored = (await readStream(bus, namespace, 'LEDGER')).filter((m) => m.subject === ledgerSubject('routed'));
    expect(stored.map((m) => m.headers?.get('ce-id'))).toEqual(ids);
    expect(stored.map((m) => new TextDecoder().decode(m.data))).toEqual(ids);
  });

  it('rejects a publish the stream refuses (another stream expected) with the JetStream error, and goes on', async () => {
    const p = publisher();
    const refused = p.publish(ledgerSubject('misfiled'), payload('x'), sent('misfiled-1', streamName(namespace, 'REVENUE')));
    const fine = p.publish(ledgerSubject('misfiled'), payload('y'), sent('misfiled-2'));
    const err = await refused.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(JetStreamApiError);
    // 10060: expected stream does not match.
    expect((err as JetStreamApiError).apiError().err_code).toBe(10060);
    expect((await fine).duplicate).toBe(false);
  });

  it('rejects a publish no stream takes with NoRespondersError naming the subject', async () => {
    const p = publisher();
    const subject = `${namespace}.nowhere.at-all`;
    const err = await p.publish(subject, payload('x'), sent('nowhere-1')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(errors.NoRespondersError);
    expect((err as NoRespondersError).subject).toBe(subject);
  });

  it('times out publishes that get no ack, each on its own, while acked ones between them resolve; a late ack is ignored', async () => {
    // A plain subscriber takes the subject instead of a stream: no ack unless it answers.
    const silent = `${namespace}.silent.x`;
    const late: Array<() => void> = [];
    const sub = bus.nc.subscribe(silent, { callback: (_err, msg) => void late.push(() => msg.respond(payload('{"stream":"LATE","seq":1}'))) });
    await bus.nc.flush();
    try {
      const p = publisher(300);
      const first = p.publish(silent, payload('a'), sent('silent-1')).catch((e: unknown) => e);
      const acked = p.publish(ledgerSubject('between'), payload('b'), sent('between-1'));
      await new Promise((r) => setTimeout(r, 100));
      let secondSettled = false;
      const second = p.publish(silent, payload('c'), sent('silent-2')).catch((e: unknown) => e);
      void second.then(() => (secondSettled = true));

      expect((await acked).duplicate).toBe(false);
      expect(await first).toBeInstanceOf(errors.TimeoutError);
      // Everything the first timeout settled has run by the next turn of the loop: the second, sent
      // 100 ms later, is still within its own time.
      await new Promise((r) => setImmediate(r));
      expect(secondSettled).toBe(false);
      expect(await second).toBeInstanceOf(errors.TimeoutError);
      expect(late).toHaveLength(2);

      // Answers after the timeouts reach no publish, and the publisher still works.
      for (const answer of late) answer();
      await bus.nc.flush();
      expect((await p.publish(ledgerSubject('between'), payload('d'), sent('between-2'))).duplicate).toBe(false);
    } finally {
      sub.unsubscribe();
    }
  });

  it('rejects waiting publishes when it is closed, and any publish after', async () => {
    const silent = `${namespace}.silent.closed`;
    const sub = bus.nc.subscribe(silent, { callback: () => undefined });
    await bus.nc.flush();
    try {
      const p = publisher(60_000);
      const waiting = p.publish(silent, payload('a'), sent('closed-1')).catch((e: unknown) => e);
      await bus.nc.flush();
      p.close();
      expect(await waiting).toBeInstanceOf(errors.ClosedConnectionError);
      await expect(p.publish(ledgerSubject('closed'), payload('b'), sent('closed-2'))).rejects.toBeInstanceOf(errors.ClosedConnectionError);
    } finally {
      sub.unsubscribe();
    }
  });

  it('rejects waiting publishes when the connection closes, without waiting for their timeout', async () => {
    const own = await connectBus({ url: await testNats(), name: 'bus-test-publisher-closing' });
    const silent = `${namespace}.silent.connection`;
    const sub = bus.nc.subscribe(silent, { callback: () => undefined });
    await bus.nc.flush();
    try {
      const p = publisher(60_000, own);
      const waiting = p.publish(silent, payload('a'), sent('connection-1')).catch((e: unknown) => e);
      await own.nc.flush();
      await own.close();
      expect(await waiting).toBeInstanceOf(errors.ClosedConnectionError);
      await expect(p.publish(silent, payload('b'), sent('connection-2'))).rejects.toBeInstanceOf(errors.ClosedConnectionError);
    } finally {
      sub.unsubscribe();
    }
  });

  it('refuses a timeout that is not a positive whole number of milliseconds', () => {
    expect(() => ackRoutingPublisher(bus.nc, 0)).toThrow(/timeout/);
    expect(() => ackRoutingPublisher(bus.nc, 1.5)).toThrow(/timeout/);
  });
});
