import { inTransaction } from '@punchcard/db';
import type { Selectable } from 'kysely';
import { nextAttemptAt, PAYOUT_BACKOFF } from '../domain/backoff.js';
import type { BillingContext } from '../context.js';
import { refundSettled } from '../events/builders.js';
import { ProviderError } from '../providers/provider.js';
import { providerCredentials } from '../store/providers.js';
import type { RefundPayoutsTable } from '../store/schema.js';
import { drainDue } from './scheduler.js';

/**
 * Pays out due refunds through the provider that took the payment. The provider call carries the
 * refund id as its idempotency key and the payout row is leased while it runs, so a refund is paid
 * once however often the approval arrives or the worker restarts. Returns how many it tried.
 */
export function payoutDue(ctx: BillingContext, limit = 50): Promise<number> {
  return drainDue(limit, () => claim(ctx), (payout) => payOne(ctx, payout));
}

async function claim(ctx: BillingContext): Promise<Selectable<RefundPayoutsTable> | undefined> {
  const now = ctx.now();
  return inTransaction(ctx.db, async (tx) => {
    const row = await tx
      .selectFrom('refund_payouts')
      .selectAll()
      .where('status', '=', 'pending')
      .where('next_attempt_at', '<=', now)
      .orderBy('next_attempt_at')
      .limit(1)
      .forUpdate()
      .skipLocked()
      .executeTakeFirst();
    if (!row) return undefined;
    return tx
      .updateTable('refund_payouts')
      .set({ next_attempt_at: new Date(now.getTime() + ctx.limits.leaseMs), attempts: row.attempts + 1 })
      .where('tenant_id', '=', row.tenant_id)
      .where('refund_id', '=', row.refund_id)
      .returningAll()
      .executeTakeFirstOrThrow();
  });
}

async function payOne(ctx: BillingContext, payout: Selectable<RefundPayoutsTable>): Promise<void> {
  const log = ctx.logger.child({ tenant_id: payout.tenant_id, refund_id: payout.refund_id });
  const processor = ctx.processors.get(payout.provider);
  let outcome: { paid: string } | { failed: string } | { retry: string };
  if (!processor) {
    outcome = { failed: `provider ${payout.provider} is not available in this deployment` };
  } else {
    try {
      const payment = await ctx.db.selectFrom('payments').select('provider_reference').where('tenant_id', '=', payout.tenant_id).where('payment_id', '=', payout.payment_id).executeTakeFirstOrThrow();
      const credentials = await providerCredentials(ctx.db, ctx.secrets, payout.tenant_id, payout.provider);
      if (!credentials) throw new ProviderError(`provider ${payout.provider} is not configured for the tenant`, false);
      const { providerReference } = await processor.payout(credentials, {
        refundId: payout.refund_id,
        providerReference: payment.provider_reference,
        currency: payout.currency,
        amountMinor: BigInt(payout.amount_minor),
        idempotencyKey: `refund-${payout.refund_id}`,
      });
      outcome = { paid: providerReference };
    } catch (err) {
      const retryable = !(err instanceof ProviderError) || err.retryable;
      const message = (err as Error).message.slice(0, 1000);
      outcome = retryable && payout.attempts < ctx.limits.payoutMaxAttempts ? { retry: message } : { failed: message };
    }
  }
  const now = ctx.now();
  await inTransaction(ctx.db, async (tx) => {
    const current = await tx.selectFrom('refund_payouts').selectAll().where('tenant_id', '=', payout.tenant_id).where('refund_id', '=', payout.refund_id).forUpdate().executeTakeFirstOrThrow();
    if (current.status !== 'pending') return;
    const base = tx.updateTable('refund_payouts').where('tenant_id', '=', payout.tenant_id).where('refund_id', '=', payout.refund_id);
    if ('retry' in outcome) {
      const at = nextAttemptAt(now, PAYOUT_BACKOFF, payout.attempts, ctx.random());
      log.warn({ err: outcome.retry, attempt: payout.attempts, next_attempt_at: at }, 'refund payout failed; will retry');
      await base.set({ failure_reason: outcome.retry, next_attempt_at: at }).execute();
      return;
    }
    const settled =
      'paid' in outcome
        ? await base.set({ status: 'paid', provider_reference: outcome.paid, paid_time: now, next_attempt_at: null, failure_reason: '' }).returningAll().executeTakeFirstOrThrow()
        : await base.set({ status: 'failed', failure_reason: outcome.failed, next_attempt_at: null }).returningAll().executeTakeFirstOrThrow();
    await refundSettled(tx, settled, now);
    log.info({ status: settled.status }, 'refund payout settled');
  });
}
