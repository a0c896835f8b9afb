import { randomUUID } from 'node:crypto';
import { testpaySignature, TESTPAY_SIGNATURE_HEADER } from '../../src/providers/testpay.js';
import { startHttp } from './http-server.js';

/**
 * The test card processor's API: checkouts and refunds, idempotent by Idempotency-Key, bearer API
 * key. `payouts` counts refunds actually paid (one per key); `failRefundsNext` answers 503s;
 * refunds of a checkout in `refuseRefundsOf` are declined for good (`status: failed`, as a closed card).
 */
export async function startFakeTestpay(apiKey: string) {
  const checkouts = new Map<string, { id: string; amount: string; currency: string; paymentId: string }>();
  const payouts = new Map<string, { id: string; checkout: string; amount: string; refundId: string }>();
  const state = { failRefundsNext: 0, refuseRefundsOf: new Set<string>() };
  const http = await startHttp((req) => {
    if (req.headers.authorization !== `Bearer ${apiKey}`) return { status: 401, body: { error: 'bad api key' } };
    const key = req.headers['idempotency-key'];
    if (!key) return { status: 400, body: { error: 'Idempotency-Key required' } };
    const body = JSON.parse(req.body) as Record<string, unknown>;
    if (req.path === '/v1/checkouts') {
      let c = checkouts.get(key);
      if (!c) {
        c = { id: `co_${randomUUID()}`, amount: String(body.amount), currency: String(body.currency), paymentId: String((body.metadata as Record<string, unknown>).payment_id) };
        checkouts.set(key, c);
      }
      return { status: 200, body: { id: c.id, url: `https://pay.testpay.example/c/${c.id}` } };
    }
    if (req.path === '/v1/refunds') {
      if (state.failRefundsNext > 0) {
        state.failRefundsNext--;
        return { status: 503, body: { error: 'try again' } };
      }
      if (state.refuseRefundsOf.has(String(body.checkout))) return { status: 200, body: { id: `re_${randomUUID()}`, status: 'failed', failure_reason: 'card account closed' } };
      let p = payouts.get(key);
      if (!p) {
        p = { id: `re_${randomUUID()}`, checkout: String(body.checkout), amount: String(body.amount), refundId: String((body.metadata as Record<string, unknown>).refund_id) };
        payouts.set(key, p);
      }
      return { status: 200, body: { id: p.id, status: 'succeeded' } };
    }
    return { status: 404, body: { error: 'not found' } };
  });
  return { ...http, checkouts, payouts, state };
}

/** A signed testpay webhook, as the processor would post it. */
export function testpayWebhook(secret: string, event: { id: string; type: 'checkout.captured' | 'checkout.failed'; checkoutId: string; paymentId: string; amount: bigint; currency: string; reason?: string }, at: Date) {
  const body = JSON.stringify({
    id: event.id,
    type: event.type,
    data: { id: event.checkoutId, amount: event.amount.toString(), currency: event.currency, metadata: { payment_id: event.paymentId }, ...(event.reason ? { failure_reason: event.reason } : {}) },
  });
  return { body, headers: { 'content-type': 'application/json', [TESTPAY_SIGNATURE_HEADER]: testpaySignature(secret, Math.floor(at.getTime() / 1000), body) } };
}
