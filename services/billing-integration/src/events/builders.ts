import { enqueue } from '@punchcard/bus';
import { PaymentCapturedSchema, RefundPayoutSchema, SyncFailedSchema } from '@punchcard/contracts/punchcard/events/v1/billing_events_pb';
import type { Selectable } from 'kysely';
import { PRODUCER } from '../context.js';
import { paymentToProto } from '../convert.js';
import type { PaymentsTable, RefundPayoutsTable, Tx } from '../store/schema.js';

/** billing.payment_captured, in the transaction that records the capture. */
export function paymentCaptured(tx: Tx, payment: Selectable<PaymentsTable>, at: Date) {
  return enqueue(tx, {
    producer: PRODUCER,
    event: 'payment_captured',
    tenantId: payment.tenant_id,
    aggregateId: payment.payment_id,
    schema: PaymentCapturedSchema,
    message: { payment: paymentToProto(payment) },
    time: at,
  });
}

/** billing.refund_paid or billing.refund_failed, in the transaction that settles the payout. */
export function refundSettled(tx: Tx, payout: Selectable<RefundPayoutsTable>, at: Date) {
  return enqueue(tx, {
    producer: PRODUCER,
    event: payout.status === 'paid' ? 'refund_paid' : 'refund_failed',
    tenantId: payout.tenant_id,
    aggregateId: payout.refund_id,
    schema: RefundPayoutSchema,
    message: {
      tenantId: payout.tenant_id,
      refundId: payout.refund_id,
      entitlementId: payout.entitlement_id,
      amount: { currencyCode: payout.currency, amountMinor: BigInt(payout.amount_minor) },
      providerReference: payout.provider_reference,
      failureReason: payout.failure_reason,
    },
    time: at,
  });
}

/** billing.sync_failed: a connector gave up on a journal entry until someone retries it. */
export function syncFailed(tx: Tx, input: { tenantId: string; journalEntryId: string; connector: string; error: string }, at: Date) {
  return enqueue(tx, {
    producer: PRODUCER,
    event: 'sync_failed',
    tenantId: input.tenantId,
    aggregateId: input.journalEntryId,
    schema: SyncFailedSchema,
    message: { tenantId: input.tenantId, journalEntryId: input.journalEntryId, connector: input.connector, error: input.error },
    time: at,
  });
}
