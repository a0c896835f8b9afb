import type { ConsumedEvent } from '@punchcard/bus';
import type { RefundPayout } from '@punchcard/contracts/punchcard/events/v1/billing_events_pb';
import type { Kysely } from 'kysely';
import type { OperationContext } from '../operations/ledger.js';
import { settlePayout } from '../operations/refunds.js';
import type { LedgerDb } from '../store/schema.js';

export const PAYOUT_SUBJECTS = ['punchcard.billing.refund_paid.*', 'punchcard.billing.refund_failed.*'];

/**
 * billing.refund_paid / billing.refund_failed: the payout of an approved refund settled. Applied once
 * per refund whatever the event id (the refund's state decides), in the inbox transaction.
 */
export async function onRefundPayout(tx: Kysely<LedgerDb>, ctx: OperationContext, event: ConsumedEvent<RefundPayout>): Promise<void> {
  const p = event.data;
  if (p.refundId === '') throw new Error(`${event.type} without refund_id`);
  if (p.tenantId !== '' && p.tenantId !== event.tenantId) {
    throw new Error(`${event.type} for tenant ${p.tenantId} arrived on tenant ${event.tenantId}'s subject`);
  }
  const paid = event.type.endsWith('.refund_paid');
  if (!paid && !event.type.endsWith('.refund_failed')) throw new Error(`unexpected event ${event.type}`);
  await settlePayout(tx, ctx, { tenantId: event.tenantId, subject: `billing:${event.source || 'unknown'}`, roles: ['system'] }, {
    refundId: p.refundId.toLowerCase(),
    paid,
    amountMinor: p.amount?.amountMinor,
    currency: p.amount?.currencyCode,
    providerReference: p.providerReference,
    failureReason: p.failureReason,
  });
}
