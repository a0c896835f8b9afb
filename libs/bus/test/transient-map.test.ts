import { promotedBy } from '@punchcard/testing';
import { describe, expect, it } from 'vitest';
import { TransientMap } from '../src/transient-map.js';

describe('TransientMap', () => {
  it('keeps its entries and their insertion order across renewals', () => {
    const m = new TransientMap<number, string>(4);
    for (let i = 0; i < 10; i++) m.set(i, `v${i}`);
    for (const i of [0, 2, 4, 6, 8]) expect(m.delete(i)).toBe(true);
    expect(m.delete(8)).toBe(false);
    m.set(10, 'v10');
    expect(m.size).toBe(6);
    expect([...m]).toEqual([1, 3, 5, 7, 9, 10].map((i) => [i, `v${i}`]));
    expect([...m.values()]).toEqual(['v1', 'v3', 'v5', 'v7', 'v9', 'v10']);
    expect(m.get(3)).toBe('v3');
    expect(m.get(4)).toBeUndefined();
    m.clear();
    expect(m.size).toBe(0);
    expect(() => new TransientMap(0)).toThrow(/renewEvery/);
  });

  it('lets what passed through die young, where a long-lived Map promoted it', () => {
    const promotedThrough = (m: { set(k: number, v: number[]): unknown; delete(k: number): boolean }) => {
      // 16 entries in flight long enough for the map's storage to reach the old generation; then
      // 2,000 more pass through, 16 in flight throughout.
      for (let i = 0; i < 16; i++) m.set(i, [i]);
      promotedBy(() => undefined);
      return promotedBy(() => {
        for (let i = 16; i < 2016; i++) {
          m.set(i, new Array<number>(200).fill(i));
          m.delete(i - 16);
        }
      });
    };
    expect(promotedThrough(new Map())).toBeGreaterThan(2_000_000);
    expect(promotedThrough(new TransientMap(64))).toBeLessThan(1_000_000);
  });
});
