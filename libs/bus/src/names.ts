/** The JetStream streams of Punchcard: one per producing service, inbound visits, and the dead letters. */
export const STREAMS = {
  LEDGER: 'punchcard.ledger.>',
  CATALOGUE: 'punchcard.catalogue.>',
  EXPIRY: 'punchcard.expiry.>',
  REVENUE: 'punchcard.revenue.>',
  BILLING: 'punchcard.billing.>',
  VISITS: 'punchcard.visits.>',
  DEADLETTER: 'punchcard.deadletter.>',
} as const;

export type StreamKey = keyof typeof STREAMS;

export const STREAM_KEYS = Object.keys(STREAMS) as StreamKey[];

/** Producer name of the stream that carries its events, e.g. `ledger` -> `LEDGER`. */
export function streamKeyOf(producer: string): StreamKey {
  const key = producer.toUpperCase();
  if (!(key in STREAMS)) throw new Error(`producer ${JSON.stringify(producer)} has no stream (known: ${STREAM_KEYS.join(', ')})`);
  return key as StreamKey;
}

const NAMESPACE = /^[a-z0-9_-]*$/i;
const TOKEN = /^[A-Za-z0-9_-]+$/;

function assertNamespace(namespace: string): string {
  if (!NAMESPACE.test(namespace)) {
    throw new Error(`namespace ${JSON.stringify(namespace)} must be letters, digits, '_' or '-' (or empty)`);
  }
  return namespace;
}

/** A subject token (producer, event, tenant id, durable): no dots, wildcards or spaces. */
export function assertToken(value: string, field: string): string {
  if (!TOKEN.test(value)) {
    throw new Error(`${field} ${JSON.stringify(value)} must be a non-empty subject token of letters, digits, '_' or '-'`);
  }
  return value;
}

/** `<ns>_LEDGER`, or `LEDGER` when the namespace is empty (production). */
export function streamName(namespace: string, key: StreamKey): string {
  return assertNamespace(namespace) ? `${namespace}_${key}` : key;
}

/** Prefixes a subject (or subject filter) with the namespace: `<ns>.punchcard...`. */
export function withNamespace(namespace: string, subject: string): string {
  return assertNamespace(namespace) ? `${namespace}.${subject}` : subject;
}

/** The subject without the namespace prefix, as producers wrote it. */
export function withoutNamespace(namespace: string, subject: string): string {
  const prefix = namespace ? `${namespace}.` : '';
  return prefix && subject.startsWith(prefix) ? subject.slice(prefix.length) : subject;
}

/** The subject of a namespace-free event: `punchcard.<producer>.<event>.<tenant>`. */
export function eventSubject(producer: string, event: string, tenantId: string): string {
  return `punchcard.${assertToken(producer, 'producer')}.${assertToken(event, 'event')}.${assertToken(tenantId, 'tenant_id')}`;
}

/** `[<ns>.]punchcard.<producer>.<event>.<tenant>` */
export function subjectFor(namespace: string, producer: string, event: string, tenantId: string): string {
  return withNamespace(namespace, eventSubject(producer, event, tenantId));
}

/** The CloudEvents type of an event: `punchcard.<producer>.<event>`. */
export function eventType(producer: string, event: string): string {
  return `punchcard.${assertToken(producer, 'producer')}.${assertToken(event, 'event')}`;
}

/** Where a consumer parks its poison messages: `[<ns>.]punchcard.deadletter.<durable>`. */
export function deadLetterSubject(namespace: string, durable: string): string {
  return withNamespace(namespace, `punchcard.deadletter.${assertToken(durable, 'durable')}`);
}

/** NATS subject matching: `*` matches one token, a trailing `>` one or more. */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    const token = f[i];
    if (token === '>') return s.length > i;
    if (i >= s.length) return false;
    if (token !== '*' && token !== s[i]) return false;
  }
  return f.length === s.length;
}
