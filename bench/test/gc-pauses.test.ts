import { constants } from 'node:perf_hooks';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { addPause, gcPausesBetween, gcTableRow, gcTotalsFromMetrics, watchOwnGc, type GcTotals } from '../src/gc-pauses.js';

const exposition = (minor: [number, number], major: [number, number]) =>
  [
    '# HELP nodejs_gc_duration_seconds Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    '# TYPE nodejs_gc_duration_seconds histogram',
    `nodejs_gc_duration_seconds_bucket{le="0.001",kind="minor",service="entitlement-ledger"} 3`,
    `nodejs_gc_duration_seconds_bucket{le="+Inf",kind="minor",service="entitlement-ledger"} ${minor[0]}`,
    `nodejs_gc_duration_seconds_sum{kind="minor",service="entitlement-ledger"} ${minor[1]}`,
    `nodejs_gc_duration_seconds_count{kind="minor",service="entitlement-ledger"} ${minor[0]}`,
    `nodejs_gc_duration_seconds_sum{kind="major",service="entitlement-ledger"} ${major[1]}`,
    `nodejs_gc_duration_seconds_count{kind="major",service="entitlement-ledger"} ${major[0]}`,
    `grpc_server_handling_seconds_sum{grpc_method="Consume",grpc_code="OK"} 1.5`,
  ].join('\n');

/** Allocates short-lived objects, enough for a few scavenges. */
function churn(): void {
  let keep: unknown[] = [];
  for (let i = 0; i < 2_000_000; i++) {
    keep.push({ i, s: `x${i}` });
    if (keep.length > 1000) keep = [];
  }
}

describe('garbage-collection pauses', () => {
  it("reads a service's pauses by kind from its metrics, count and sum apart from the buckets", () => {
    const totals = gcTotalsFromMetrics(exposition([40, 0.2], [2, 0.03]));
    expect(Object.fromEntries(totals)).toEqual({ minor: { count: 40, ms: 200 }, major: { count: 2, ms: 30 } });
    expect(gcTotalsFromMetrics('# nothing here\n').size).toBe(0);
  });

  it('counts only the pauses between two readings, and the share of the time paused', () => {
    const before = gcTotalsFromMetrics(exposition([40, 0.2], [2, 0.03]));
    const after = gcTotalsFromMetrics(exposition([140, 0.7], [2, 0.03]));
    const gc = gcPausesBetween(before, after, 10);
    expect(gc.byKind).toEqual({ minor: { count: 100, ms: 500 } });
    expect(gc.count).toBe(100);
    expect(gc.ms).toBe(500);
    expect(gc.pausedShare).toBe(0.05);
    expect(gcTableRow('ledger', gc)).toEqual(['ledger', 100, 500, 0, 0, 0, 0, '5 %', '-']);
  });

  it('adds every pause of a batch under its kind', () => {
    const totals: GcTotals = new Map();
    addPause(totals, { duration: 4, detail: { kind: constants.NODE_PERFORMANCE_GC_MINOR } });
    addPause(totals, { duration: 6, detail: { kind: constants.NODE_PERFORMANCE_GC_MINOR } });
    addPause(totals, { duration: 20, detail: { kind: constants.NODE_PERFORMANCE_GC_MAJOR } });
    addPause(totals, { duration: 1, detail: { kind: constants.NODE_PERFORMANCE_GC_INCREMENTAL } });
    const gc = gcPausesBetween(new Map(), totals, 1);
    expect(gc.byKind).toEqual({ minor: { count: 2, ms: 10 }, major: { count: 1, ms: 20 }, incremental: { count: 1, ms: 1 } });
    expect(gcTableRow('client', { ...gc, maxMs: 20 })).toEqual(['client', 2, 10, 1, 20, 1, 1, '3.1 %', 20]);
  });

  it("times this process's own scavenges", async () => {
    const stop = watchOwnGc();
    churn();
    const gc = await stop();
    expect(gc.byKind.minor?.count).toBeGreaterThan(0);
    expect(gc.maxMs).toBeGreaterThan(0);
    expect(gc.pausedShare).toBeGreaterThan(0);
  });

  it("reads the pauses prom-client's default metrics export, as every service's ops port does", async () => {
    const registry = new Registry();
    registry.setDefaultLabels({ service: 'gc-pauses-test' });
    collectDefaultMetrics({ register: registry });
    const before = gcTotalsFromMetrics(await registry.metrics());
    churn();
    // prom-client records pauses from an observer, which is called after the collection.
    await new Promise((r) => setTimeout(r, 50));
    const gc = gcPausesBetween(before, gcTotalsFromMetrics(await registry.metrics()), 1);
    expect(gc.byKind.minor?.count).toBeGreaterThan(0);
    expect(gc.ms).toBeGreaterThan(0);
  });
});
