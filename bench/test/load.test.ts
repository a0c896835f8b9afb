import { describe, expect, it } from 'vitest';
import { openLoop } from '../src/load.js';

describe('the open-loop load', () => {
  it('reports the rate a service completed, not the rate it was offered, when it falls behind', async () => {
    // Every answer is held until well after the schedule ends, as from a service with a backlog.
    const durationMs = 300;
    const heldMs = 600;
    const released = new Promise<void>((resolve) => setTimeout(resolve, durationMs + heldMs));
    const result = await openLoop({ rate: 100, durationMs, warmupMs: 0, op: () => released.then(() => 'ok' as const) });

    expect(result.ok).toBeGreaterThan(0);
    // The window runs to the last answer, which came no earlier than the release.
    expect(result.seconds).toBeGreaterThanOrEqual((durationMs + heldMs - 10) / 1000);
    expect(result.throughput).toBeLessThan(100 * 0.98);
    expect(result.throughput).toBeCloseTo(result.ok / result.seconds, 0);
  });

  it('counts its window as the duration when every answer comes at once', async () => {
    const result = await openLoop({ rate: 50, durationMs: 200, warmupMs: 0, op: async () => 'ok' as const });
    expect(result.seconds).toBeGreaterThanOrEqual(0.2);
    expect(result.ok).toBe(10);
  });
});
