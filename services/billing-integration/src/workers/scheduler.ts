import type { Logger } from 'pino';

export interface Loop {
  /** Run soon (coalesced with a run already queued). */
  kick(): void;
  /** Run now and wait; runs of one loop never overlap. */
  runOnce(): Promise<number>;
  stop(): Promise<void>;
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
