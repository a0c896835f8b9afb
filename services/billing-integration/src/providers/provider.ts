/** Thrown by a provider call; `retryable` says whether the same call may succeed later. */
export class ProviderError extends Error {
  override readonly name = 'ProviderError';
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** Thrown when a webhook's signature or timestamp does not verify: answer 401 and apply nothing. */
export class WebhookRejected extends Error {
  override readonly name = 'WebhookRejected';
}

/** A tenant's credentials for one processor, decrypted only for the call. */
export interface ProviderCredentials {
  apiKey: string;
  webhookSecret: string;
}

export interface CheckoutInput {
  paymentId: string;
  currency: string;
  amountMinor: bigint;
  description: string;
  /** The processor deduplicates on it: a retried create returns the first checkout. */
  idempotencyKey: string;
}

export interface PayoutInput {
  refundId: string;
  providerReference: string;
  currency: string;
  amountMinor: bigint;
  idempotencyKey: string;
}

/** A verified processor notification about one payment. */
export interface PaymentNotification {
  /** The processor's event id: a redelivered webhook carries the same one. */
  eventId: string;
  kind: 'captured' | 'failed';
  paymentId: string;
  providerReference: string;
  currency: string;
  amountMinor: bigint;
  reason: string;
}

/**
 * A card processor adapter. Payments are created at the processor, the member pays at its hosted
 * page, and the processor tells us the outcome with a signed webhook; refunds are paid back through it.
 */
export interface CardProcessor {
  readonly name: string;
  createCheckout(credentials: ProviderCredentials, input: CheckoutInput): Promise<{ providerReference: string; checkoutUrl: string }>;
  /** Verifies the signature over the exact raw body; throws WebhookRejected. */
  verifyWebhook(credentials: ProviderCredentials, rawBody: Buffer, headers: Record<string, string | undefined>, now: Date): PaymentNotification;
  payout(credentials: ProviderCredentials, input: PayoutInput): Promise<{ providerReference: string }>;
}

export { MANUAL_PROVIDER } from '../domain/payment.js';
