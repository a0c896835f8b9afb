import { RuleViolation } from './errors.js';

/** Cash or a card terminal: staff confirm the payment, and pay refunds out by hand. */
export const MANUAL_PROVIDER = 'manual';

export type PaymentStatus = 'pending' | 'captured' | 'failed' | 'fulfilled';

/** What can happen to a payment: the provider captures or fails it; the ledger purchase fulfils it. */
export type PaymentEvent =
  | { kind: 'capture'; providerReference: string }
  | { kind: 'fail'; reason: string }
  | { kind: 'fulfil'; entitlementId: string };

export interface TransitionResult {
  next: PaymentStatus;
  /** False for a repeat (duplicate webhook, second confirmation): nothing to write or publish. */
  changed: boolean;
  /** Something a human should look at, recorded but not acted on (e.g. money captured after a failure). */
  anomaly?: string;
}

/**
 * The payment state machine. pending -> captured -> fulfilled, or pending -> failed. A capture wins
 * over a later failure notice (money arrived; it must not be lost); a failed payment never moves on
 * to an entitlement, so a capture reported after a failure is an anomaly to refund by hand; only a
 * captured payment is fulfilled.
 */
export function transition(status: PaymentStatus, event: PaymentEvent): TransitionResult {
  switch (event.kind) {
    case 'capture':
      if (status === 'pending') return { next: 'captured', changed: true };
      if (status === 'failed') return { next: 'failed', changed: false, anomaly: `captured after it failed (provider reference ${event.providerReference}); refund it` };
      return { next: status, changed: false };
    case 'fail':
      if (status === 'pending') return { next: 'failed', changed: true };
      return { next: status, changed: false };
    case 'fulfil':
      if (status === 'captured') return { next: 'fulfilled', changed: true };
      if (status === 'fulfilled') return { next: 'fulfilled', changed: false };
      throw new RuleViolation(`a ${status} payment cannot be fulfilled; only a captured one`);
  }
}

/** Statuses the fulfilment saga still has work for. */
export function needsFulfilment(status: PaymentStatus): boolean {
  return status === 'captured';
}
