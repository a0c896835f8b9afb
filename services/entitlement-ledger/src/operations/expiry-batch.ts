import type { Kysely } from 'kysely';
import { notFound, RuleViolation } from '../domain/errors.js';
import { enterGrace, expire, type MaybeTransition } from '../domain/lifecycle.js';
import { encodeMovement } from '../proto/encoded.js';
import { lockEntitlements } from '../store/bulk.js';
import type { EntitlementRecord } from '../store/entitlements.js';
import type { LedgerDb } from '../store/schema.js';
import type { AnswersWrite } from '../store/idempotency.js';
import { saveMovements, type BatchMovement } from './movements.js';
import { entryRecord, type Caller, type MaybeRecorded, type OperationContext, type Recorded } from './ledger.js';

/** One scheduler call of a batch, validated: what `Expire` or `EnterGrace` would be asked. */
export type ExpiryCall =
  | { action: 'expire'; entitlementId: string; dueTime: Date; reason: string; requestId: string }
  | { action: 'enterGrace'; entitlementId: string; expiryTime: Date; graceEndTime?: Date; requestId: string };

/**
 * Per call: what the single operation would have returned, with that answer encoded (see
 * encodeMovement: also the payload of its event), or the refusal it would have thrown.
 */
export type ExpiryOutcome = { ok: MaybeRecorded; encoded: Uint8Array } | { refused: RuleViolation };

/**
 * `expireEntitlement` / `enterGracePeriod` for many entitlements of one tenant in the caller's
 * transaction: the rows are locked together (in id order), each call is decided by the same domain
 * function on its own row, and the changes are written with one update, one entry insert and one
 * outbox insert. A refusal (not found, HARD expiry has no grace, not passed yet ...) is that call's
 * outcome and leaves the others alone. The entitlements must differ (one call per row).
 */
export async function applyExpiryCalls(
  tx: Kysely<LedgerDb>,
  ctx: OperationContext,
  caller: Caller,
  calls: readonly ExpiryCall[],
  /** Stores the answers with the movements (see onceEach). */
  answersWrite?: AnswersWrite,
): Promise<ExpiryOutcome[]> {
  const now = ctx.clock();
  const { rows } = await lockEntitlements(
    tx,
    caller.tenantId,
    calls.map((c) => c.entitlementId),
  );
  const changed: BatchMovement[] = [];
  const outcomes = calls.map((call): ExpiryOutcome => {
    const e = rows.get(call.entitlementId);
    if (!e) return { refused: notFound('entitlement', call.entitlementId) };
    let t: MaybeTransition;
    try {
      t = call.action === 'expire' ? expire(e, call.dueTime, call.reason, now) : enterGrace(e, call.expiryTime, call.graceEndTime, now);
    } catch (err) {
      if (err instanceof RuleViolation) return { refused: err };
      throw err;
    }
    if ('noop' in t) return { ok: { entitlement: e }, encoded: encodeMovement({ entitlement: e }) };
    const entitlement: EntitlementRecord = { ...e, ...t.next };
    const movement = { entitlement, entry: entryRecord(ctx, caller, call.requestId, entitlement, t, now) };
    const recorded: Recorded = { ...movement, encoded: encodeMovement(movement) };
    changed.push({ prev: e, recorded });
    return { ok: recorded, encoded: recorded.encoded };
  });
  await saveMovements(
    tx,
    changed,
    now,
    answersWrite?.(outcomes.map((o) => ('encoded' in o ? o.encoded : undefined))),
  );
  return outcomes;
}
