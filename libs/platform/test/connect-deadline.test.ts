import { Code, ConnectError } from '@connectrpc/connect';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sampleHandlerContext as handlerContext } from './helpers.js';

/*
 * The patch to connect gives a call without a deadline no deadline AbortController: on Node 20 every
 * AbortSignal is made with Object.setPrototypeOf and gets three hidden classes of its own in the old
 * generation. A call with a deadline keeps its deadline.
 */

/** Counts the AbortControllers made while `make` runs. */
function controllersMadeBy<T>(make: () => T): { value: T; made: number } {
  let made = 0;
  const Original = globalThis.AbortController;
  globalThis.AbortController = class extends Original {
    constructor() {
      super();
      made += 1;
    }
  };
  try {
    return { value: make(), made };
  } finally {
    globalThis.AbortController = Original;
  }
}

afterEach(() => vi.useRealTimers());

describe("a handler context's deadline", () => {
  it('costs a call without one no AbortController of its own', () => {
    const { value: ctx, made } = controllersMadeBy(() => handlerContext());
    expect(made).toBe(1);
    expect(ctx.timeoutMs()).toBeUndefined();
    ctx.abort();
    expect(ctx.signal.aborted).toBe(true);
  });

  it('aborts a call that has one with DeadlineExceeded when it passes', () => {
    vi.useFakeTimers();
    const { value: ctx, made } = controllersMadeBy(() => handlerContext(50));
    expect(made).toBe(2);
    vi.advanceTimersByTime(60);
    expect(ctx.signal.aborted).toBe(true);
    expect(ConnectError.from(ctx.signal.reason).code).toBe(Code.DeadlineExceeded);
  });
});
