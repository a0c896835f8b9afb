export type OrderDecision = 'apply' | 'duplicate' | 'gap';

/**
 * Per-entitlement ordering: version n is applied only right after n - 1. An older or equal version
 * was applied already (a redelivery or a republish under another event id); a newer one waits.
 * `applied` is 0 before the first event of an entitlement.
 */
export function orderDecision(applied: number, incoming: number): OrderDecision {
  if (incoming <= applied) return 'duplicate';
  return incoming === applied + 1 ? 'apply' : 'gap';
}
