import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GroupCommit } from './group-commit.js';

interface Item {
  id: number;
  group: string;
  keys: string[];
}

/** A GroupCommit whose batches finish when the test says so; it records every batch it ran. */
function harness(concurrency: number, maxBatch: number, stalledAfterMs = 0) {
  const batches: Item[][] = [];
  const finish: (() => void)[] = [];
  let running = 0;
  let mostRunning = 0;
  const group = new GroupCommit<Item, string>({
    concurrency,
    maxBatch,
    stalledAfterMs,
    now: () => Date.now(),
    groupOf: (i) => i.group,
    conflictsOf: (i) => i.keys,
    run: async (batch) => {
      batches.push([...batch]);
      running++;
      mostRunning = Math.max(mostRunning, running);
      await new Promise<void>((resolve) => finish.push(resolve));
      running--;
      return batch.map((i) => (i.id % 7 === 3 ? { status: 'rejected', reason: new Error(`refused ${i.id}`) } : { status: 'fulfilled', value: `done ${i.id}` }));
    },
  });
  return {
    group,
    batches,
    /** Ends the oldest running batch and lets its successors start. */
    async finishOne() {
      finish.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    },
    /** The same under fake timers: lets the promise callbacks run, not the timers. */
    async finishOneNow() {
      finish.shift()?.();
      for (let tick = 0; tick < 20; tick++) await Promise.resolve();
    },
    get running() {
      return finish.length;
    },
    get mostRunning() {
      return mostRunning;
    },
  };
}

const item = (id: number, group = 'tenant-a', keys: string[] = [`row-${id}`]): Item => ({ id, group, keys });

