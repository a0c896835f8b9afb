import type { Context } from '@opentelemetry/api';
import type { OwnWrite } from '@punchcard/bus';
import type { Kysely } from 'kysely';
import { notFound, RuleViolation } from '../domain/errors.js';
import type { MaybeTransition } from '../domain/lifecycle.js';
import type { TenantFacts } from '../domain/types.js';
import { enqueueEntryEvents } from '../events/ledger-events.js';
import { encodeMovement } from '../proto/encoded.js';
import { entitlementsUpdate, entriesInsert, lockEntitlements } from '../store/bulk.js';
import type { EntitlementRecord } from '../store/entitlements.js';
import type { AnswersWrite, KeyLookup } from '../store/idempotency.js';
import type { LedgerDb } from '../store/schema.js';
import { entryRecord, factsOf, type Caller, type MaybeRecorded, type OperationContext, type Recorded } from './ledger.js';

/** One request of a batch operation: its entitlement, who asks, its idempotency key (the entry's request id), its trace. */
export interface BatchCall {
  entitlementId: string;
  caller: Caller;
  requestId: string;
  trace?: Context | undefined;
}

/**
 * Per call: what its single operation would have returned, with that answer encoded (see
 * encodeMovement: also the payload of its event), or the refusal it would have thrown (or the
 * decision's own, `R`).
 */
export type BatchOutcome<R = never> = { ok: MaybeRecorded; encoded: Uint8Array } | { refused: RuleViolation | R };

/** A decided movement of a batch operation: the row as locked, what it becomes, and the trace of the request that made it. */
interface BatchMovement {
  prev: EntitlementRecord;
  recorded: Recorded;
  trace?: Context | undefined;
}

/** A batch operation's requests under their idempotency keys (see onceEach). */
export interface KeyedBatch {
  keys: KeyLookup;
  /** Stores the answers with the movements. */
  answersWrite: AnswersWrite;
}

/**
 * A batch operation over distinct entitlements of one tenant, in the caller's transaction: the rows
 * are locked together (in id order), each call is decided on its own row by `decide` (the domain
 * function its single operation uses; a RuleViolation it throws is that call's refusal, and so is an
 * id that is not the tenant's), and the changes are written in one statement (saveMovements) with
 * the answers. A refusal leaves the other calls alone. Under idempotency keys (`keyed`), the keys'
 * stored answers are read with the lock, and only the calls to run are decided: the outcomes are
 * theirs, in the order `keyed.keys` settled them. The rows of the others are locked all the same.
 */
export async function applyToEntitlements<C extends BatchCall, R = never>(
  tx: Kysely<LedgerDb>,
  ctx: OperationContext,
  tenantId: string,
  calls: readonly C[],
  decide: (call: C, e: EntitlementRecord, tenant: TenantFacts, now: Date) => MaybeTransition | { refused: R },
  keyed?: KeyedBatch,
): Promise<BatchOutcome<R>[]> {
  const now = ctx.clock();
  const { rows, tenantFeatures, storedKeys } = await lockEntitlements(
    tx,
    tenantId,
    calls.map((c) => c.entitlementId),
    keyed?.keys.query,
  );
  const toRun = keyed ? keyed.keys.settle(storedKeys).map((n) => calls[n]!) : calls;
  // A tenant the ledger has not heard of yet has no features.
  const tenant = factsOf(tenantId, tenantFeatures ?? []);
  const changed: BatchMovement[] = [];
  const outcomes = toRun.map((call): BatchOutcome<R> => {
    const e = rows.get(call.entitlementId);
    if (!e) return { refused: notFound('entitlement', call.entitlementId) };
    let t: MaybeTransition | { refused: R };
    try {
      t = decide(call, e, tenant, now);
    } catch (err) {
      if (err instanceof RuleViolation) return { refused: err };
      throw err;
    }
    if ('refused' in t) return t;
    if ('noop' in t) return { ok: { entitlement: e }, encoded: encodeMovement({ entitlement: e }) };
    const entitlement: EntitlementRecord = { ...e, ...t.next };
    const entry = entryRecord(ctx, call.caller, call.requestId, entitlement, t, now);
    const recorded: Recorded = { entitlement, entry, encoded: encodeMovement({ entitlement, entry }) };
    changed.push({ prev: e, recorded, trace: call.trace });
    return { ok: recorded, encoded: recorded.encoded };
  });
  await saveMovements(
    tx,
    changed,
    now,
    keyed?.answersWrite(outcomes.map((o) => ('encoded' in o ? o.encoded : undefined))),
  );
  return outcomes;
}

/**
 * Saves the movements of a batch operation of one tenant (one per entitlement) in one statement: the
 * rows' update, the entries' insert and their events' outbox rows, with `also` (the requests' stored
 * answers, say). The entries are checked against the saved rows when the statement is done.
 */
async function saveMovements(tx: Kysely<LedgerDb>, movements: readonly BatchMovement[], now: Date, also?: OwnWrite): Promise<void> {
  if (movements.length === 0) return;
  await enqueueEntryEvents(
    tx,
    movements.map(({ recorded: { entitlement, entry, encoded }, trace }) => ({ entitlement, entry, payload: encoded, trace })),
    [
      entitlementsUpdate(
        movements.map((m) => ({ prev: m.prev, next: m.recorded.entitlement })),
        now,
      ),
      entriesInsert(movements.map((m) => m.recorded.entry)),
      ...(also ? [also] : []),
    ],
  );
}
