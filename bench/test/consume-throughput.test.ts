import { describe, expect, it } from 'vitest';
import { OPEN_LOOP_PACKAGES, servicePackages } from '../src/benchmarks/consume-throughput.js';

describe('consume-throughput packages', () => {
  it('gives the open loop its own spread of packages when the callers were few', () => {
    expect(servicePackages([1])).toBe(OPEN_LOOP_PACKAGES);
    expect(servicePackages([1, 4])).toBeGreaterThan(4);
  });

  it('gives each closed-loop caller a package of its own', () => {
    expect(servicePackages([1, 4, 16, 256])).toBe(256);
  });
});
