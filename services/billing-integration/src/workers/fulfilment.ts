import { inTransaction } from '@punchcard/db';
import { ConnectError } from '@connectrpc/connect';
import type { Selectable } from 'kysely';
import { FULFILMENT_BACKOFF, nextAttemptAt } from '../domain/backoff.js';
import { transition } from '../domain/payment.js';
import type { BillingContext } from '../context.js';
import { recordOrigin } from '../store/refunds.js';
import type { PaymentsTable, Tx } from '../store/schema.js';
import { drainDue } from './scheduler.js';

/**
 * The purchase and upgrade sagas' second half: for each captured payment that is due, call the
 * ledger's Purchase, or for an upgrade's payment its Upgrade (held to the amount paid), with the
 * payment id as idempotency key and payment reference, and record the entitlement it created. State
 * lives in `payments`, so a restart resumes where it stopped: a payment stays `captured` (due again
 * after its lease or backoff) until the entitlement is recorded. Returns how many payments it tried.
 */
export function fulfilDue(ctx: BillingContext, limit = 50): Promise<number> {
  return drainDue(limit, () => claim(ctx), (payment) => fulfilOne(ctx, payment));
}

/** Leases the next due captured payment to this worker (other replicas skip it until the lease ends). */
async function claim(ctx: BillingContext): Promise<Selectable<PaymentsTable> | undefined> {
  const now = ctx.now();
  return inTransaction(ctx.db, async (tx) => {
    const row = await tx
      .selectFrom('payments')
      .selectAll()
      .where('status', '=', 'captured')
      .where('next_attempt_at', '<=', now)
      .orderBy('next_attempt_at')
      .limit(1)
      .forUpdate()
      .skipLocked()
      .executeTakeFirst();
    if (!row) return undefined;
    return tx
      .updateTable('payments')
      .set({ next_attempt_at: new Date(now.getTime() + ctx.limits.leaseMs), fulfilment_attempts: row.fulfilment_attempts + 1 })
      .where('tenant_id', '=', row.tenant_id)
      .where('payment_id', '=', row.payment_id)
      .returningAll()
      .executeTakeFirstOrThrow();
  });
}

async function fulfilOne(ctx: BillingContext, payment: Selectable<PaymentsTable>): Promise<void> {
  const log = ctx.logger.child({ tenant_id: payment.tenant_id, payment_id: payment.payment_id });
  let entitlementId: string;
  try {
    ({ entitlementId } =
      payment.kind === 'upgrade'
        ? await ctx.ledger.upgrade({
            tenantId: payment.tenant_id,
            paymentId: payment.payment_id,
            entitlementId: payment.upgrade_entitlement_id,
            targetDefinitionId: payment.definition_id,
            branchId: payment.branch_id,
            amountDue: { currency: payment.currency, amountMinor: BigInt(payment.amount_minor) },
          })
        : await ctx.ledger.purchase({
            tenantId: payment.tenant_id,
            paymentId: payment.payment_id,
            memberId: payment.member_id,
            definitionId: payment.definition_id,
            branchId: payment.branch_id,
            purchaseTime: payment.capture_time ?? payment.create_time,
          }));
  } catch (err) {
    const message = err instanceof ConnectError ? `${err.code}: ${err.rawMessage}` : (err as Error).message;
    const at = nextAttemptAt(ctx.now(), FULFILMENT_BACKOFF, payment.fulfilment_attempts, ctx.random());
    log.warn({ err: message, kind: payment.kind, attempt: payment.fulfilment_attempts, next_attempt_at: at }, 'ledger call failed; the captured payment stays due');
    await ctx.db
      .updateTable('payments')
      .set({ fulfilment_error: message.slice(0, 1000), next_attempt_at: at })
      .where('tenant_id', '=', payment.tenant_id)
      .where('payment_id', '=', payment.payment_id)
      .where('status', '=', 'captured')
      .execute();
    return;
  }
  await inTransaction(ctx.db, (tx) => recordFulfilment(tx, payment.tenant_id, payment.payment_id, entitlementId, ctx.now(), payment.kind));
  log.info({ entitlement_id: entitlementId }, 'payment fulfilled');
}

/**
 * Records the entitlement a captured payment of `kind` created (for an upgrade, also where it came
 * from); a repeat (the saga and the ledger event both report it) changes nothing. Returns whether it
 * changed the payment.
 */
export async function recordFulfilment(tx: Tx, tenantId: string, paymentId: string, entitlementId: string, at: Date, kind: 'purchase' | 'upgrade'): Promise<boolean> {
  const row = await tx.selectFrom('payments').selectAll().where('tenant_id', '=', tenantId).where('payment_id', '=', paymentId).forUpdate().executeTakeFirst();
  if (!row || row.kind !== kind || (row.status !== 'captured' && row.status !== 'fulfilled')) return false;
  if (kind === 'upgrade') await recordOrigin(tx, { tenantId, entitlementId, originEntitlementId: row.upgrade_entitlement_id, kind, paymentReference: paymentId }, at);
  const { changed } = transition(row.status, { kind: 'fulfil', entitlementId });
  if (!changed) return false;
  await tx
    .updateTable('payments')
    .set({ status: 'fulfilled', entitlement_id: entitlementId, fulfil_time: at, next_attempt_at: null, fulfilment_error: '' })
    .where('tenant_id', '=', tenantId)
    .where('payment_id', '=', paymentId)
    .execute();
  return true;
}
