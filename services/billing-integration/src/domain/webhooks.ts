import { InvalidField } from './errors.js';

/** `punchcard.ledger.session_consumed` (CloudEvents type) -> `ledger.session_consumed` (subscription event type). */
export function webhookEventType(cloudEventType: string): string {
  return cloudEventType.startsWith('punchcard.') ? cloudEventType.slice('punchcard.'.length) : cloudEventType;
}

const EVENT_TYPE = /^[a-z][a-z0-9_]*\.([a-z][a-z0-9_]*|\*)$/;

/** Subscription filters: exact types (`ledger.session_consumed`) or a producer wildcard (`ledger.*`). */
export function validateEventTypes(types: readonly string[]): string[] {
  const out = new Set<string>();
  for (const [i, t] of types.entries()) {
    if (!EVENT_TYPE.test(t)) throw new InvalidField(`event_types[${i}]`, `"${t}" is not an event type like ledger.session_consumed or ledger.*`);
    out.add(t);
  }
  return [...out].sort();
}

/** Whether a subscription with these filters wants an event of this type; no filters = everything. */
export function subscriptionMatches(filters: readonly string[], eventType: string): boolean {
  if (filters.length === 0) return true;
  const producer = eventType.split('.')[0];
  return filters.some((f) => f === eventType || f === `${producer}.*`);
}

/**
 * A subscription URL: https, or http only to loopback when the service allows it (local development
 * and tests). No credentials in the URL: they would be logged and stored in the clear.
 */
export function validateWebhookUrl(raw: string, allowInsecureLoopback: boolean): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new InvalidField('url', 'must be an absolute URL');
  }
  if (url.username || url.password) throw new InvalidField('url', 'must not contain credentials');
  const loopback = url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]';
  if (url.protocol === 'https:') return url.toString();
  if (url.protocol === 'http:' && loopback && allowInsecureLoopback) return url.toString();
  throw new InvalidField('url', 'must use https');
}

/** The Standard Webhooks payload convention: type, timestamp, data. */
export function webhookPayload(eventType: string, time: Date, data: unknown): string {
  return JSON.stringify({ type: eventType, timestamp: time.toISOString(), data });
}
