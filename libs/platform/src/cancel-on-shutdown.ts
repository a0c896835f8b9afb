import type { Interceptor, StreamResponse, UnaryResponse } from '@connectrpc/connect';

/**
 * Aborts the signal of every RPC in flight when `shutdown` aborts, with its reason. Connect's own
 * `shutdownSignal` option adds a listener per RPC to that one long-lived signal instead, and Node
 * 20's EventTarget leaves a removed listener linked to the one added after it: once a removed
 * listener reached the old generation, it kept the next RPC, and that one the next, through every
 * scavenge until a full collection (a do-nothing method with 50 calls in flight: 12 KB promoted per
 * call with the option, 3.6 KB without). Here the shutdown signal has one listener, and each RPC's
 * link lives on its own request's signal.
 */
export function cancelOnShutdown(shutdown: AbortSignal): Interceptor {
  const inFlight = new Set<AbortController>();
  shutdown.addEventListener(
    'abort',
    () => {
      for (const rpc of inFlight) rpc.abort(shutdown.reason);
    },
    { once: true },
  );
  return (next) => async (req) => {
    const rpc = new AbortController();
    const requestEnded = () => rpc.abort(req.signal.reason);
    if (shutdown.aborted) rpc.abort(shutdown.reason);
    else if (req.signal.aborted) requestEnded();
    else req.signal.addEventListener('abort', requestEnded, { once: true });
    inFlight.add(rpc);
    const done = () => {
      inFlight.delete(rpc);
      req.signal.removeEventListener('abort', requestEnded);
    };
    let res: UnaryResponse | StreamResponse;
    try {
      res = await next({ ...req, signal: rpc.signal });
    } catch (err) {
      done();
      throw err;
    }
    if (!res.stream) {
      done();
      return res;
    }
    return { ...res, message: untilEnd(res.message, done) };
  };
}

/** A response stream that calls `done` however it ends; declared once (see connect's patch). */
async function* untilEnd<T>(source: AsyncIterable<T>, done: () => void): AsyncGenerator<T> {
  try {
    yield* source;
  } finally {
    done();
  }
}
