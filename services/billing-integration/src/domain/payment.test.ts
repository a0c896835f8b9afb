import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RuleViolation } from './errors.js';
import { transition, type PaymentEvent, type PaymentStatus } from './payment.js';

const event = fc.oneof(
  fc.record({ kind: fc.constant('capture' as const), providerReference: fc.string() }),
  fc.record({ kind: fc.constant('fail' as const), reason: fc.string() }),
  fc.record({ kind: fc.constant('fulfil' as const), entitlementId: fc.string() }),
);

/** Applies events as the service does: a refused transition changes nothing. */
function run(events: PaymentEvent[]): PaymentStatus[] {
  const seen: PaymentStatus[] = ['pending'];
  let status: PaymentStatus = 'pending';
  for (const e of events) {
    try {
      status = transition(status, e).next;
    } catch (err) {
      expect(err).toBeInstanceOf(RuleViolation);
    }
    seen.push(status);
  }
  return seen;
}

describe('payment state machine', () => {
  it('captures, then fulfils', () => {
    expect(transition('pending', { kind: 'capture', providerReference: 'r' })).toEqual({ next: 'captured', changed: true });
    expect(transition('captured', { kind: 'fulfil', entitlementId: 'e' })).toEqual({ next: 'fulfilled', changed: true });
  });

  it('treats repeats as no change', () => {
    expect(transition('captured', { kind: 'capture', providerReference: 'r' })).toEqual({ next: 'captured', changed: false });
    expect(transition('fulfilled', { kind: 'capture', providerReference: 'r' })).toEqual({ next: 'fulfilled', changed: false });
    expect(transition('fulfilled', { kind: 'fulfil', entitlementId: 'e' })).toEqual({ next: 'fulfilled', changed: false });
    expect(transition('failed', { kind: 'fail', reason: 'x' })).toEqual({ next: 'failed', changed: false });
  });

  it('lets a capture win over a later failure notice', () => {
    expect(transition('captured', { kind: 'fail', reason: 'declined' })).toEqual({ next: 'captured', changed: false });
  });

  it('never fulfils a pending or failed payment', () => {
    expect(() => transition('pending', { kind: 'fulfil', entitlementId: 'e' })).toThrow(RuleViolation);
    expect(() => transition('failed', { kind: 'fulfil', entitlementId: 'e' })).toThrow(/failed payment cannot be fulfilled/);
  });

  it('flags a capture after a failure instead of reviving the payment', () => {
    const t = transition('failed', { kind: 'capture', providerReference: 'ch_1' });
    expect(t.next).toBe('failed');
    expect(t.changed).toBe(false);
    expect(t.anomaly).toContain('ch_1');
  });

  it('property: whatever arrives in whatever order, a failed payment is never fulfilled and a capture is never undone', () => {
    fc.assert(
      fc.property(fc.array(event, { maxLength: 30 }), (events) => {
        const seen = run(events);
        const firstFailed = seen.indexOf('failed');
        if (firstFailed >= 0) expect(seen.slice(firstFailed).every((s) => s === 'failed')).toBe(true);
        const firstCaptured = seen.findIndex((s) => s === 'captured' || s === 'fulfilled');
        if (firstCaptured >= 0) expect(seen.slice(firstCaptured).every((s) => s === 'captured' || s === 'fulfilled')).toBe(true);
        // fulfilled only ever follows captured
        for (let i = 1; i < seen.length; i++) if (seen[i] === 'fulfilled' && seen[i - 1] !== 'fulfilled') expect(seen[i - 1]).toBe('captured');
      }),
    );
  });
});
