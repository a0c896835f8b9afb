import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { round } from './stats.js';

/**
 * Garbage-collection pauses over a measured run: a service's, from the `nodejs_gc_duration_seconds`
 * histogram its ops port exports (prom-client's default metrics), and the bench process's own. A
 * pause stops every request in flight in that process, so beside a latency tail these tell how much
 * of the run each process stood still, and for how long at most (the client's; the service's
 * histogram keeps no single pause).
 */

/** Pauses of one kind (`minor`: scavenges; `major`: full collections; `incremental`, `weakcb`). */
export interface KindPauses {
  count: number;
  ms: number;
}

export type GcTotals = Map<string, KindPauses>;

/** A sum or count line of prom-client's `nodejs_gc_duration_seconds`, with its kind and value. */
const SUM_OR_COUNT = /^nodejs_gc_duration_seconds_(sum|count)\{[^}]*kind="([^"]+)"[^}]*\}\s+(\S+)$/;

/** Pauses so far by kind, from a Prometheus text exposition; none when the metric is absent. */
export function gcTotalsFromMetrics(metricsText: string): GcTotals {
  const totals: GcTotals = new Map();
  for (const line of metricsText.split('\n')) {
    const m = SUM_OR_COUNT.exec(line);
    if (!m) continue;
    const [, part, kind, value] = m as unknown as [string, 'sum' | 'count', string, string];
    const t = totals.get(kind) ?? { count: 0, ms: 0 };
    if (part === 'count') t.count += Number(value);
    else t.ms += Number(value) * 1000;
    totals.set(kind, t);
  }
  return totals;
}

export interface GcPauses {
  /** By kind, between the two readings. */
  byKind: Record<string, KindPauses>;
  /** All kinds together. */
  count: number;
  ms: number;
  /** The share of the run's wall time spent paused, 0–1. */
  pausedShare: number;
  /** The longest single pause, where known (the bench's own). */
  maxMs?: number;
}

/** The pauses between two readings of a process over `seconds` of wall time. */
export function gcPausesBetween(before: GcTotals, after: GcTotals, seconds: number): GcPauses {
  const byKind: Record<string, KindPauses> = {};
  let count = 0;
  let ms = 0;
  for (const [kind, a] of after) {
    const b = before.get(kind) ?? { count: 0, ms: 0 };
    const k = { count: a.count - b.count, ms: round(a.ms - b.ms) };
    if (k.count <= 0) continue;
    byKind[kind] = k;
    count += k.count;
    ms += a.ms - b.ms;
  }
  return { byKind, count, ms: round(ms), pausedShare: seconds > 0 ? round(ms / (seconds * 1000), 4) : 0 };
}

const KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

/** Adds one pause to running totals (every entry of a batch: several can arrive together). */
export function addPause(totals: GcTotals, entry: { duration: number; detail?: unknown }): void {
  const kind = KINDS[(entry.detail as { kind?: number } | undefined)?.kind ?? -1] ?? 'other';
  const t = totals.get(kind) ?? { count: 0, ms: 0 };
  t.count++;
  t.ms += entry.duration;
  totals.set(kind, t);
}

/**
 * Starts timing this process's own pauses; the returned function stops and gives them over the time
 * since. Node reports a pause to observers a little after it (from the event loop), so stopping waits
 * a moment for the last ones.
 */
export function watchOwnGc(): () => Promise<GcPauses> {
  const totals: GcTotals = new Map();
  let maxMs = 0;
  const started = performance.now();
  const record = (entries: readonly PerformanceEntry[]) => {
    for (const entry of entries) {
      addPause(totals, entry);
      maxMs = Math.max(maxMs, entry.duration);
    }
  };
  const observer = new PerformanceObserver((list) => record(list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  return async () => {
    await new Promise((resolve) => setTimeout(resolve, 20));
    record(observer.takeRecords());
    observer.disconnect();
    return { ...gcPausesBetween(new Map(), totals, (performance.now() - started) / 1000), maxMs: round(maxMs) };
  };
}

/** A row of the pauses table: scavenges, full collections, the rest (incremental steps, weak callbacks), the share paused, the longest. */
export function gcTableRow(process: string, gc: GcPauses): (string | number)[] {
  const minor = gc.byKind.minor ?? { count: 0, ms: 0 };
  const major = gc.byKind.major ?? { count: 0, ms: 0 };
  const other = { count: gc.count - minor.count - major.count, ms: round(gc.ms - minor.ms - major.ms) };
  return [process, minor.count, minor.ms, major.count, major.ms, other.count, other.ms, `${round(gc.pausedShare * 100, 1)} %`, gc.maxMs ?? '-'];
}
