import { EventEmitter } from 'node:events';

/** Resolves when a dependency answers; rejects (or times out) when it does not. */
export type ReadinessCheck = (signal: AbortSignal) => Promise<unknown> | unknown;

export type Phase = 'starting' | 'serving' | 'draining';

export interface ReadinessReport {
  ready: boolean;
  phase: Phase;
  /** 'ok' or the failure message, per check. */
  checks: Record<string, string>;
}

/** Readiness of the process: its lifecycle phase and the definition's dependency checks. */
export class Readiness {
  #phase: Phase = 'starting';
  #checks: Record<string, ReadinessCheck> = {};
  readonly #events = new EventEmitter();

  constructor(private readonly timeoutMs = 2000) {
    this.#events.setMaxListeners(0);
  }

  get phase(): Phase {
    return this.#phase;
  }

  setChecks(checks: Record<string, ReadinessCheck>): void {
    this.#checks = checks;
  }

  setPhase(phase: Phase): void {
    if (phase === this.#phase) return;
    this.#phase = phase;
    this.#events.emit('phase', phase);
  }

  /** Calls `listener` on every phase change; returns the unsubscribe function. */
  onPhase(listener: (phase: Phase) => void): () => void {
    this.#events.on('phase', listener);
    return () => this.#events.off('phase', listener);
  }

  async evaluate(): Promise<ReadinessReport> {
    const phase = this.#phase;
    const entries = await Promise.all(
      Object.entries(this.#checks).map(async ([name, check]) => [name, await this.#run(check)] as const),
    );
    const checks = Object.fromEntries(entries);
    const ready = phase === 'serving' && entries.every(([, result]) => result === 'ok');
    return { ready, phase, checks };
  }

  async #run(check: ReadinessCheck): Promise<string> {
    const signal = AbortSignal.timeout(this.timeoutMs);
    // The timeout resolves with its message rather than rejecting: a rejection nobody awaits any
    // more (the check answered first, or threw before the race began) is an unhandled rejection.
    let onAbort = (): void => undefined;
    const timedOut = new Promise<string>((resolve) => {
      onAbort = () => resolve(`no answer within ${this.timeoutMs} ms`);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    const answered = (async () => {
      await check(signal);
      return 'ok';
    })().catch((err: unknown) => (err instanceof Error ? err.message : String(err)));
    try {
      return await Promise.race([answered, timedOut]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}
