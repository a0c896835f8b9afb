import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deadLetterSubject, eventSubject, STREAMS, streamName, subjectFor, subjectMatches, withNamespace, withoutNamespace } from './names.js';

const token = fc.stringMatching(/^[a-z0-9_-]{1,12}$/);
const namespace = fc.oneof(fc.constant(''), fc.stringMatching(/^[a-z0-9]{1,10}$/));

describe('names', () => {
  it('prefixes streams and subjects only when there is a namespace', () => {
    expect(streamName('', 'LEDGER')).toBe('LEDGER');
    expect(streamName('t1', 'LEDGER')).toBe('t1_LEDGER');
    expect(subjectFor('', 'ledger', 'session_consumed', 'acme')).toBe('punchcard.ledger.session_consumed.acme');
    expect(subjectFor('t1', 'ledger', 'session_consumed', 'acme')).toBe('t1.punchcard.ledger.session_consumed.acme');
    expect(deadLetterSubject('t1', 'revenue_ledger')).toBe('t1.punchcard.deadletter.revenue_ledger');
  });

  it('refuses tokens that would change the subject hierarchy, naming the field', () => {
    expect(() => subjectFor('', 'ledger', 'session_consumed', 'acme.other')).toThrow(/tenant_id/);
    expect(() => subjectFor('', 'ledger', '*', 'acme')).toThrow(/event/);
    expect(() => subjectFor('', '', 'x', 'acme')).toThrow(/producer/);
    expect(() => streamName('a.b', 'LEDGER')).toThrow(/namespace/);
  });

  it('matches NATS wildcards', () => {
    expect(subjectMatches('punchcard.ledger.>', 'punchcard.ledger.a.b')).toBe(true);
    expect(subjectMatches('punchcard.ledger.>', 'punchcard.ledger')).toBe(false);
    expect(subjectMatches('punchcard.*.a.*', 'punchcard.ledger.a.t')).toBe(true);
    expect(subjectMatches('punchcard.*.a.*', 'punchcard.ledger.a.t.x')).toBe(false);
    expect(subjectMatches('punchcard.ledger.a', 'punchcard.ledger.b')).toBe(false);
  });

  it('every event subject lands in its producer stream and no other', () => {
    fc.assert(
      fc.property(namespace, fc.constantFrom('ledger', 'catalogue', 'expiry', 'revenue', 'billing', 'visits'), token, token, (ns, producer, event, tenant) => {
        const subject = subjectFor(ns, producer, event, tenant);
        const streams = Object.entries(STREAMS).filter(([, filter]) => subjectMatches(withNamespace(ns, filter), subject));
        expect(streams.map(([key]) => key)).toEqual([producer.toUpperCase()]);
        expect(withoutNamespace(ns, subject)).toBe(eventSubject(producer, event, tenant));
      }),
    );
  });
});
