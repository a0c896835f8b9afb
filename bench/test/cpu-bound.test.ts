import { describe, expect, it } from 'vitest';
import { cpuBoundOf } from '../src/cpu-bound.js';

describe('the CPU bound of 1M expiries', () => {
  it('spreads the CPU per expiry over every core', () => {
    expect(cpuBoundOf(1.65, 2)).toEqual({ cores: 2, floorSeconds: 825, budgetMsPerExpiry: 0.6 });
    expect(cpuBoundOf(0.99, 2).floorSeconds).toBe(495);
    expect(cpuBoundOf(1.65, 4)).toEqual({ cores: 4, floorSeconds: 413, budgetMsPerExpiry: 1.2 });
  });

  it('takes the target and the count it is given', () => {
    expect(cpuBoundOf(2, 2, 100_000, 60)).toEqual({ cores: 2, floorSeconds: 100, budgetMsPerExpiry: 1.2 });
  });

  it('meets the target exactly at its budget', () => {
    for (const cores of [1, 2, 3, 8]) {
      const { budgetMsPerExpiry } = cpuBoundOf(0, cores);
      expect(cpuBoundOf(budgetMsPerExpiry, cores).floorSeconds).toBe(300);
    }
  });

  it('refuses a machine without cores', () => {
    expect(() => cpuBoundOf(1, 0)).toThrow(/cores must be positive/);
  });
});
