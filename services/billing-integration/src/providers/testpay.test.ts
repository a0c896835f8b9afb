import { describe, expect, it } from 'vitest';
import { WebhookRejected } from './provider.js';
import { testpayProcessor, testpaySignature, TESTPAY_SIGNATURE_HEADER } from './testpay.js';

const processor = testpayProcessor({ baseUrl: 'http://127.0.0.1:1' });
const credentials = { apiKey: 'sk', webhookSecret: 'whsec_unit' };
const now = new Date('2030-01-01T00:00:00Z');
const t = Math.floor(now.getTime() / 1000);
const body = JSON.stringify({ id: 'evt_1', type: 'checkout.captured', data: { id: 'co_1', amount: '30000', currency: 'SGD', metadata: { payment_id: 'p-1' } } });
const signed = (b: string, ts = t, secret = credentials.webhookSecret) => ({ [TESTPAY_SIGNATURE_HEADER]: testpaySignature(secret, ts, b) });

describe('testpay webhook verification', () => {
  it('accepts a correctly signed event and reads it', () => {
    expect(processor.verifyWebhook(credentials, Buffer.from(body), signed(body), now)).toEqual({
      eventId: 'evt_1',
      kind: 'captured',
      paymentId: 'p-1',
      providerReference: 'co_1',
      currency: 'SGD',
      amountMinor: 30000n,
      reason: '',
    });
  });

  it('rejects a changed body, another secret, a missing header and a stale or future timestamp', () => {
    const tampered = body.replace('30000', '3');
    expect(() => processor.verifyWebhook(credentials, Buffer.from(tampered), signed(body), now)).toThrow(WebhookRejected);
    expect(() => processor.verifyWebhook(credentials, Buffer.from(body), signed(body, t, 'other'), now)).toThrow(/does not match/);
    expect(() => processor.verifyWebhook(credentials, Buffer.from(body), {}, now)).toThrow(/missing/);
    expect(() => processor.verifyWebhook(credentials, Buffer.from(body), signed(body, t - 301), now)).toThrow(/tolerance/);
    expect(() => processor.verifyWebhook(credentials, Buffer.from(body), signed(body, t + 301), now)).toThrow(/tolerance/);
    expect(() => processor.verifyWebhook(credentials, Buffer.from(body), { [TESTPAY_SIGNATURE_HEADER]: 'garbage' }, now)).toThrow(/malformed/);
  });

  it('rejects unknown event types and events without the payment id', () => {
    const other = JSON.stringify({ id: 'e', type: 'customer.created', data: {} });
    expect(() => processor.verifyWebhook(credentials, Buffer.from(other), signed(other), now)).toThrow(/unsupported event type/);
    const bare = JSON.stringify({ id: 'e', type: 'checkout.failed', data: { id: 'co' } });
    expect(() => processor.verifyWebhook(credentials, Buffer.from(bare), signed(bare), now)).toThrow(/payment_id/);
  });
});
