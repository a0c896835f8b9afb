import { status } from '@grpc/grpc-js';

/**
 * Polling helpers for effects that travel through NATS between processes. `logs` supplies the
 * services' recent output, printed when a wait gives up.
 */
export function waiting(logs: () => string) {
  /** Polls until `probe` returns a value. */
  async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      try {
        const value = await probe();
        if (value !== undefined) return value;
      } catch (err) {
        last = err;
      }
      if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}${last ? `: ${(last as Error).message}` : ''}\n${logs()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Retries while a service has not yet received the catalogue events a call depends on. */
  function whenKnown<T>(what: string, call: () => Promise<T>): Promise<T> {
    return eventually(what, async () => {
      try {
        return await call();
      } catch (err) {
        if ((err as { code?: number }).code === status.FAILED_PRECONDITION && /not known|plan/.test((err as Error).message)) return undefined;
        throw err;
      }
    });
  }

  return { eventually, whenKnown };
}