describe('GroupCommit', () => {
  it('runs a request alone at once when nothing runs, and groups what arrives meanwhile', async () => {
    const h = harness(1, 10);
    const first = h.group.submit(item(1));
    expect(h.batches.map((b) => b.map((i) => i.id))).toEqual([[1]]);
    const rest = [2, 4, 5].map((id) => h.group.submit(item(id)));
    expect(h.group.queued).toBe(3);
    await h.finishOne();
    expect(await first).toBe('done 1');
    expect(h.batches.map((b) => b.map((i) => i.id))).toEqual([[1], [2, 4, 5]]);
    await h.finishOne();
    expect(await Promise.all(rest)).toEqual(['done 2', 'done 4', 'done 5']);
  });

  it('keeps conflicting items and other groups for later batches, in arrival order, and caps the batch size', async () => {
    const h = harness(1, 3);
    void h.group.submit(item(0));
    const later = [
      item(1, 'tenant-a', ['row-x', 'key-1']),
      item(2, 'tenant-b'),
      item(4, 'tenant-a', ['row-x', 'key-2']),
      item(5, 'tenant-a', ['row-y', 'key-1']),
      item(6, 'tenant-a'),
      item(8, 'tenant-a'),
      item(9, 'tenant-a'),
    ].map((i) => h.group.submit(i).catch(() => 'refused'));
    for (let n = 0; n < 6 && (h.running > 0 || h.group.queued > 0); n++) await h.finishOne();
    expect(h.batches.map((b) => b.map((i) => i.id))).toEqual([[0], [1, 6, 8], [2], [4, 5, 9]]);
    expect(await Promise.all(later)).toEqual(['done 1', 'done 2', 'done 4', 'done 5', 'done 6', 'done 8', 'done 9']);
  });

  describe('beside a running batch', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('starts another only once the running ones have stalled, so what arrives before gathers into one', async () => {
      vi.useFakeTimers();
      const h = harness(2, 10, 20);
      const first = h.group.submit(item(1));
      const gathered = [2, 4, 5].map((id) => h.group.submit(item(id)));
      expect(h.batches.map((b) => b.map((i) => i.id))).toEqual([[1]]);

      vi.advanceTimersByTime(19);
      expect(h.running).toBe(1);
      vi.advanceTimersByTime(1);
      // Batch 1 has run 20 ms: stalled, so the second starts beside it with all that waited.
      expect(h.batches.map((b) => b.map((i) => i.id))).toEqual([[1], [2, 4, 5]]);

      // Both run; a third may not start, whatever the wait: two is the limit.
      const third = h.group.submit(item(6));
      vi.advanceTimersByTime(100);
      expect(h.running).toBe(2);
      await h.finishOneNow();
      expect(await first).toBe('done 1');
      // A batch ended: the next starts at once, since the one still running has stalled.
      expect(h.batches.map((b) => b.map((i) => i.id))).toEqual([[1], [2, 4, 5], [6]]);
      await h.finishOneNow();
      await h.finishOneNow();
      expect(await Promise.all([...gathered, third])).toEqual(['done 2', 'done 4', 'done 5', 'done 6']);
    });

    it('waits for the youngest running batch to stall before opening one more', async () => {
      vi.useFakeTimers();
      const h = harness(3, 10, 20);
      void h.group.submit(item(1));
      vi.advanceTimersByTime(25);
      void h.group.submit(item(2));
      // Batch 1 has stalled: batch 2 starts at once.
      expect(h.running).toBe(2);
      void h.group.submit(item(4));
      vi.advanceTimersByTime(19);
      // Batch 2 has run 19 ms only.
      expect(h.running).toBe(2);
      vi.advanceTimersByTime(1);
      expect(h.batches.map((b) => b.map((i) => i.id))).toEqual([[1], [2], [4]]);
    });

    it('with no stall time, starts beside running ones at once', () => {
      const h = harness(2, 10, 0);
      void h.group.submit(item(1));
      void h.group.submit(item(2));
      expect(h.running).toBe(2);
    });
  });

  it('settles each item as its batch says; a batch that throws fails each of its items', async () => {
    const group = new GroupCommit<Item, string>({
      concurrency: 1,
      maxBatch: 10,
      groupOf: (i) => i.group,
      conflictsOf: (i) => i.keys,
      run: async (batch) => {
        if (batch.some((i) => i.id === 13)) throw new Error('the transaction failed');
        return batch.map((i) => ({ status: 'fulfilled' as const, value: `done ${i.id}` }));
      },
    });
    const settled = await Promise.allSettled([group.submit(item(1)), group.submit(item(13)), group.submit(item(2))]);
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message))).toEqual(['done 1', 'the transaction failed', 'the transaction failed']);
    const short = new GroupCommit<Item, string>({ concurrency: 1, maxBatch: 10, groupOf: (i) => i.group, conflictsOf: (i) => i.keys, run: async () => [] });
    await expect(short.submit(item(1))).rejects.toThrow('a batch of 1 answered 0 results');
  });

  it('whatever arrives and whenever batches end: each item settles once, batches never exceed the limits, mix groups or share a key', async () => {
    const arrival = fc.record({ group: fc.constantFrom('a', 'b', 'c'), keys: fc.uniqueArray(fc.constantFrom('k1', 'k2', 'k3', 'k4', 'k5', 'k6'), { minLength: 1, maxLength: 3 }) });
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 5 }),
        fc.constantFrom(0, 2),
        fc.array(fc.oneof(arrival, fc.constant('finish' as const)), { maxLength: 60 }),
        async (concurrency, maxBatch, stalledAfterMs, steps) => {
          const h = harness(concurrency, maxBatch, stalledAfterMs);
          const outcomes = new Map<number, string>();
          const settled: Promise<unknown>[] = [];
          let id = 0;
          for (const step of steps) {
            if (step === 'finish') {
              await h.finishOne();
              continue;
            }
            const n = id++;
            settled.push(
              h.group.submit({ id: n, ...step }).then(
                (v) => outcomes.set(n, v),
                (e: Error) => outcomes.set(n, e.message),
              ),
            );
          }
          while (h.running > 0) await h.finishOne();
          await Promise.all(settled);
          expect(h.group.queued).toBe(0);
          expect(h.mostRunning).toBeLessThanOrEqual(concurrency);
          const ran = h.batches.flat().map((i) => i.id);
          expect(ran.sort((x, y) => x - y)).toEqual(Array.from({ length: id }, (_, n) => n));
          for (const [n, v] of outcomes) expect(v).toBe(n % 7 === 3 ? `refused ${n}` : `done ${n}`);
          for (const batch of h.batches) {
            expect(batch.length).toBeLessThanOrEqual(maxBatch);
            expect(new Set(batch.map((i) => i.group)).size).toBe(1);
            const keys = batch.flatMap((i) => i.keys);
            expect(new Set(keys).size).toBe(keys.length);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
