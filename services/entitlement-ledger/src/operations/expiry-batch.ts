import type { Kysely } from 'kysely';
import { enterGrace, expire } from '../domain/lifecycle.js';
import type { LedgerDb } from '../store/schema.js';
import type { Caller, OperationContext } from './ledger.js';
import { applyToEntitlements, type BatchOutcome, type KeyedBatch } from './movements.js';

/** One scheduler call of a batch, validated: what `Expire` or `EnterGrace` would be asked. */
export type ExpiryCall =
  | { action: 'expire'; entitlementId: string; dueTime: Date; reason: string; requestId: string }
  | { action: 'enterGrace'; entitlementId: string; expiryTime: Date; graceEndTime?: Date; requestId: string };

/**
 * `expireEntitlement` / `enterGracePeriod` for many entitlements of one tenant in the caller's
 * transaction (see applyToEntitlements): each call decided by the same domain function as its single
 * call; a refusal (not found, HARD expiry has no grace, not passed yet ...) is that call's outcome.
 * The entitlements must differ (one call per row).
 */
export function applyExpiryCalls(
  tx: Kysely<LedgerDb>,
  ctx: OperationContext,
  caller: Caller,
  calls: readonly ExpiryCall[],
  /** Under idempotency keys: only the calls they leave to run are decided (see applyToEntitlements). */
  keyed?: KeyedBatch,
): Promise<BatchOutcome[]> {
  return applyToEntitlements(
    tx,
    ctx,
    caller.tenantId,
    // Object.assign, not a leading spread (see entryRecord).
    calls.map((call) => Object.assign({}, call, { caller })),
    (call, e, _tenant, now) => (call.action === 'expire' ? expire(e, call.dueTime, call.reason, now) : enterGrace(e, call.expiryTime, call.graceEndTime, now)),
    keyed,
  );
}
