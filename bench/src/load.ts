import { performance } from 'node:perf_hooks';
import type { Progress } from './progress.js';
import { round, summarise, type LatencySummary } from './stats.js';

/** What one operation reports: ok, or the name of the failure (e.g. a gRPC code) to count. */
export type Outcome = 'ok' | string;

export interface LoadResult {
  /** Successful operations per second over the measured window. */
  throughput: number;
  ok: number;
  failures: Record<string, number>;
  /** The measured window: from the end of the warm-up until the last answer, at least the duration. */
  seconds: number;
  /** Latency of successful operations, ms. */
  latency: LatencySummary;
}

export interface ClosedLoopOptions {
  concurrency: number;
  durationMs: number;
  /** Run but not measured: pools, JIT, plan caches and the HTTP/2 connection warm up. */
  warmupMs: number;
  progress?: Progress;
  label?: string;
  /** Called when the warm-up ends and measuring starts (e.g. to start a CPU meter). */
  onMeasureStart?: () => void;
  /** One operation by `worker` (0-based); it never throws, it reports. */
  op(worker: number): Promise<Outcome>;
}

/** `concurrency` workers, each issuing its next operation as soon as the previous one returns. */
export async function closedLoop(o: ClosedLoopOptions): Promise<LoadResult> {
  const start = performance.now();
  const measureFrom = start + o.warmupMs;
  const end = measureFrom + o.durationMs;
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  let ok = 0;
  o.progress?.track(() => {
    const now = performance.now();
    const phase = now < measureFrom ? 'warm-up' : `${((now - measureFrom) / 1000).toFixed(0)}/${(o.durationMs / 1000).toFixed(0)} s`;
    const rate = now > measureFrom ? Math.round(ok / ((now - measureFrom) / 1000)) : 0;
    return `${o.label ?? ''} ${phase}, ${rate}/s`;
  });
  const warm = o.onMeasureStart ? setTimeout(o.onMeasureStart, o.warmupMs) : undefined;
  const worker = async (id: number) => {
    for (;;) {
      const t0 = performance.now();
      if (t0 >= end) return;
      const outcome = await o.op(id);
      const t1 = performance.now();
      if (t0 < measureFrom) continue;
      if (outcome === 'ok') {
        ok++;
        latencies.push(t1 - t0);
      } else {
        failures[outcome] = (failures[outcome] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, i) => worker(i)));
  clearTimeout(warm);
  o.progress?.stop();
  // Operations started before `end` may finish after it; count the real window they ran in.
  const seconds = (Math.max(performance.now(), end) - measureFrom) / 1000;
  return { throughput: round(ok / seconds, 1), ok, failures, seconds: round(seconds), latency: summarise(latencies) };
}

export interface OpenLoopOptions {
  /** Operations started per second, on a fixed schedule whatever the latency. */
  rate: number;
  durationMs: number;
  warmupMs: number;
  /** Safety valve: beyond this many in flight the schedule is missed (counted as `skipped`). */
  maxInFlight?: number;
  progress?: Progress;
  label?: string;
  /** Called when the warm-up ends and measuring starts (e.g. to start a CPU meter). */
  onMeasureStart?: () => void;
  /** Operation `seq`; `measured` is false during the warm-up. */
  op(seq: number, measured: boolean): Promise<Outcome>;
}

export interface OpenLoopResult extends LoadResult {
  /** Scheduled operations not started because `maxInFlight` were outstanding. */
  skipped: number;
}

/**
 * Starts operations at a steady rate (open loop). Latency runs from each operation's scheduled
 * start, so a stall shows up in the percentiles instead of silently slowing the load down
 * (no coordinated omission).
 */
export async function openLoop(o: OpenLoopOptions): Promise<OpenLoopResult> {
  const interval = 1000 / o.rate;
  const maxInFlight = o.maxInFlight ?? 2000;
  const start = performance.now();
  const measureFrom = start + o.warmupMs;
  const end = measureFrom + o.durationMs;
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  const pending = new Set<Promise<void>>();
  let ok = 0;
  let skipped = 0;
  let seq = 0;
  o.progress?.track(() => {
    const now = performance.now();
    const phase = now < measureFrom ? 'warm-up' : `${((now - measureFrom) / 1000).toFixed(0)}/${(o.durationMs / 1000).toFixed(0)} s`;
    return `${o.label ?? ''} ${phase}, target ${o.rate}/s, in flight ${pending.size}`;
  });
  const warm = o.onMeasureStart ? setTimeout(o.onMeasureStart, o.warmupMs) : undefined;
  for (;;) {
    const scheduled = start + seq * interval;
    if (scheduled >= end) break;
    const wait = scheduled - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const measured = scheduled >= measureFrom;
    const n = seq++;
    if (pending.size >= maxInFlight) {
      if (measured) skipped++;
      continue;
    }
    const p = o.op(n, measured).then((outcome) => {
      if (!measured) return;
      if (outcome === 'ok') {
        ok++;
        latencies.push(performance.now() - scheduled);
      } else {
        failures[outcome] = (failures[outcome] ?? 0) + 1;
      }
    });
    pending.add(p);
    void p.finally(() => pending.delete(p));
  }
  await Promise.all(pending);
  clearTimeout(warm);
  o.progress?.stop();
  // Until the last answer: a service that falls behind the schedule finishes late, and its rate is
  // what it completed in that time, not the rate it was offered.
  const seconds = (Math.max(performance.now(), end) - measureFrom) / 1000;
  return { throughput: round(ok / seconds, 1), ok, failures, seconds: round(seconds), latency: summarise(latencies), skipped };
}
