/** Progress of a sweep draining a backlog, for the operator's log line. */
export interface SweepProgress {
  readonly done: number;
  readonly failed: number;
  /** Due timers still pending when the progress was taken. */
  readonly remaining: number;
  readonly elapsedMs: number;
}

/** Timers per second so far; 0 before any time has passed. */
export function rate(p: SweepProgress): number {
  return p.elapsedMs > 0 ? Math.round(((p.done + p.failed) * 1000) / p.elapsedMs) : 0;
}

/** Seconds to drain what remains at the current rate; undefined while the rate is unknown. */
export function etaSeconds(p: SweepProgress): number | undefined {
  const r = rate(p);
  return r > 0 ? Math.ceil(p.remaining / r) : undefined;
}

export function progressMessage(p: SweepProgress): string {
  const eta = etaSeconds(p);
  return `expiry backlog: ${p.done} fired, ${p.failed} failed, ${p.remaining} remaining, ${rate(p)}/s${eta === undefined ? '' : `, ~${eta}s left`}`;
}
