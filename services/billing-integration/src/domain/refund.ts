import { RuleViolation } from './errors.js';
import { MANUAL_PROVIDER } from './payment.js';

export type RefundPayoutStatus = 'pending' | 'paid' | 'failed' | 'awaiting_manual';
/** A part is `queued` until the parts before it are paid. */
export type PartStatus = RefundPayoutStatus | 'queued';

export interface RefundRequest {
  refundId: string;
  currency: string;
  amountMinor: bigint;
}

/** A payment behind the refunded entitlement (its own, or one of the packages it came from). */
export interface SourcePayment {
  paymentId: string;
  provider: string;
  status: string;
  currency: string;
  amountMinor: bigint;
  /** Already paid back, or promised, to other refunds (their failed parts excluded). */
  refundedMinor: bigint;
}

export interface RefundPart {
  paymentId: string;
  provider: string;
  amountMinor: bigint;
  status: PartStatus;
  providerReference: string;
  failureReason: string;
}

const captured = (p: SourcePayment) => p.status === 'fulfilled' || p.status === 'captured';

/**
 * Splits an approved refund over the payments behind the entitlement, given newest first (an
 * upgrade's payment before the purchase it upgraded): each gives back at most what it took less what
 * earlier refunds took from it, the newest first, so a refund of an upgraded package returns the
 * upgrade's payment before touching the original one. Fails with the reason when there is nothing
 * to pay back through or the payments cannot cover the refund.
 */
export function planRefund(refund: RefundRequest, payments: readonly SourcePayment[]): { parts: RefundPart[] } | { failed: string } {
  if (refund.amountMinor <= 0n) return { failed: 'refund amount must be positive' };
  if (payments.length === 0) return { failed: 'no billing payment for this entitlement or the packages it came from (transfer, upgrade); pay the refund out where the sale was paid' };
  const usable = payments.filter(captured);
  if (usable.length === 0) return { failed: `payment ${payments[0]!.paymentId} is ${payments[0]!.status}; nothing was captured to refund` };
  const foreign = usable.find((p) => p.currency !== refund.currency);
  if (foreign) return { failed: `refund currency ${refund.currency} differs from payment ${foreign.paymentId}'s ${foreign.currency}` };
  const parts: RefundPart[] = [];
  let left = refund.amountMinor;
  for (const p of usable) {
    if (left === 0n) break;
    const available = p.amountMinor - p.refundedMinor;
    if (available <= 0n) continue;
    const take = available < left ? available : left;
    parts.push({ paymentId: p.paymentId, provider: p.provider, amountMinor: take, status: 'queued', providerReference: '', failureReason: '' });
    left -= take;
  }
  if (left > 0n) {
    const can = usable.map((p) => `${p.paymentId}: ${p.amountMinor - p.refundedMinor} of ${p.amountMinor}`).join(', ');
    return { failed: `refund ${refund.amountMinor} exceeds the captured ${refund.amountMinor - left} the payments behind it can still return (${can})` };
  }
  return { parts: advance(parts) };
}

/**
 * Starts the next part once the ones before it are paid: a card processor part becomes `pending`
 * (the worker pays it), a manual one `awaiting_manual`, together with the manual parts right after
 * it, so staff pay those out in one go.
 */
export function advance(parts: readonly RefundPart[]): RefundPart[] {
  const next = parts.map((p) => ({ ...p }));
  const i = next.findIndex((p) => p.status !== 'paid');
  const head = next[i];
  if (!head) return next;
  if (head.status === 'queued') head.status = head.provider === MANUAL_PROVIDER ? 'awaiting_manual' : 'pending';
  if (head.status === 'awaiting_manual') {
    for (let j = i + 1; next[j]?.status === 'queued' && next[j]!.provider === MANUAL_PROVIDER; j++) next[j]!.status = 'awaiting_manual';
  }
  return next;
}

/** The refund's state: paid once every part is, failed when it failed before any money went out. */
export function refundStatus(parts: readonly RefundPart[]): RefundPayoutStatus {
  if (parts.length === 0) return 'failed';
  if (parts.every((p) => p.status === 'paid')) return 'paid';
  if (parts.some((p) => p.status === 'failed')) return 'failed';
  if (parts.some((p) => p.status === 'awaiting_manual')) return 'awaiting_manual';
  return 'pending';
}

/** The processor paid part `i`; the next part starts. */
export function partPaid(parts: readonly RefundPart[], i: number, providerReference: string): RefundPart[] {
  const p = parts[i];
  if (p?.status !== 'pending') throw new RuleViolation(`refund part ${i} is ${p?.status ?? 'missing'}; only a pending part is paid by the processor`);
  return advance(parts.map((q, j) => (j === i ? { ...q, status: 'paid' as const, providerReference, failureReason: '' } : q)));
}

/**
 * The processor refused part `i` for good. Before any money went out the whole refund fails (the
 * ledger releases the hold); after an earlier part was paid it cannot fail any more, so this part
 * waits for staff to pay it out by hand (refund_paid only ever reports the whole amount).
 */
export function partFailed(parts: readonly RefundPart[], i: number, reason: string): RefundPart[] {
  const p = parts[i];
  if (p?.status !== 'pending') throw new RuleViolation(`refund part ${i} is ${p?.status ?? 'missing'}; only a pending part can fail`);
  if (!parts.some((q) => q.status === 'paid')) {
    return parts.map((q, j) => (j === i ? { ...q, status: 'failed' as const, failureReason: reason } : { ...q, status: 'failed' as const, failureReason: `not paid: part ${i + 1} of ${parts.length} failed` }));
  }
  return advance(
    parts.map((q, j) => (j === i ? { ...q, status: 'awaiting_manual' as const, failureReason: `${reason}; an earlier part is paid, so pay this one out by hand and confirm it (ConfirmManualRefund)` } : q)),
  );
}

/**
 * Staff confirm that they paid out every part waiting for them. A refund already paid changes
 * nothing; anything else not waiting for staff is refused.
 */
export function confirmManualPayout(parts: readonly RefundPart[], providerReference: string): { changed: false } | { changed: true; parts: RefundPart[] } {
  const status = refundStatus(parts);
  if (status === 'paid') return { changed: false };
  if (status !== 'awaiting_manual') throw new RuleViolation(`refund payout is ${status}; only one awaiting a manual payout can be confirmed`);
  return { changed: true, parts: advance(parts.map((p) => (p.status === 'awaiting_manual' ? { ...p, status: 'paid' as const, providerReference, failureReason: '' } : p))) };
}

/** What the refund-level record shows: the first part's payment, the references paid, the reason it stopped. */
export function summarise(parts: readonly RefundPart[]): { status: RefundPayoutStatus; paymentId: string; provider: string; providerReference: string; failureReason: string } {
  const status = refundStatus(parts);
  const stuck = parts.find((p) => p.status !== 'paid' && p.failureReason !== '');
  return {
    status,
    paymentId: parts[0]?.paymentId ?? '',
    provider: parts[0]?.provider ?? '',
    providerReference: [...new Set(parts.filter((p) => p.status === 'paid').map((p) => p.providerReference))].join(', '),
    failureReason: status === 'paid' ? '' : (stuck?.failureReason ?? ''),
  };
}
