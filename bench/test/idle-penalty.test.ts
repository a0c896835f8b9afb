import { describe, expect, it } from 'vitest';
import { idlePenalty } from '../src/idle-penalty.js';

describe('the idle penalty', () => {
  it('times the work back to back and after sleeping, and gives their ratio', async () => {
    const p = await idlePenalty(20, 2);
    expect(p.sleepMs).toBe(2);
    expect(p.busyMicros).toBeGreaterThan(0);
    expect(p.afterSleepMicros).toBeGreaterThan(0);
    expect(p.factor).toBeCloseTo(p.afterSleepMicros / p.busyMicros, 1);
  });
});
