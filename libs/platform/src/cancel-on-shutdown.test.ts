import { getEventListeners } from 'node:events';
import type { Interceptor, StreamResponse, UnaryRequest, UnaryResponse } from '@connectrpc/connect';
import { describe, expect, it } from 'vitest';
import { cancelOnShutdown } from './cancel-on-shutdown.js';

type Next = (req: UnaryRequest) => Promise<UnaryResponse | StreamResponse>;

/** Runs one call through `interceptor`, or a fresh one on `shutdown`; `handle` plays the implementation and sees its signal. */
function call(
  shutdown: AbortSignal | Interceptor,
  handle: (signal: AbortSignal) => Promise<UnaryResponse | StreamResponse>,
  request = new AbortController(),
) {
  const interceptor = shutdown instanceof AbortSignal ? cancelOnShutdown(shutdown) : shutdown;
  const next: Next = (req) => handle(req.signal);
  const intercepted = interceptor(next as never) as unknown as Next;
  return intercepted({ stream: false, signal: request.signal } as unknown as UnaryRequest);
}

const unary = { stream: false } as UnaryResponse;
const reason = new Error('server is shutting down');

describe('cancelOnShutdown', () => {
  it('aborts every call in flight with the shutdown reason, through one listener on the shutdown signal', async () => {
    const shutdown = new AbortController();
    const interceptor = cancelOnShutdown(shutdown.signal);
    const seen: AbortSignal[] = [];
    const calls = Array.from({ length: 25 }, () =>
      call(
        interceptor,
        (signal) =>
          new Promise((_, reject) => {
            seen.push(signal);
            signal.addEventListener('abort', () => reject(signal.reason), { once: true });
          }),
      ),
    );
    expect(getEventListeners(shutdown.signal, 'abort')).toHaveLength(1);
    shutdown.abort(reason);
    const outcomes = await Promise.allSettled(calls);
    expect(outcomes.every((o) => o.status === 'rejected' && o.reason === reason)).toBe(true);
    expect(seen.every((s) => s.aborted && s.reason === reason)).toBe(true);
  });

  it('leaves a call that has ended alone, and unlinks it from its request', async () => {
    const shutdown = new AbortController();
    const request = new AbortController();
    let signal: AbortSignal | undefined;
    await call(shutdown.signal, async (s) => ((signal = s), unary), request);
    expect(getEventListeners(request.signal, 'abort')).toHaveLength(0);
    shutdown.abort(reason);
    expect(signal?.aborted).toBe(false);
  });

  it('unlinks a call that failed', async () => {
    const shutdown = new AbortController();
    let signal: AbortSignal | undefined;
    const failure = new Error('failed');
    await expect(
      call(shutdown.signal, async (s) => {
        signal = s;
        throw failure;
      }),
    ).rejects.toBe(failure);
    shutdown.abort(reason);
    expect(signal?.aborted).toBe(false);
  });

  it("passes on the request's own abort (a deadline, the client gone) with its reason", async () => {
    const request = new AbortController();
    let signal: AbortSignal | undefined;
    const pending = call(new AbortController().signal, (s) => {
      signal = s;
      return new Promise(() => {});
    }, request);
    const gone = new Error('client went away');
    request.abort(gone);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBe(gone);
    void pending;
  });

  it('gives a call that arrives after shutdown an aborted signal', async () => {
    const shutdown = new AbortController();
    shutdown.abort(reason);
    let signal: AbortSignal | undefined;
    await call(shutdown.signal, async (s) => ((signal = s), unary));
    expect(signal?.reason).toBe(reason);
  });

  it('keeps a response stream linked until it ends, however it ends', async () => {
    const shutdown = new AbortController();
    let signal: AbortSignal | undefined;
    async function* ticks() {
      yield 1;
      yield 2;
    }
    const stream = (s: AbortSignal) => ((signal = s), Promise.resolve({ stream: true, message: ticks() } as unknown as StreamResponse));

    const res = (await call(shutdown.signal, stream)) as StreamResponse;
    const it = res.message[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ done: false, value: 1 });
    shutdown.abort(reason);
    expect(signal?.reason).toBe(reason);

    const later = new AbortController();
    const ended = (await call(later.signal, stream)) as StreamResponse;
    const all: unknown[] = [];
    for await (const n of ended.message) all.push(n);
    expect(all).toEqual([1, 2]);
    later.abort(reason);
    expect(signal?.aborted).toBe(false);

    const left = new AbortController();
    const stopped = (await call(left.signal, stream)) as StreamResponse;
    const early = stopped.message[Symbol.asyncIterator]();
    await early.next();
    await early.return?.();
    left.abort(reason);
    expect(signal?.aborted).toBe(false);
  });
});
