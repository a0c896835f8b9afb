/** Exponential backoff with a cap and full-range jitter. */
export interface BackoffPolicy {
  /** Delay before the first retry. */
  baseMs: number;
  /** No delay exceeds this. */
  maxMs: number;
  /** Growth per attempt, >= 1. */
  factor: number;
  /** Fraction of the delay randomised away (0 = none, 0.5 = delay in [50%, 100%]). */
  jitter: number;
}

export const FULFILMENT_BACKOFF: BackoffPolicy = { baseMs: 2_000, maxMs: 15 * 60_000, factor: 2, jitter: 0.2 };
export const PAYOUT_BACKOFF: BackoffPolicy = { baseMs: 10_000, maxMs: 60 * 60_000, factor: 3, jitter: 0.2 };
export const SYNC_BACKOFF: BackoffPolicy = { baseMs: 30_000, maxMs: 60 * 60_000, factor: 2, jitter: 0.2 };
/** Spread like the Standard Webhooks guidance, from seconds to hours: 5 s, 30 s, 3 min, 18 min, 1.8 h, then 10 h. */
export const WEBHOOK_BACKOFF: BackoffPolicy = { baseMs: 5_000, maxMs: 10 * 60 * 60_000, factor: 6, jitter: 0.1 };

/**
 * Delay before retry number `attempt` (1 = the first retry). `random` in [0, 1) picks the jitter, so
 * the function stays pure: callers pass `Math.random()`, tests pass fixed values.
 */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: number): number {
  if (!Number.isInteger(attempt) || attempt < 1) throw new RangeError(`attempt must be a positive integer, got ${attempt}`);
  const exp = policy.baseMs * policy.factor ** (attempt - 1);
  const capped = Math.min(policy.maxMs, Number.isFinite(exp) ? exp : policy.maxMs);
  const r = Math.min(Math.max(random, 0), 1);
  return Math.round(capped * (1 - policy.jitter * r));
}

export function nextAttemptAt(now: Date, policy: BackoffPolicy, attempt: number, random: number): Date {
  return new Date(now.getTime() + backoffDelayMs(policy, attempt, random));
}

/** How an outbound call failed, for deciding whether to try again. */
export type FailureKind = 'retryable' | 'permanent';

/**
 * HTTP status of a failed call -> retry or not. Server errors, timeouts, conflicts in flight and
 * rate limits are worth retrying; other client errors (bad request, auth, validation) will fail the
 * same way until someone changes the configuration. `undefined` = no response (network error).
 */
export function classifyHttpFailure(status: number | undefined): FailureKind {
  if (status === undefined) return 'retryable';
  if (status >= 500 || status === 408 || status === 409 || status === 425 || status === 429) return 'retryable';
  return 'permanent';
}
