import http from 'node:http';
import net from 'node:net';
import { create, type DescMethodUnary } from '@bufbuild/protobuf';
import { createContextValues, createHandlerContext } from '@connectrpc/connect';
import {
  createAsyncIterable,
  pipe,
  readAllBytes,
  type Serialization,
  transformAppend,
  transformCatch,
  transformCatchFinally,
  transformCompressEnvelope,
  transformDecompressEnvelope,
  transformInvokeImplementation,
  transformJoinEnvelopes,
  transformParseEnvelope,
  transformPrepend,
  transformReadAllBytes,
  transformSerializeEnvelope,
  transformSplitEnvelope,
} from '@connectrpc/connect/protocol';
import { universalRequestFromNodeRequest } from '@connectrpc/connect-node';
import { Health, HealthCheckRequestSchema, HealthCheckResponseSchema } from '@punchcard/contracts/grpc/health/v1/health_pb';
import { describe, expect, it } from 'vitest';

/*
 * The patches in patches/@connectrpc__connect*.patch make every async generator on a request's path
 * a native one declared once. TypeScript's ES2017 output, as published, made a generator function
 * per call; V8 gives such a function, once called, a map of its own in the old generation that
 * points back at it, so every scavenge kept the request its closure held and promoted it (20 KB
 * per request; 2 KB with the patches). A generator made by one function declared once is a native
 * AsyncGenerator whose prototype is that function's, the same for every call: both are checked,
 * so the test fails when an upgrade drops the patch or compiles the generators another way.
 */
function expectOneGeneratorFunction(make: () => AsyncIterable<unknown>) {
  const [first, second] = [make(), make()];
  expect(Object.prototype.toString.call(first)).toBe('[object AsyncGenerator]');
  expect(Object.getPrototypeOf(first)).toBe(Object.getPrototypeOf(second));
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of iterable) all.push(item);
  return all;
}

const chunks = () => createAsyncIterable([new Uint8Array([1, 2]), new Uint8Array([3])]);
const envelopes = () => createAsyncIterable([{ flags: 0, data: new Uint8Array([8, 1]) }]);
const serialization: Serialization<Uint8Array> = {
  parse: (data) => data,
  serialize: (data) => new Uint8Array(data),
};
const endMarked = () => createAsyncIterable([{ value: new Uint8Array([1]), end: false }]);

describe("connect's request pipeline (patched) makes no generator function per call", () => {
  it.each([
    ['pipe', () => pipe(chunks(), transformAppend<Uint8Array>(() => undefined))],
    ['createAsyncIterable', chunks],
    ['transformCatch', () => transformCatch<Uint8Array>(() => undefined)(chunks())],
    ['transformCatchFinally', () => transformCatchFinally<Uint8Array>(() => undefined)(chunks())],
    ['transformAppend', () => transformAppend<Uint8Array>(() => undefined)(chunks())],
    ['transformPrepend', () => transformPrepend<Uint8Array>(() => undefined)(chunks())],
    ['transformReadAllBytes', () => transformReadAllBytes(1024)(chunks())],
    ['transformSplitEnvelope', () => transformSplitEnvelope(1024)(chunks())],
    ['transformJoinEnvelopes', () => transformJoinEnvelopes()(envelopes())],
    ['transformCompressEnvelope', () => transformCompressEnvelope(null, 1024)(envelopes())],
    ['transformDecompressEnvelope', () => transformDecompressEnvelope(null, 1024)(envelopes())],
    ['transformSerializeEnvelope', () => transformSerializeEnvelope(serialization)(chunks())],
    ['transformSerializeEnvelope with an end flag', () => transformSerializeEnvelope(serialization, 2, serialization)(endMarked())],
    ['transformParseEnvelope', () => transformParseEnvelope(serialization)(envelopes())],
    ['transformParseEnvelope with an end flag', () => transformParseEnvelope(serialization, 2, serialization)(envelopes())],
  ])('%s', (_name, make) => expectOneGeneratorFunction(make));

  it('invoking a unary implementation', async () => {
    const method = Health.method.check as DescMethodUnary<typeof HealthCheckRequestSchema, typeof HealthCheckResponseSchema>;
    const spec = { kind: 'unary' as const, method, impl: () => ({ status: 1 }) };
    const invoke = () => {
      const context = createHandlerContext({
        service: Health,
        method,
        protocolName: 'grpc',
        requestMethod: 'POST',
        url: 'http://localhost/grpc.health.v1.Health/Check',
        contextValues: createContextValues(),
      });
      return transformInvokeImplementation(spec, context, [])(createAsyncIterable([create(HealthCheckRequestSchema)]));
    };
    expectOneGeneratorFunction(invoke);
    const [response] = await collect(invoke());
    expect(response).toMatchObject({ status: 1 });
  });

  it("connect-node's request body", async () => {
    const request = () => {
      const incoming = new http.IncomingMessage(new net.Socket());
      incoming.headers = { host: 'localhost', 'content-type': 'application/grpc' };
      incoming.method = 'POST';
      incoming.url = '/grpc.health.v1.Health/Check';
      return incoming;
    };
    expectOneGeneratorFunction(() => universalRequestFromNodeRequest(request(), undefined, undefined).body as AsyncIterable<Uint8Array>);

    const incoming = request();
    incoming.push(Buffer.from([1, 2, 3]));
    incoming.push(null);
    const body = universalRequestFromNodeRequest(incoming, undefined, undefined).body as AsyncIterable<Uint8Array>;
    expect(Array.from(await readAllBytes(body, 1024))).toEqual([1, 2, 3]);
  });
});

