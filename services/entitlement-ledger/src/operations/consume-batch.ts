import type { Kysely } from 'kysely';
import { consume } from '../domain/consume.js';
import type { LedgerDb } from '../store/schema.js';
import { consumeInput, type ConsumeRequest, type OperationContext } from './ledger.js';
import { applyToEntitlements, type BatchCall, type BatchOutcome, type KeyedBatch } from './movements.js';

/** A consume of a named entitlement without a visit, checked (checkConsume, a UUID), for {@link applyNamedConsumes}. */
export interface NamedConsume extends BatchCall {
  request: ConsumeRequest;
  branchId: string;
  occurredTime: Date;
}

/** The outcome of a consume that needs a transaction of its own: consumeSession's household pool check. */
export const ALONE: unique symbol = Symbol('consume alone');

/**
 * `consumeSession` for many named entitlements of one tenant in the caller's transaction (see
 * applyToEntitlements): each consume decided by the same domain function on its own row; a refusal
 * (not found, no sessions left, expired …) is that consume's outcome, and one by a member other than
 * the holder is ALONE, as only a transaction of its own checks the household pool. The entitlements
 * must differ (one consume per row: each entry must match its saved row).
 */
export function applyNamedConsumes(
  tx: Kysely<LedgerDb>,
  ctx: OperationContext,
  tenantId: string,
  calls: readonly NamedConsume[],
  /** Under idempotency keys: only the calls they leave to run are decided (see applyToEntitlements). */
  keyed?: KeyedBatch,
): Promise<BatchOutcome<typeof ALONE>[]> {
  return applyToEntitlements(
    tx,
    ctx,
    tenantId,
    calls,
    (call, e, tenant) => {
      const memberId = call.request.memberId;
      if (memberId !== '' && memberId !== e.memberId) return { refused: ALONE };
      return consume(e, consumeInput(call.request, e.memberId, call.branchId, call.occurredTime), tenant);
    },
    keyed,
  );
}
