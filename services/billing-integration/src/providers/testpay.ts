import { createHmac, timingSafeEqual } from 'node:crypto';
import { ProviderError, WebhookRejected, type CardProcessor, type CheckoutInput, type PaymentNotification, type PayoutInput, type ProviderCredentials } from './provider.js';

/** Signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` (the common processor scheme). */
export const TESTPAY_SIGNATURE_HEADER = 'testpay-signature';
/** A signed webhook older or newer than this is refused (replay protection). */
export const TESTPAY_TOLERANCE_S = 300;

export function testpaySignature(secret: string, timestampS: number, rawBody: Buffer | string): string {
  const mac = createHmac('sha256', secret).update(`${timestampS}.`).update(rawBody).digest('hex');
  return `t=${timestampS},v1=${mac}`;
}

/**
 * The test card processor: a small HTTP API (`POST /v1/checkouts`, `POST /v1/refunds`, bearer API key,
 * `Idempotency-Key`) and HMAC-signed webhooks. It stands for any real processor; an adapter for one
 * implements the same interface.
 */
export function testpayProcessor(options: { baseUrl: string; fetch?: typeof fetch; timeoutMs?: number }): CardProcessor {
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 10_000;

  async function post(credentials: ProviderCredentials, path: string, idempotencyKey: string, body: unknown): Promise<Record<string, unknown>> {
    let res: Response;
    try {
      res = await doFetch(new URL(path, options.baseUrl), {
        method: 'POST',
        headers: { authorization: `Bearer ${credentials.apiKey}`, 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new ProviderError(`testpay ${path}: ${(err as Error).message}`, true);
    }
    const text = await res.text();
    if (!res.ok) {
      const retryable = res.status >= 500 || res.status === 429 || res.status === 409;
      throw new ProviderError(`testpay ${path} answered ${res.status}: ${text.slice(0, 200)}`, retryable, res.status);
    }
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new ProviderError(`testpay ${path} answered ${res.status} with a body that is not JSON`, true, res.status);
    }
  }

  return {
    name: 'testpay',
    async createCheckout(credentials: ProviderCredentials, input: CheckoutInput) {
      const out = await post(credentials, '/v1/checkouts', input.idempotencyKey, {
        amount: input.amountMinor.toString(),
        currency: input.currency,
        description: input.description,
        metadata: { payment_id: input.paymentId },
      });
      if (typeof out.id !== 'string' || typeof out.url !== 'string') throw new ProviderError('testpay checkout response lacks id or url', true);
      return { providerReference: out.id, checkoutUrl: out.url };
    },
    verifyWebhook(credentials: ProviderCredentials, rawBody: Buffer, headers: Record<string, string | undefined>, now: Date): PaymentNotification {
      const header = headers[TESTPAY_SIGNATURE_HEADER];
      if (!header) throw new WebhookRejected(`missing ${TESTPAY_SIGNATURE_HEADER} header`);
      const parts = Object.fromEntries(header.split(',').map((p) => p.trim().split('=', 2) as [string, string]));
      const t = Number(parts.t);
      if (!Number.isSafeInteger(t) || !parts.v1) throw new WebhookRejected('malformed signature header');
      if (Math.abs(now.getTime() / 1000 - t) > TESTPAY_TOLERANCE_S) throw new WebhookRejected('signature timestamp outside the tolerance');
      const expected = Buffer.from(testpaySignature(credentials.webhookSecret, t, rawBody).split('v1=')[1]!, 'hex');
      const given = Buffer.from(parts.v1, 'hex');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new WebhookRejected('signature does not match');
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(rawBody.toString('utf8')) as Record<string, unknown>;
      } catch {
        throw new WebhookRejected('body is not JSON');
      }
      const data = (body.data ?? {}) as Record<string, unknown>;
      const metadata = (data.metadata ?? {}) as Record<string, unknown>;
      const kind = body.type === 'checkout.captured' ? 'captured' : body.type === 'checkout.failed' ? 'failed' : undefined;
      if (!kind) throw new WebhookRejected(`unsupported event type ${String(body.type)}`);
      if (typeof body.id !== 'string' || typeof data.id !== 'string' || typeof metadata.payment_id !== 'string') throw new WebhookRejected('event lacks id, data.id or data.metadata.payment_id');
      let amountMinor: bigint;
      try {
        amountMinor = BigInt(String(data.amount));
      } catch {
        throw new WebhookRejected('data.amount is not an integer');
      }
      return {
        eventId: body.id,
        kind,
        paymentId: metadata.payment_id,
        providerReference: data.id,
        currency: String(data.currency ?? ''),
        amountMinor,
        reason: typeof data.failure_reason === 'string' ? data.failure_reason : '',
      };
    },
    async payout(credentials: ProviderCredentials, input: PayoutInput) {
      const out = await post(credentials, '/v1/refunds', input.idempotencyKey, {
        checkout: input.providerReference,
        amount: input.amountMinor.toString(),
        currency: input.currency,
        metadata: { refund_id: input.refundId },
      });
      if (typeof out.id !== 'string') throw new ProviderError('testpay refund response lacks id', true);
      if (out.status === 'failed') throw new ProviderError(`testpay refused the refund: ${String(out.failure_reason ?? 'no reason')}`, false);
      return { providerReference: out.id };
    },
  };
}
