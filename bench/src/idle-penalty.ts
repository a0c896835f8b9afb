/**
 * What waking up costs on this machine: the CPU time of one small piece of work (9 to 47 µs warm
 * on the VMs seen so far) run back to back, and run after the process has slept. On the shared VMs
 * the bench runs on, work after 20 ms asleep took three to seven times as long (cold caches, a core
 * brought back from idle). A service at half of its peak sleeps between requests and pays that on
 * every wake-up; at its peak it never sleeps. So the factor tells how much dearer every consume at a
 * low rate is on a machine, whatever the code, and lets figures from different VMs be set side by side.
 */

import { percentile, round } from './stats.js';

export interface IdlePenalty {
  /** CPU µs of the work, median, run back to back. */
  busyMicros: number;
  /** CPU µs of the same work, median, each run after `sleepMs` asleep. */
  afterSleepMicros: number;
  sleepMs: number;
  /** afterSleepMicros / busyMicros. */
  factor: number;
}

const SAMPLE = { items: Array.from({ length: 20 }, (_, i) => ({ id: i, name: `item ${i}`, values: [i, i * 2, i * 3] })) };

/** A fixed piece of work of the kind a request does: build, encode and decode a small document. */
function work(): number {
  return (JSON.parse(JSON.stringify(SAMPLE)) as typeof SAMPLE).items.length;
}

function cpuMicrosOf(fn: () => unknown): number {
  const start = process.cpuUsage();
  fn();
  const used = process.cpuUsage(start);
  return used.user + used.system;
}

const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 0.5);

export async function idlePenalty(runs = 150, sleepMs = 20): Promise<IdlePenalty> {
  for (let i = 0; i < 500; i++) work();
  const busy = Array.from({ length: runs }, () => cpuMicrosOf(work));
  const afterSleep: number[] = [];
  for (let i = 0; i < runs; i++) {
    await new Promise((resolve) => setTimeout(resolve, sleepMs));
    afterSleep.push(cpuMicrosOf(work));
  }
  const busyMicros = median(busy);
  const afterSleepMicros = median(afterSleep);
  return { busyMicros, afterSleepMicros, sleepMs, factor: round(afterSleepMicros / Math.max(1, busyMicros)) };
}
