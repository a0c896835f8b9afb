import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { subscriptionMatches, validateEventTypes, validateWebhookUrl, webhookEventType, webhookPayload } from './webhooks.js';

describe('webhook subscriptions', () => {
  it('strips the punchcard prefix from CloudEvents types', () => {
    expect(webhookEventType('punchcard.ledger.session_consumed')).toBe('ledger.session_consumed');
  });

  it('matches exact types, producer wildcards, and everything when empty', () => {
    expect(subscriptionMatches([], 'ledger.session_consumed')).toBe(true);
    expect(subscriptionMatches(['ledger.*'], 'ledger.session_consumed')).toBe(true);
    expect(subscriptionMatches(['ledger.session_consumed'], 'ledger.session_consumed')).toBe(true);
    expect(subscriptionMatches(['billing.*', 'ledger.consume_reversed'], 'ledger.session_consumed')).toBe(false);
  });

  it('property: a subscription to a type always receives it', () => {
    const token = fc.stringMatching(/^[a-z][a-z0-9_]{0,10}$/);
    fc.assert(
      fc.property(token, token, fc.array(fc.constantFrom('revenue.*', 'billing.refund_paid')), (producer, event, others) => {
        const type = `${producer}.${event}`;
        expect(subscriptionMatches(validateEventTypes([...others, type]), type)).toBe(true);
        expect(subscriptionMatches(validateEventTypes([...others, `${producer}.*`]), type)).toBe(true);
      }),
    );
  });

  it('rejects malformed event types, naming the entry', () => {
    expect(() => validateEventTypes(['ledger.session_consumed', 'Ledger'])).toThrow(/event_types\[1\]/);
  });

  it('requires https, allowing http only on loopback when configured, and no credentials', () => {
    expect(validateWebhookUrl('https://hooks.example.com/x', false)).toBe('https://hooks.example.com/x');
    expect(() => validateWebhookUrl('http://hooks.example.com/x', true)).toThrow(/url: must use https/);
    expect(validateWebhookUrl('http://127.0.0.1:9999/x', true)).toBe('http://127.0.0.1:9999/x');
    expect(() => validateWebhookUrl('http://127.0.0.1:9999/x', false)).toThrow(/https/);
    expect(() => validateWebhookUrl('https://u:p@example.com/', false)).toThrow(/credentials/);
    expect(() => validateWebhookUrl('not a url', false)).toThrow(/absolute URL/);
  });

  it('builds the Standard Webhooks payload', () => {
    expect(JSON.parse(webhookPayload('billing.refund_paid', new Date('2030-01-01T00:00:00Z'), { a: 1 }))).toEqual({
      type: 'billing.refund_paid',
      timestamp: '2030-01-01T00:00:00.000Z',
      data: { a: 1 },
    });
  });
});
