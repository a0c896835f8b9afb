import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isUuid, inTransaction } from '@punchcard/db';
import { transition } from '../domain/payment.js';
import type { BillingContext } from '../context.js';
import { paymentCaptured } from '../events/builders.js';
import { providerCredentials } from '../store/providers.js';
import { WebhookRejected, type PaymentNotification } from './provider.js';

const MAX_BODY = 256 * 1024;
const PATH = /^\/webhooks\/([a-z0-9_-]+)\/([A-Za-z0-9_-]{1,64})$/;

export type WebhookResult = { status: number; body: string };

/**
 * Applies one processor webhook: verify the signature over the raw body with the tenant's secret,
 * then, in one transaction, record the processor's event id (a duplicate delivery stops here), move
 * the payment through the state machine and publish billing.payment_captured. The ledger purchase
 * follows in the fulfilment saga, never here.
 */
export async function handleProviderWebhook(ctx: BillingContext, provider: string, tenantId: string, rawBody: Buffer, headers: Record<string, string | undefined>): Promise<WebhookResult> {
  const processor = ctx.processors.get(provider);
  if (!processor) return { status: 404, body: 'unknown provider' };
  const credentials = await providerCredentials(ctx.db, ctx.secrets, tenantId, provider);
  if (!credentials) return { status: 404, body: 'provider not configured for this tenant' };
  let n: PaymentNotification;
  try {
    n = processor.verifyWebhook(credentials, rawBody, headers, ctx.now());
  } catch (err) {
    if (err instanceof WebhookRejected) {
      ctx.logger.warn({ provider, tenant_id: tenantId, reason: err.message }, 'provider webhook rejected');
      return { status: 401, body: 'signature rejected' };
    }
    throw err;
  }
  if (!isUuid(n.paymentId)) return { status: 400, body: 'unknown payment id' };
  const log = ctx.logger.child({ provider, tenant_id: tenantId, payment_id: n.paymentId, provider_event_id: n.eventId });
  const outcome = await inTransaction(ctx.db, async (tx): Promise<WebhookResult & { captured?: boolean }> => {
    const payment = await tx.selectFrom('payments').selectAll().where('tenant_id', '=', tenantId).where('payment_id', '=', n.paymentId).forUpdate().executeTakeFirst();
    if (!payment || payment.provider !== provider) return { status: 404, body: 'payment not found' };
    const first = await tx
      .insertInto('provider_events')
      .values({ provider, tenant_id: tenantId, event_id: n.eventId, payment_id: n.paymentId, kind: n.kind, received_at: ctx.now() })
      .onConflict((oc) => oc.columns(['provider', 'tenant_id', 'event_id']).doNothing())
      .returning('event_id')
      .executeTakeFirst();
    if (!first) return { status: 200, body: 'duplicate' };
    if (n.kind === 'captured' && (n.currency !== payment.currency || n.amountMinor !== BigInt(payment.amount_minor))) {
      // Money moved, but not what was asked: keep the payment for a human rather than fulfil or fail it.
      await tx
        .updateTable('payments')
        .set({ failure_reason: `processor captured ${n.amountMinor} ${n.currency}, expected ${payment.amount_minor} ${payment.currency}` })
        .where('tenant_id', '=', tenantId)
        .where('payment_id', '=', n.paymentId)
        .execute();
      log.error({ captured: `${n.amountMinor} ${n.currency}` }, 'processor captured a different amount; payment held for review');
      return { status: 200, body: 'amount mismatch recorded' };
    }
    const t = transition(payment.status, n.kind === 'captured' ? { kind: 'capture', providerReference: n.providerReference } : { kind: 'fail', reason: n.reason });
    if (t.anomaly) {
      await tx.updateTable('payments').set({ failure_reason: `${payment.failure_reason}; ${t.anomaly}` }).where('tenant_id', '=', tenantId).where('payment_id', '=', n.paymentId).execute();
      log.error({ anomaly: t.anomaly }, 'payment anomaly');
    }
    if (!t.changed) return { status: 200, body: 'no change' };
    const at = ctx.now();
    if (t.next === 'captured') {
      const captured = await tx
        .updateTable('payments')
        .set({ status: 'captured', provider_reference: n.providerReference, capture_time: at, next_attempt_at: at })
        .where('tenant_id', '=', tenantId)
        .where('payment_id', '=', n.paymentId)
        .returningAll()
        .executeTakeFirstOrThrow();
      await paymentCaptured(tx, captured, at);
      return { status: 200, body: 'captured', captured: true };
    }
    await tx
      .updateTable('payments')
      .set({ status: 'failed', failure_reason: n.reason || 'payment failed at the processor' })
      .where('tenant_id', '=', tenantId)
      .where('payment_id', '=', n.paymentId)
      .execute();
    return { status: 200, body: 'failed' };
  });
  log.info({ kind: n.kind, result: outcome.body }, 'provider webhook applied');
  if (outcome.captured) ctx.kick('fulfilment');
  return { status: outcome.status, body: outcome.body };
}

/** The listener processors call: POST /webhooks/<provider>/<tenant_id>. */
export async function startWebhookListener(ctx: BillingContext, options: { host: string; port: number }): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    void serve(ctx, req, res).catch((err: unknown) => {
      ctx.logger.error({ err: (err as Error).message }, 'provider webhook failed');
      if (!res.headersSent) reply(res, 500, 'internal error');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host === '0.0.0.0' ? '127.0.0.1' : options.host;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function serve(ctx: BillingContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const match = PATH.exec(new URL(req.url ?? '/', 'http://x').pathname);
  if (req.method !== 'POST' || !match) return reply(res, 404, 'not found');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) return reply(res, 413, 'body too large');
    chunks.push(chunk as Buffer);
  }
  const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : v]));
  const result = await handleProviderWebhook(ctx, match[1]!, match[2]!, Buffer.concat(chunks), headers);
  reply(res, result.status, result.body);
}

function reply(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
}
