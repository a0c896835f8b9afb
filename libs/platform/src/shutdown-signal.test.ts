import { createLinkedAbortController } from '@connectrpc/connect/protocol';
import { promotedBy } from '@punchcard/testing';
import { describe, expect, it } from 'vitest';
import { shutdownSignal } from './shutdown-signal.js';

const reason = new Error('server is shutting down');

/** An RPC as connect links it: its signal follows its request's and the server's shutdown signal. */
function rpc(shutdown: AbortSignal, request = new AbortController()) {
  const controller = createLinkedAbortController(request.signal, shutdown);
  // Connect aborts the call's own controller as the call ends, which unlinks it.
  return { signal: controller.signal, request, end: () => controller.abort(new Error('call ended')) };
}

describe('shutdownSignal', () => {
  it('aborts every RPC in flight with the reason of the signal it follows', () => {
    const source = new AbortController();
    const shutdown = shutdownSignal(source.signal);
    const calls = Array.from({ length: 25 }, () => rpc(shutdown));
    expect(calls.some((c) => c.signal.aborted)).toBe(false);
    source.abort(reason);
    expect(shutdown.aborted).toBe(true);
    expect(shutdown.reason).toBe(reason);
    expect(calls.every((c) => c.signal.aborted && c.signal.reason === reason)).toBe(true);
  });

  it('leaves an RPC that has ended alone', () => {
    const source = new AbortController();
    const shutdown = shutdownSignal(source.signal);
    const ended = rpc(shutdown);
    ended.end();
    const running = rpc(shutdown);
    source.abort(reason);
    expect(ended.signal.reason).not.toBe(reason);
    expect(running.signal.reason).toBe(reason);
  });

  it("passes on the request's own abort, not the shutdown", () => {
    const source = new AbortController();
    const call = rpc(shutdownSignal(source.signal));
    const gone = new Error('client went away');
    call.request.abort(gone);
    expect(call.signal.reason).toBe(gone);
    source.abort(reason);
    expect(call.signal.reason).toBe(gone);
  });

  it('gives an RPC that starts after shutdown an aborted signal', () => {
    const source = new AbortController();
    source.abort(reason);
    const shutdown = shutdownSignal(source.signal);
    expect(rpc(shutdown).signal.reason).toBe(reason);
  });

  it('calls a listener once, with the signal as this, and not one removed before', () => {
    const source = new AbortController();
    const shutdown = shutdownSignal(source.signal);
    const seen: unknown[] = [];
    function listener(this: AbortSignal) {
      seen.push(this);
    }
    const removed = () => seen.push('removed');
    shutdown.addEventListener('abort', listener);
    shutdown.addEventListener('abort', removed);
    shutdown.removeEventListener('abort', removed);
    source.abort(reason);
    source.signal.dispatchEvent(new Event('abort'));
    expect(seen).toEqual([shutdown]);
  });

  it('keeps nothing of the RPCs that have ended, however long the server has run', () => {
    const shutdown = shutdownSignal(new AbortController().signal);
    // An RPC's listener holds what the RPC holds; here an array of its own.
    const started: (() => number)[] = [];
    const start = (i: number) => {
      const payload = new Array<number>(200).fill(i);
      const listener = () => payload.length;
      shutdown.addEventListener('abort', listener);
      started.push(listener);
    };
    const end = () => shutdown.removeEventListener('abort', started.shift()!);
    // 16 in flight long enough for the signal's own storage to reach the old generation, as in a
    // server that has run a while; then 2,000 more start and end, 16 in flight throughout.
    for (let i = 0; i < 16; i++) start(i);
    promotedBy(() => undefined);
    const promoted = promotedBy(() => {
      for (let i = 0; i < 2000; i++) {
        start(i);
        end();
      }
    });
    expect(promoted).toBeLessThan(500_000);
  });
});
