/**
 * How long the ledger itself took to handle an RPC, from the histogram it exports on its ops port
 * (`grpc_server_handling_seconds`): from the request's arrival in its handler to the answer, without
 * the client's, the network's or HTTP/2's share. Set beside the latency the client saw, it tells
 * whether a slow tail was spent in the service or on the way to it.
 */

const METRIC = 'grpc_server_handling_seconds_bucket';

/** Cumulative count of successful calls of `method` by bucket bound (seconds; `Infinity` for +Inf). */
export function handledWithin(metricsText: string, method: string): Map<number, number> {
  const counts = new Map<number, number>();
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(`${METRIC}{`)) continue;
    const close = line.lastIndexOf('}');
    const labels = Object.fromEntries([...line.slice(METRIC.length + 1, close).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (labels.grpc_method !== method || labels.grpc_code !== 'OK' || labels.le === undefined) continue;
    const bound = labels.le === '+Inf' ? Infinity : Number(labels.le);
    counts.set(bound, (counts.get(bound) ?? 0) + Number(line.slice(close + 1).trim()));
  }
  return counts;
}

export interface HandlingShare {
  /** The bucket's bound, ms. */
  withinMs: number;
  /** Share of the calls between the two readings handled within it, 0–1. */
  share: number;
}

/** Shares of the calls made between two readings, per bucket bound in ascending order, +Inf left out. */
export function handlingShares(before: Map<number, number>, after: Map<number, number>): HandlingShare[] {
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  if (total <= 0) return [];
  return [...after.keys()]
    .filter((bound) => Number.isFinite(bound))
    .sort((a, b) => a - b)
    .map((bound) => ({ withinMs: Math.round(bound * 1000 * 1000) / 1000, share: ((after.get(bound) ?? 0) - (before.get(bound) ?? 0)) / total }));
}

/** The bucket that holds quantile `q`: handled in more than `aboveMs` and at most `withinMs` (Infinity past the last bound). */
export function quantileBucket(shares: readonly HandlingShare[], q: number): { aboveMs: number; withinMs: number } {
  let aboveMs = 0;
  for (const s of shares) {
    if (s.share >= q) return { aboveMs, withinMs: s.withinMs };
    aboveMs = s.withinMs;
  }
  return { aboveMs, withinMs: Infinity };
}