describe('the patched generators behave as the published ones', () => {
  it('a pipe runs its transforms in order and ends', async () => {
    const out = pipe(
      chunks(),
      transformPrepend(() => new Uint8Array([0])),
      transformAppend(() => new Uint8Array([4])),
      transformReadAllBytes(1024),
    );
    expect(Array.from((await collect(out))[0] as Uint8Array)).toEqual([0, 1, 2, 3, 4]);
  });

  it('envelopes split, parse, serialize and join back to the same bytes', async () => {
    const wire = new Uint8Array([0, 0, 0, 0, 2, 8, 1, 0, 0, 0, 0, 1, 9]);
    const out = pipe(
      createAsyncIterable([wire.subarray(0, 3), wire.subarray(3)]),
      transformSplitEnvelope(1024),
      transformDecompressEnvelope(null, 1024),
      transformParseEnvelope(serialization),
      transformSerializeEnvelope(serialization),
      transformCompressEnvelope(null, 1024),
      transformJoinEnvelopes(),
    );
    expect(Array.from(await readAllBytes(out, 1024))).toEqual(Array.from(wire));
  });

  it('an incomplete envelope is an error', async () => {
    const out = pipe(createAsyncIterable([new Uint8Array([0, 0, 0, 0, 5, 1])]), transformSplitEnvelope(1024));
    await expect(collect(out)).rejects.toThrow(/incomplete envelope/);
  });

  it('an error from upstream reaches catch and catch-finally, which may yield a last value', async () => {
    const failing = async function* () {
      yield 1;
      throw new Error('upstream failed');
    };
    const seen: unknown[] = [];
    const caught = pipe(failing(), transformCatch<number | string>((e) => `caught: ${(e as Error).message}`));
    expect(await collect(caught)).toEqual([1, 'caught: upstream failed']);
    const finallyOut = pipe(
      failing(),
      transformCatchFinally<number | string>((e) => {
        seen.push(e);
        return 'last';
      }),
    );
    expect(await collect(finallyOut)).toEqual([1, 'last']);
    expect(seen).toHaveLength(1);
  });

  it('a pipe that propagates a downstream error returns the source', async () => {
    let returned = false;
    const source = {
      [Symbol.asyncIterator]: () => ({
        next: async () => ({ done: false as const, value: 1 }),
        throw: async () => ({ done: true as const, value: undefined }),
        return: async () => {
          returned = true;
          return { done: true as const, value: undefined };
        },
      }),
    };
    const it = pipe(source, transformAppend<number>(() => undefined), { propagateDownStreamError: true })[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ done: false, value: 1 });
    await expect(it.throw!(new Error('downstream failed'))).rejects.toThrow('downstream failed');
    expect(returned).toBe(true);
  });
});
