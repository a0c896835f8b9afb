import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelayMs, classifyHttpFailure, FULFILMENT_BACKOFF, nextAttemptAt, SYNC_BACKOFF, WEBHOOK_BACKOFF, type BackoffPolicy } from './backoff.js';

const policy: fc.Arbitrary<BackoffPolicy> = fc
  .record({ baseMs: fc.integer({ min: 1, max: 100_000 }), maxMs: fc.integer({ min: 1, max: 100_000_000 }), factor: fc.double({ min: 1, max: 10, noNaN: true }), jitter: fc.double({ min: 0, max: 1, noNaN: true }) })
  .filter((p) => p.maxMs >= p.baseMs);

describe('backoff', () => {
  it('grows exponentially without jitter', () => {
    const p = { baseMs: 1000, maxMs: 60_000, factor: 2, jitter: 0 };
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((a) => backoffDelayMs(p, a, 0.5))).toEqual([1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
  });

  it('follows the Standard Webhooks guidance for webhooks (5 s, 30 s, 3 min, ... capped at 10 h)', () => {
    expect(backoffDelayMs(WEBHOOK_BACKOFF, 1, 0)).toBe(5000);
    expect(backoffDelayMs(WEBHOOK_BACKOFF, 20, 0)).toBe(10 * 60 * 60_000);
  });

  it('rejects a non-positive attempt', () => {
    expect(() => backoffDelayMs(SYNC_BACKOFF, 0, 0)).toThrow(RangeError);
  });

  it('property: never negative, never above the cap, never below the jittered floor', () => {
    fc.assert(
      fc.property(policy, fc.integer({ min: 1, max: 200 }), fc.double({ min: 0, max: 1, noNaN: true }), (p, attempt, r) => {
        const d = backoffDelayMs(p, attempt, r);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(p.maxMs);
        const exact = Math.min(p.maxMs, p.baseMs * p.factor ** (attempt - 1));
        expect(d).toBeGreaterThanOrEqual(Math.floor(exact * (1 - p.jitter)) - 1);
      }),
    );
  });

  it('property: with the same jitter draw, a later attempt never waits less', () => {
    fc.assert(
      fc.property(policy, fc.integer({ min: 1, max: 100 }), fc.double({ min: 0, max: 1, noNaN: true }), (p, attempt, r) => {
        expect(backoffDelayMs(p, attempt + 1, r)).toBeGreaterThanOrEqual(backoffDelayMs(p, attempt, r));
      }),
    );
  });

  it('schedules from the given clock', () => {
    const now = new Date('2030-01-01T00:00:00Z');
    expect(nextAttemptAt(now, { ...FULFILMENT_BACKOFF, jitter: 0 }, 1, 0).toISOString()).toBe('2030-01-01T00:00:02.000Z');
  });

  it('retries server errors, timeouts, rate limits and network errors, not other client errors', () => {
    expect([undefined, 500, 502, 503, 408, 409, 429].map(classifyHttpFailure)).toEqual(Array(7).fill('retryable'));
    expect([400, 401, 403, 404, 422].map(classifyHttpFailure)).toEqual(Array(5).fill('permanent'));
  });
});
