import type { Context } from '@opentelemetry/api';
import type { Kysely } from 'kysely';
import { consume } from '../domain/consume.js';
import { notFound, RuleViolation } from '../domain/errors.js';
import { encodeMovement } from '../proto/encoded.js';
import { lockEntitlements } from '../store/bulk.js';
import type { EntitlementRecord } from '../store/entitlements.js';
import type { LedgerDb } from '../store/schema.js';
import type { AnswersWrite } from '../store/idempotency.js';
import { saveMovements, type BatchMovement } from './movements.js';
import { consumeInput, entryRecord, factsOf, type Caller, type ConsumeRequest, type OperationContext, type Recorded } from './ledger.js';

/** A consume of a named entitlement without a visit, checked (checkConsume, a UUID), for {@link applyNamedConsumes}. */
export interface NamedConsume {
  caller: Caller;
  /** Its idempotency key, recorded on the entry. */
  requestId: string;
  /** Lower-case UUID. */
  entitlementId: string;
  request: ConsumeRequest;
  branchId: string;
  occurredTime: Date;
  /** The request's trace, carried by its entry's event. */
  trace?: Context | undefined;
}

/** The outcome of a consume that needs a transaction of its own: consumeSession's household pool check. */
export const ALONE: unique symbol = Symbol('consume alone');

/** Per consume: its movement and answer (see encodeMovement), the refusal consumeSession would throw, or ALONE. */
export type NamedConsumeOutcome = { recorded: Recorded; encoded: Uint8Array } | { refused: RuleViolation | typeof ALONE };

/**
 * `consumeSession` for many named entitlements of one tenant in the caller's transaction: the rows
 * locked together in id order, each consume decided by the same domain function on its own row, the
 * changes written with one update, one entry insert and one outbox insert. A refusal (not found, no
 * sessions left, expired …) is that consume's outcome and leaves the others alone; one by a member
 * other than the holder is ALONE, as only a transaction of its own checks the household pool. The
 * entitlements must differ (one consume per row: each entry must match its saved row).
 */
export async function applyNamedConsumes(
  tx: Kysely<LedgerDb>,
  ctx: OperationContext,
  tenantId: string,
  calls: readonly NamedConsume[],
  /** Stores the answers with the movements (see onceEach). */
  answersWrite?: AnswersWrite,
): Promise<NamedConsumeOutcome[]> {
  const now = ctx.clock();
  const { rows, tenantFeatures } = await lockEntitlements(
    tx,
    tenantId,
    calls.map((c) => c.entitlementId),
  );
  // A tenant the ledger has not heard of yet has no features.
  const tenant = factsOf(tenantId, tenantFeatures ?? []);
  const changed: BatchMovement[] = [];
  const outcomes = calls.map((call): NamedConsumeOutcome => {
    const e = rows.get(call.entitlementId);
    if (!e) return { refused: notFound('entitlement', call.entitlementId) };
    const memberId = call.request.memberId;
    if (memberId !== '' && memberId !== e.memberId) return { refused: ALONE };
    let recorded: Recorded;
    try {
      const t = consume(e, consumeInput(call.request, e.memberId, call.branchId, call.occurredTime), tenant);
      const entitlement: EntitlementRecord = { ...e, ...t.next };
      const movement = { entitlement, entry: entryRecord(ctx, call.caller, call.requestId, entitlement, t, now) };
      recorded = { ...movement, encoded: encodeMovement(movement) };
    } catch (err) {
      if (err instanceof RuleViolation) return { refused: err };
      throw err;
    }
    changed.push({ prev: e, recorded, trace: call.trace });
    return { recorded, encoded: recorded.encoded };
  });
  await saveMovements(
    tx,
    changed,
    now,
    answersWrite?.(outcomes.map((o) => ('encoded' in o ? o.encoded : undefined))),
  );
  return outcomes;
}
