import type { Kysely } from 'kysely';
import { invalid, notFound, precondition } from '../domain/errors.js';
import { assertRefundable, hold, quoteRefund, release, settleRefund } from '../domain/refund.js';
import type { RefundQuote } from '../domain/types.js';
import { enqueueRefundApproved, enqueueRefundChanged } from '../events/ledger-events.js';
import { getEntitlement, lockEntitlement, saveSharingAndHold, type EntitlementRecord } from '../store/entitlements.js';
import { changeRefund, getRefund, insertRefund, lockRefund, type RefundRecord } from '../store/refunds.js';
import type { LedgerDb } from '../store/schema.js';
import { locked, newId, policiesOf, record, requireText, requireUuid, type Caller, type OperationContext } from './ledger.js';
import { requireTenantFeature, slotsOf } from './packages.js';

type Tx = Kysely<LedgerDb>;

/** The refund's numbers by the definition's policy, committing nothing. */
export async function quoteRefundFor(db: Tx, ctx: OperationContext, caller: Caller, req: { entitlementId: string }): Promise<RefundQuote> {
  const id = requireUuid('entitlement_id', req.entitlementId);
  await requireTenantFeature(db, caller.tenantId, 'REFUNDS');
  const e = await getEntitlement(db, caller.tenantId, id);
  if (!e) throw notFound('entitlement', id);
  const p = policiesOf(e);
  return quoteRefund(e, p, await slotsOf(db, e, p), ctx.clock());
}

/**
 * Opens a refund on the quote of now and puts the entitlement on hold: nothing can consume, move or
 * expire its sessions until the refund is rejected or settled, so the quote stays true.
 */
export async function requestRefund(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  req: { entitlementId: string; reason: string },
): Promise<{ refund: RefundRecord; entitlement: EntitlementRecord }> {
  const now = ctx.clock();
  const reason = requireText('reason', req.reason, 500);
  await requireTenantFeature(tx, caller.tenantId, 'REFUNDS');
  const e = await locked(tx, caller, req.entitlementId);
  const p = policiesOf(e);
  const quote = quoteRefund(e, p, await slotsOf(tx, e, p), now);
  assertRefundable(quote);
  const refundId = newId(ctx);
  const held: EntitlementRecord = { ...e, ...hold(e, refundId) };
  await saveSharingAndHold(tx, e, held, now);
  const refund = await insertRefund(tx, {
    tenantId: caller.tenantId,
    refundId,
    entitlementId: e.entitlementId,
    memberId: e.memberId,
    quote,
    reason,
    requestedBy: { subject: caller.subject, roles: [...caller.roles] },
    requestTime: now,
  });
  await enqueueRefundChanged(tx, 'refund_requested', refund, now);
  return { refund, entitlement: held };
}

/** Lock order as everywhere: the entitlement, then its refund. */
async function lockedRefund(tx: Tx, tenantId: string, refundId: string): Promise<{ e: EntitlementRecord; r: RefundRecord }> {
  const first = await getRefund(tx, tenantId, refundId);
  if (!first) throw notFound('refund', refundId);
  const e = await lockEntitlement(tx, tenantId, first.entitlementId);
  if (!e) throw notFound('entitlement', first.entitlementId);
  const r = (await lockRefund(tx, tenantId, refundId))!;
  return { e, r };
}

function decided(r: RefundRecord, action: string): never {
  throw precondition(`refund ${r.refundId} is ${r.state.toLowerCase().replace('_', ' ')}; only a requested refund can be ${action}`);
}

/** Manager decision: billing pays it out on ledger.refund_approved and answers with the payout's outcome. */
export async function approveRefund(tx: Tx, ctx: OperationContext, caller: Caller, req: { refundId: string; note: string }): Promise<RefundRecord> {
  const now = ctx.clock();
  const refundId = requireUuid('refund_id', req.refundId);
  if (req.note.length > 500) throw invalid('note', 'must be at most 500 characters');
  await requireTenantFeature(tx, caller.tenantId, 'REFUNDS');
  const { r } = await lockedRefund(tx, caller.tenantId, refundId);
  if (r.state !== 'REQUESTED') decided(r, 'approved');
  const approved = await changeRefund(tx, r, { state: 'APPROVED', decidedBy: caller, decisionNote: req.note, decideTime: now });
  await enqueueRefundApproved(tx, approved, now);
  return approved;
}

