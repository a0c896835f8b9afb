import { inTransaction } from '@punchcard/db';
import type { Selectable } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { nextAttemptAt, WEBHOOK_BACKOFF } from '../domain/backoff.js';
import type { BillingContext } from '../context.js';
import type { WebhookDeliveriesTable } from '../store/schema.js';
import { subscriptionSecret } from '../store/webhooks.js';
import { drainDue } from './scheduler.js';

type DeliveryRow = Selectable<WebhookDeliveriesTable>;

/**
 * Sends due webhook deliveries, signed per Standard Webhooks (webhook-id = the delivery id, the same
 * on every retry and replay, so receivers can deduplicate; webhook-timestamp; webhook-signature
 * v1 HMAC-SHA256 by the maintained `standardwebhooks` library). Non-2xx or no answer: retried with
 * exponential backoff up to the attempt limit. Every attempt is logged in `webhook_attempts`.
 */
export function deliverWebhooksDue(ctx: BillingContext, limit = 100): Promise<number> {
  return drainDue(limit, () => claim(ctx), (row) => sendOne(ctx, row, false));
}

async function claim(ctx: BillingContext, deliveryId?: string): Promise<DeliveryRow | undefined> {
  const now = ctx.now();
  return inTransaction(ctx.db, async (tx) => {
    let q = tx.selectFrom('webhook_deliveries').selectAll();
    q = deliveryId ? q.where('delivery_id', '=', deliveryId) : q.where('delivered', '=', false).where('next_attempt_at', '<=', now).orderBy('next_attempt_at');
    const row = await q.limit(1).forUpdate().skipLocked().executeTakeFirst();
    if (!row) return undefined;
    return tx
      .updateTable('webhook_deliveries')
      .set({ next_attempt_at: new Date(now.getTime() + ctx.limits.leaseMs), attempts: row.attempts + 1 })
      .where('delivery_id', '=', row.delivery_id)
      .returningAll()
      .executeTakeFirstOrThrow();
  });
}

/** ReplayWebhookDelivery: sends the delivery again now (delivered or not) and returns it. */
export async function replayDelivery(ctx: BillingContext, deliveryId: string): Promise<DeliveryRow | undefined> {
  const row = await claim(ctx, deliveryId);
  if (!row) return undefined;
  await sendOne(ctx, row, true);
  return ctx.db.selectFrom('webhook_deliveries').selectAll().where('delivery_id', '=', deliveryId).executeTakeFirst();
}

async function sendOne(ctx: BillingContext, row: DeliveryRow, replay: boolean): Promise<void> {
  const log = ctx.logger.child({ tenant_id: row.tenant_id, delivery_id: row.delivery_id, subscription_id: row.subscription_id });
  const subscription = await ctx.db.selectFrom('webhook_subscriptions').select(['url', 'active']).where('subscription_id', '=', row.subscription_id).executeTakeFirstOrThrow();
  const secret = await subscriptionSecret(ctx.db, ctx.secrets, row.tenant_id, row.subscription_id);
  const sentAt = ctx.now();
  let status = 0;
  let error = '';
  try {
    const signature = new Webhook(secret!).sign(row.delivery_id, sentAt, row.payload);
    const res = await ctx.webhookFetch(subscription.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': row.delivery_id,
        'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
        'webhook-signature': signature,
        'user-agent': 'punchcard-webhooks/1',
      },
      body: row.payload,
      redirect: 'manual',
      signal: AbortSignal.timeout(15_000),
    });
    status = res.status;
    await res.body?.cancel();
    if (status < 200 || status >= 300) error = `endpoint answered ${status}`;
  } catch (err) {
    error = (err as Error).message.slice(0, 500);
  }
  const ok = error === '';
  const now = ctx.now();
  await inTransaction(ctx.db, async (tx) => {
    await tx.insertInto('webhook_attempts').values({ delivery_id: row.delivery_id, attempt: row.attempts, status_code: status, error, attempt_time: sentAt, replay }).execute();
    const giveUp = !ok && (replay || row.attempts >= ctx.limits.webhookMaxAttempts);
    await tx
      .updateTable('webhook_deliveries')
      .set({
        delivered: ok || (replay && row.delivered),
        last_status_code: status,
        last_error: error,
        next_attempt_at: ok || giveUp ? null : nextAttemptAt(now, WEBHOOK_BACKOFF, row.attempts, ctx.random()),
      })
      .where('delivery_id', '=', row.delivery_id)
      .execute();
  });
  if (ok) log.debug({ status, attempt: row.attempts, replay }, 'webhook delivered');
  else log.warn({ status, err: error, attempt: row.attempts, replay }, 'webhook delivery failed');
}
