import { RuleViolation } from './errors.js';

export type RefundPayoutStatus = 'pending' | 'paid' | 'failed' | 'awaiting_manual';

export interface RefundRequest {
  refundId: string;
  currency: string;
  amountMinor: bigint;
}

/** The payment an entitlement was bought with, as billing knows it. */
export interface PaidPayment {
  paymentId: string;
  provider: string;
  status: string;
  currency: string;
  amountMinor: bigint;
}

/**
 * Where an approved refund goes: to the provider that took the money (the manual provider waits for
 * staff to pay out and confirm), or nowhere with a reason when billing did not take the payment or the
 * refund does not fit it.
 */
export function planPayout(refund: RefundRequest, payment: PaidPayment | undefined): { status: 'pending' | 'awaiting_manual' } | { status: 'failed'; reason: string } {
  if (!payment) return { status: 'failed', reason: 'no billing payment for this entitlement; pay the refund out where the sale was paid' };
  if (payment.status !== 'fulfilled' && payment.status !== 'captured') return { status: 'failed', reason: `payment ${payment.paymentId} is ${payment.status}; nothing was captured to refund` };
  if (refund.currency !== payment.currency) return { status: 'failed', reason: `refund currency ${refund.currency} differs from the payment's ${payment.currency}` };
  if (refund.amountMinor <= 0n) return { status: 'failed', reason: 'refund amount must be positive' };
  if (refund.amountMinor > payment.amountMinor) return { status: 'failed', reason: `refund ${refund.amountMinor} exceeds the captured ${payment.amountMinor}` };
  return payment.provider === 'manual' ? { status: 'awaiting_manual' } : { status: 'pending' };
}

/** Staff confirm a manual payout; only one waiting for it. Repeats of a paid one change nothing. */
export function confirmManualPayout(status: RefundPayoutStatus): { changed: boolean } {
  if (status === 'awaiting_manual') return { changed: true };
  if (status === 'paid') return { changed: false };
  throw new RuleViolation(`refund payout is ${status}; only one awaiting a manual payout can be confirmed`);
}