/** Releases the hold; a package whose time ran out while it waited expires now. */
async function releaseHold(tx: Tx, ctx: OperationContext, caller: Caller, e: EntitlementRecord, requestId: string, now: Date): Promise<EntitlementRecord> {
  const { released, expiry } = release(e, now);
  if ('noop' in expiry) {
    const next: EntitlementRecord = { ...e, ...released };
    await saveSharingAndHold(tx, e, next, now);
    return next;
  }
  return (await record(tx, ctx, caller, requestId, e, expiry, now)).entitlement;
}

export async function rejectRefund(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  req: { refundId: string; reason: string },
  requestId: string,
): Promise<{ refund: RefundRecord; entitlement: EntitlementRecord }> {
  const now = ctx.clock();
  const refundId = requireUuid('refund_id', req.refundId);
  const reason = requireText('reason', req.reason, 500);
  await requireTenantFeature(tx, caller.tenantId, 'REFUNDS');
  const { e, r } = await lockedRefund(tx, caller.tenantId, refundId);
  if (r.state !== 'REQUESTED') decided(r, 'rejected');
  const rejected = await changeRefund(tx, r, { state: 'REJECTED', decidedBy: caller, decisionNote: reason, decideTime: now });
  const entitlement = await releaseHold(tx, ctx, caller, e, requestId, now);
  await enqueueRefundChanged(tx, 'refund_rejected', rejected, now);
  return { refund: rejected, entitlement };
}

export interface PayoutOutcome {
  refundId: string;
  paid: boolean;
  /** What billing paid, in minor units of the refund's currency. */
  amountMinor: bigint | undefined;
  currency: string | undefined;
  providerReference: string;
  failureReason: string;
}

/** Billing's answer could not be applied; the consumer dead-letters the event with this reason. */
export class PayoutMismatch extends Error {
  override readonly name = 'PayoutMismatch';
}

/**
 * billing.refund_paid closes the entitlement REFUNDED with a REFUND entry (once: the refund leaves
 * APPROVED at most once, and one REFUND entry per refund id is a unique index);
 * billing.refund_failed records the failure and releases the hold. A repeat changes nothing.
 */
export async function settlePayout(tx: Tx, ctx: OperationContext, caller: Caller, outcome: PayoutOutcome): Promise<RefundRecord> {
  const now = ctx.clock();
  const { e, r } = await lockedRefund(tx, caller.tenantId, outcome.refundId);
  const settled = outcome.paid ? 'COMPLETED' : 'PAYOUT_FAILED';
  if (r.state === settled) return r;
  if (r.state !== 'APPROVED') {
    throw new PayoutMismatch(`billing reports refund ${r.refundId} ${outcome.paid ? 'paid' : 'failed'}, but it is ${r.state.toLowerCase()}`);
  }
  if (outcome.paid) {
    if ((outcome.amountMinor !== undefined && outcome.amountMinor !== r.quote.amount) || (outcome.currency !== undefined && outcome.currency !== r.quote.currency)) {
      throw new PayoutMismatch(`billing paid ${outcome.currency} ${outcome.amountMinor} for refund ${r.refundId}, approved for ${r.quote.currency} ${r.quote.amount}`);
    }
    const t = settleRefund(e, r.refundId, r.quote, now);
    const done = await record(tx, ctx, caller, `refund:${r.refundId}`, e, t, now);
    return changeRefund(tx, r, { state: 'COMPLETED', settleTime: now, providerReference: outcome.providerReference, refundEntryId: done.entry.entryId });
  }
  const failed = await changeRefund(tx, r, { state: 'PAYOUT_FAILED', settleTime: now, failureReason: outcome.failureReason || 'payout failed' });
  await releaseHold(tx, ctx, caller, e, `refund-failed:${r.refundId}`, now);
  await enqueueRefundChanged(tx, 'refund_payout_failed', failed, now);
  return failed;
}
