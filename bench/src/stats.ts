/** Latency summary in milliseconds. */
export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array; `q` in [0, 1]. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function summarise(samples: readonly number[]): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  const asArray = Array.from(sorted);
  const sum = asArray.reduce((a, b) => a + b, 0);
  return {
    count: asArray.length,
    mean: round(asArray.length ? sum / asArray.length : Number.NaN),
    p50: round(percentile(asArray, 0.5)),
    p95: round(percentile(asArray, 0.95)),
    p99: round(percentile(asArray, 0.99)),
    max: round(asArray.at(-1) ?? Number.NaN),
  };
}

/** Two decimals: figures are read by people, and microsecond noise is not signal here. */
export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
