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
  return `expiry-timer-${timerId}`;
}

/** gRPC codes worth retrying: the ledger or the network is having a moment. */
const TRANSIENT = new Set(['unavailable', 'deadline_exceeded', 'resource_exhausted', 'aborted', 'internal', 'unknown', 'canceled']);

export const MAX_ATTEMPTS = 12;
const BASE_DELAY_MS = 5_000;
const MAX_DELAY_MS = 3_600_000;

export type FailureOutcome = { readonly retry: true; readonly delayMs: number } | { readonly retry: false };

/**
 * After a failed ledger call (attempts counts this one): transient failures retry with exponential
 * backoff (5 s doubling, at most an hour apart) up to {@link MAX_ATTEMPTS}; anything else (a rule, a
 * bad request, a missing entitlement) will not improve by retrying and fails the timer for an operator.
 */
export function afterFailure(code: string, attempts: number): FailureOutcome {
  if (!TRANSIENT.has(code.toLowerCase()) || attempts >= MAX_ATTEMPTS) return { retry: false };
  return { retry: true, delayMs: Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.max(0, attempts - 1)) };
}
