import { describe, expect, it } from 'vitest';
import { OPEN_LOOP_PACKAGES, resolveOpenRate, servicePackages } from '../src/benchmarks/consume-throughput.js';

describe('consume-throughput packages', () => {
  it('gives the open loop its own spread of packages when the callers were few', () => {
    expect(servicePackages([1])).toBe(OPEN_LOOP_PACKAGES);
    expect(servicePackages([1, 4])).toBeGreaterThan(4);
  });

  it('gives each closed-loop caller a package of its own', () => {
    expect(servicePackages([1, 4, 16, 256])).toBe(256);
  });
});

describe('consume-throughput open-loop rates', () => {
  it('turns a share of the peak into whole consumes per second, and judges the target on half of it only', () => {
    expect(resolveOpenRate({ shareOfPeak: 0.5 }, 1474.6)).toEqual({ perSecond: 737, label: 'half of peak', halfOfPeak: true });
    expect(resolveOpenRate({ shareOfPeak: 0.0625 }, 1474.6)).toEqual({ perSecond: 92, label: '6.3 % of peak', halfOfPeak: false });
    expect(resolveOpenRate({ perSecond: 737 }, 1474.6)).toEqual({ perSecond: 737, label: 'set by --open-rate', halfOfPeak: false });
  });

  it('sends at least one consume a second however low the peak', () => {
    expect(resolveOpenRate({ shareOfPeak: 0.01 }, 20).perSecond).toBe(1);
  });
});
