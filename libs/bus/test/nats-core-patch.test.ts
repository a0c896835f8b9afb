import { Match, MsgHdrsImpl, RequestError, TimeoutError } from '@nats-io/nats-core';
import { testNats, testNamespace } from '@punchcard/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, eventHeaders, headerRecord, type Bus } from '../src/index.js';

/**
 * The patched request path of @nats-io/nats-core (patches/): a successful request, as every JetStream
 * publish is, builds no RequestError, while failed requests still reject as before.
 */
describe('NATS requests (patched nats-core)', () => {
  let bus: Bus;
  const subject = `${testNamespace('requests')}.echo`;

  beforeAll(async () => {
    bus = await connectBus({ url: await testNats(), name: 'bus-test-requests' });
    bus.nc.subscribe(subject, { callback: (_err, msg) => void msg.respond(msg.data) });
    bus.nc.subscribe(`${subject}.silent`, { callback: () => undefined });
    await bus.nc.flush();
  });
  afterAll(() => bus.close());

  /** Counts RequestErrors built while `work` runs: the constructor assigns `name`, which a setter sees. */
  async function requestErrorsBuilt(work: () => Promise<unknown>): Promise<number> {
    let built = 0;
    Object.defineProperty(RequestError.prototype, 'name', {
      configurable: true,
      set(this: Error, value: string) {
        built++;
        Object.defineProperty(this, 'name', { value, writable: true, configurable: true });
      },
    });
    try {
      await work();
    } finally {
      delete (RequestError.prototype as { name?: string }).name;
    }
    return built;
  }

  it('answers requests without building an error for each', async () => {
    let answers: string[] = [];
    const built = await requestErrorsBuilt(async () => {
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => bus.nc.request(subject, `ping ${i}`, { timeout: 2000 })));
      answers = replies.map((m) => m.string());
    });
    expect(answers).toEqual(Array.from({ length: 20 }, (_, i) => `ping ${i}`));
    expect(built).toBe(0);
  });

  it('still rejects a request nobody answers in time, and one nobody listens to', async () => {
    await expect(bus.nc.request(`${subject}.silent`, 'x', { timeout: 100 })).rejects.toBeInstanceOf(TimeoutError);
    await expect(bus.nc.request(`${subject}.nobody`, 'x', { timeout: 2000 })).rejects.toSatisfy((err: unknown) => err instanceof RequestError && err.isNoResponders());
    // The connection still answers afterwards: the failed requests left nothing behind in its muxer.
    expect((await bus.nc.request(subject, 'after', { timeout: 2000 })).string()).toBe('after');
  });
});

/** The patched headers (patches/): exact keys are found without listing every key, and set without building their canonical form. */
describe('NATS headers (patched nats-core)', () => {
  const envelope = {
    id: 'e1',
    source: '/punchcard/test',
    type: 'punchcard.test.happened',
    time: new Date('2026-12-06T05:00:00Z'),
    aggregateId: 'a1',
    aggregateVersion: 7,
    dataType: 'punchcard.test.v1.Happened',
    tenantId: 't1',
  };

  it('builds and reads the headers of an event without listing the keys once per header', () => {
    const keys = MsgHdrsImpl.prototype.keys;
    let listed = 0;
    MsgHdrsImpl.prototype.keys = function (this: MsgHdrsImpl) {
      listed++;
      return keys.call(this);
    };
    try {
      const built = eventHeaders(envelope, { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
      expect(built).toBeInstanceOf(MsgHdrsImpl);
      const read = MsgHdrsImpl.decode((built as MsgHdrsImpl).encode());
      expect(headerRecord(read)).toMatchObject({ 'ce-id': 'e1', 'ce-entityversion': '7', 'ce-tenantid': 't1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    } finally {
      MsgHdrsImpl.prototype.keys = keys;
    }
    expect(listed).toBe(0);
  });

  it('builds the headers of an event without building a canonical name for each, and still refuses bad names and values', () => {
    const fromCharCode = String.fromCharCode;
    let built = 0;
    String.fromCharCode = (...codes: number[]) => {
      built++;
      return fromCharCode(...codes);
    };
    let encoded: Uint8Array;
    try {
      encoded = (eventHeaders(envelope, {}) as MsgHdrsImpl).encode();
    } finally {
      String.fromCharCode = fromCharCode;
    }
    expect(built).toBe(0);
    expect(new TextDecoder().decode(encoded)).toContain('\r\nce-tenantid: t1\r\n');
    const h = new MsgHdrsImpl();
    expect(() => h.set('bad name', 'x')).toThrow(/not a valid character in a header name/);
    expect(() => h.set('bad:name', 'x')).toThrow(/not a valid character in a header name/);
    expect(() => h.append('ce-id', 'two\r\nlines')).toThrow(/cannot contain/);
    expect(() => h.append('ce-id', 'one\nline')).toThrow(/cannot contain/);
    h.set('ce-id', '  padded  ');
    expect(h.get('ce-id')).toBe('padded');
    expect(h.keys()).toEqual(['ce-id']);
  });

  it('keeps what set, append, get, values, has and delete mean, for every kind of match', () => {
    const h = new MsgHdrsImpl();
    h.append('ce-id', 'a');
    h.append('ce-id', 'b');
    expect(h.values('ce-id')).toEqual(['a', 'b']);
    expect(h.get('ce-id')).toBe('a');
    expect(h.last('ce-id')).toBe('b');
    h.set('ce-id', 'c');
    expect(h.values('ce-id')).toEqual(['c']);
    expect(h.has('CE-ID')).toBe(false);
    expect(h.has('CE-ID', Match.IgnoreCase)).toBe(true);
    h.append('Content-Type', 'application/protobuf');
    expect(h.values('content-type', Match.CanonicalMIME)).toEqual(['application/protobuf']);
    expect(h.get('content-type')).toBe('');
    h.delete('ce-id');
    expect(h.has('ce-id')).toBe(false);
    expect(h.keys()).toEqual(['Content-Type']);
  });
});
