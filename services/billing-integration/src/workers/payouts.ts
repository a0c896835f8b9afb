import { inTransaction } from '@punchcard/db';
import { nextAttemptAt, PAYOUT_BACKOFF } from '../domain/backoff.js';
import { partFailed, partPaid } from '../domain/refund.js';
import type { BillingContext } from '../context.js';
import { refundSettled } from '../events/builders.js';
import { ProviderError } from '../providers/provider.js';
import { providerCredentials } from '../store/providers.js';
import { partOf, partsOf, saveParts, type PartRow } from '../store/refunds.js';
import { drainDue } from './scheduler.js';

/**
 * Pays out due refund parts through the provider that took each payment. The provider call carries
 * the refund id (and the part's number after the first) as its idempotency key and the part is
 * leased while it runs, so a refund is paid once however often the approval arrives or the worker
 * restarts. Returns how many parts it tried.
 */
export function payoutDue(ctx: BillingContext, limit = 50): Promise<number> {
  return drainDue(limit, () => claim(ctx), (part) => payOne(ctx, part));
}

/** The first part keeps the key a refund of one payment always had, so a payout in flight across the upgrade stays one. */
export const payoutKey = (refundId: string, seq: number) => (seq === 0 ? `refund-${refundId}` : `refund-${refundId}-${seq}`);

async function claim(ctx: BillingContext): Promise<PartRow | undefined> {
  const now = ctx.now();
  return inTransaction(ctx.db, async (tx) => {
    const row = await tx
      .selectFrom('refund_payout_parts')
      .selectAll()
      .where('status', '=', 'pending')
      .where('next_attempt_at', '<=', now)
      .orderBy('next_attempt_at')
      .limit(1)
      .forUpdate()
      .skipLocked()
      .executeTakeFirst();
    if (!row) return undefined;
    await tx
      .updateTable('refund_payouts')
      .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
      .where('tenant_id', '=', row.tenant_id)
      .where('refund_id', '=', row.refund_id)
      .execute();
    return tx
      .updateTable('refund_payout_parts')
      .set({ next_attempt_at: new Date(now.getTime() + ctx.limits.leaseMs), attempts: row.attempts + 1 })
      .where('tenant_id', '=', row.tenant_id)
      .where('refund_id', '=', row.refund_id)
      .where('seq', '=', row.seq)
      .returningAll()
      .executeTakeFirstOrThrow();
  });
}

async function payOne(ctx: BillingContext, part: PartRow): Promise<void> {
  const log = ctx.logger.child({ tenant_id: part.tenant_id, refund_id: part.refund_id, part: part.seq, payment_id: part.payment_id });
  const processor = ctx.processors.get(part.provider);
  let outcome: { paid: string } | { failed: string } | { retry: string };
  if (!processor) {
    outcome = { failed: `provider ${part.provider} is not available in this deployment` };
  } else {
    try {
      const payment = await ctx.db.selectFrom('payments').select('provider_reference').where('tenant_id', '=', part.tenant_id).where('payment_id', '=', part.payment_id).executeTakeFirstOrThrow();
      const credentials = await providerCredentials(ctx.db, ctx.secrets, part.tenant_id, part.provider);
      if (!credentials) throw new ProviderError(`provider ${part.provider} is not configured for the tenant`, false);
      const { providerReference } = await processor.payout(credentials, {
        refundId: part.refund_id,
        providerReference: payment.provider_reference,
        currency: part.currency,
        amountMinor: BigInt(part.amount_minor),
        idempotencyKey: payoutKey(part.refund_id, part.seq),
      });
      outcome = { paid: providerReference };
    } catch (err) {
      const retryable = !(err instanceof ProviderError) || err.retryable;
      const message = (err as Error).message.slice(0, 1000);
      outcome = retryable && part.attempts < ctx.limits.payoutMaxAttempts ? { retry: message } : { failed: message };
    }
  }
  const now = ctx.now();
  const kick = await inTransaction(ctx.db, async (tx) => {
    const before = await partsOf(tx, part.tenant_id, part.refund_id, true);
    const i = before.findIndex((p) => p.seq === part.seq);
    if (before[i]?.status !== 'pending') return false;
    const key = { tenantId: part.tenant_id, refundId: part.refund_id };
    if ('retry' in outcome) {
      const at = nextAttemptAt(now, PAYOUT_BACKOFF, part.attempts, ctx.random());
      log.warn({ err: outcome.retry, attempt: part.attempts, next_attempt_at: at }, 'refund payout failed; will retry');
      await tx.updateTable('refund_payout_parts').set({ failure_reason: outcome.retry, next_attempt_at: at }).where('tenant_id', '=', part.tenant_id).where('refund_id', '=', part.refund_id).where('seq', '=', part.seq).execute();
      await tx.updateTable('refund_payouts').set({ failure_reason: outcome.retry, next_attempt_at: at }).where('tenant_id', '=', part.tenant_id).where('refund_id', '=', part.refund_id).execute();
      return false;
    }
    const parts = before.map(partOf);
    const after = 'paid' in outcome ? partPaid(parts, i, outcome.paid) : partFailed(parts, i, outcome.failed);
    const { row, settled, due } = await saveParts(tx, key, before, after, now);
    if (settled) await refundSettled(tx, row, now);
    log.info({ part_status: after[i]!.status, status: row.status }, 'refund payout part settled');
    return due;
  });
  if (kick) ctx.kick('payouts');
}
