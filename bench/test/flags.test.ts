import { describe, expect, it } from 'vitest';
import { parseFlags, type Flags } from '../src/flags.js';

const parsed = (...argv: string[]) => parseFlags(argv) as Flags;

describe('bench flags', () => {
  it('run the open-loop step at half of the peak unless --open-rate names a rate', () => {
    expect(parsed('consume-throughput').openRate).toBeUndefined();
    expect(parsed('consume-throughput', '--open-rate', '300').openRate).toBe(300);
  });

  it('refuse a rate that is not a positive number, naming the flag', () => {
    expect(() => parsed('--open-rate', '0')).toThrow('--open-rate must be a number ≥ 1, got "0"');
    expect(() => parsed('--open-rate', 'fast')).toThrow('--open-rate');
  });
});
