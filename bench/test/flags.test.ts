import { describe, expect, it } from 'vitest';
import { parseFlags, type Flags } from '../src/flags.js';

const parsed = (...argv: string[]) => parseFlags(argv) as Flags;

describe('bench flags', () => {
  it('run the open loop once at half of the peak unless --open-rate lists rates', () => {
    expect(parsed('consume-throughput').openRates).toEqual([{ shareOfPeak: 0.5 }]);
    expect(parsed('consume-throughput', '--open-rate', '300').openRates).toEqual([{ perSecond: 300 }]);
  });

  it('take shares of the peak and rates together, in the order given', () => {
    expect(parsed('--open-rate', '6.25%, 25%,50%,120,150%').openRates).toEqual([
      { shareOfPeak: 0.0625 },
      { shareOfPeak: 0.25 },
      { shareOfPeak: 0.5 },
      { perSecond: 120 },
      { shareOfPeak: 1.5 },
    ]);
  });

  it('refuse a rate below 1/s, a share of 0 % and anything else, naming the flag and the value', () => {
    for (const bad of ['0', '0.5', '0%', '-5%', 'fast', '25 %', '', '300,']) {
      expect(() => parsed(`--open-rate=${bad}`), bad).toThrow(/^--open-rate takes .* got "/);
    }
    expect(() => parsed('--open-rate', '50%,x')).toThrow('got "x"');
  });
});
