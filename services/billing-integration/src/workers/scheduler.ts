import type { Logger } from 'pino';

export interface Loop {
  /** Run soon (coalesced with a run already queued). */
  kick(): void;
  /** Run now and wait; runs of one loop never overlap. */
  runOnce(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * One run of a worker: claims the next due item and handles it, one at a time, until nothing is due
 * or `limit` were tried (a run stays short; the loop comes back for the rest). Returns how many.
 */
export async function drainDue<T>(limit: number, claim: () => Promise<T | undefined>, handle: (item: T) => Promise<unknown>): Promise<number> {
  let tried = 0;
  while (tried < limit) {
    const item = await claim();
    if (item === undefined) break;
    tried++;
    await handle(item);
  }
  return tried;
}

/**
 * Runs `work` every `intervalMs` (the sweep that resumes anything due after a restart or a backoff)
 * and soon after a kick (fresh work). One run at a time per loop; errors are logged, never fatal.
 */
export function startLoop(name: string, work: () => Promise<number>, options: { intervalMs: number; autoRun: boolean; logger: Logger }): Loop {
  let running: Promise<number> | undefined;
  let again = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const runOnce = async (): Promise<number> => {
    while (running) {
      again = false;
      await running.catch(() => 0);
    }
    running = work().finally(() => {
      running = undefined;
    });
    return running;
  };

  const schedule = (delay: number) => {
    if (stopped || !options.autoRun) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      void runOnce()
        .catch((err: unknown) => options.logger.error({ worker: name, err: (err as Error).message }, 'worker run failed'))
        .finally(() => schedule(again ? 0 : options.intervalMs));
    }, delay);
    timer.unref();
  };
  schedule(0);

  return {
    kick() {
      if (running) again = true;
      else schedule(0);
    },
    runOnce,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => 0);
    },
  };
}
