import type { TimerKind } from './schedule.js';

/** The ledger call (or event) a due timer turns into. */
export type Firing =
  | { readonly action: 'remind' }
  | { readonly action: 'enterGrace'; readonly expiryTime: Date; readonly graceEndTime: Date }
  | { readonly action: 'expire'; readonly dueTime: Date }
  | { readonly action: 'unfreeze' }
  /** Nothing to do any more; the timer is closed without a call. */
  | { readonly action: 'skip'; readonly reason: string };

export interface DueTimer {
  readonly timerId: string;
  readonly kind: TimerKind;
  readonly dueTime: Date;
  readonly expiryTime?: Date;
  readonly graceEndTime?: Date;
}

export function firingFor(t: DueTimer, now: Date): Firing {
  switch (t.kind) {
    case 'REMINDER':
      // Late after downtime is still useful; after the expiry it is not.
      return t.expiryTime && t.expiryTime > now ? { action: 'remind' } : { action: 'skip', reason: 'the expiry passed before the reminder fired' };
    case 'ENTER_GRACE':
      return t.graceEndTime
        ? { action: 'enterGrace', expiryTime: t.expiryTime ?? t.dueTime, graceEndTime: t.graceEndTime }
        : { action: 'skip', reason: 'no grace end was planned' };
    case 'EXPIRE':
      return { action: 'expire', dueTime: t.dueTime };
    case 'UNFREEZE':
      return { action: 'unfreeze' };
  }
}

/**
 * The ledger's idempotency key for a timer: stable across retries, restarts and replicas, so a call
 * repeated after a crash between the ledger's commit and ours changes nothing.
 */
export function idempotencyKeyFor(timerId: string): string {
  return `${KEY_PREFIX}${timerId}`;
}

const KEY_PREFIX = 'expiry-timer-';

/** The timer whose ledger call a ledger entry records (its request id is the call's key), if any. */
export function timerOfRequest(requestId: string): string | undefined {
  return requestId.startsWith(KEY_PREFIX) ? requestId.slice(KEY_PREFIX.length) : undefined;
}

/** gRPC codes worth retrying: the ledger or the network is having a moment. */
const TRANSIENT = new Set(['unavailable', 'deadline_exceeded', 'resource_exhausted', 'aborted', 'internal', 'unknown', 'canceled']);
/**
 * A rule refusal can be a race that settles by itself: the ledger's clock a moment behind ours ("not
 * passed yet"), or a change it is about to publish. A few retries, then it is real.
 */
const SETTLING = new Set(['failed_precondition', 'invalid_argument']);
const SETTLING_ATTEMPTS = 3;

export const MAX_ATTEMPTS = 12;
const BASE_DELAY_MS = 5_000;
const MAX_DELAY_MS = 3_600_000;

export type FailureOutcome =
  | { readonly outcome: 'retry'; readonly delayMs: number }
  | { readonly outcome: 'fail' }
  /** The refusal means the timer's work is already done (e.g. unfreezing what is no longer frozen). */
  | { readonly outcome: 'done' };

/**
 * After a failed ledger call (attempts counts this one): transient failures retry with exponential
 * backoff (5 s doubling, at most an hour apart) up to {@link MAX_ATTEMPTS}; a rule refusal retries
 * {@link SETTLING_ATTEMPTS} times; anything else (a missing entitlement, no permission) fails the
 * timer for an operator at once.
 */
export function afterFailure(kind: TimerKind, code: string, attempts: number): FailureOutcome {
  const c = code.toLowerCase();
  if (kind === 'UNFREEZE' && c === 'failed_precondition') return { outcome: 'done' };
  const budget = TRANSIENT.has(c) ? MAX_ATTEMPTS : SETTLING.has(c) ? SETTLING_ATTEMPTS : 0;
  if (attempts >= budget) return { outcome: 'fail' };
  return { outcome: 'retry', delayMs: Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.max(0, attempts - 1)) };
}
