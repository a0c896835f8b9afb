import { create, toBinary } from '@bufbuild/protobuf';
import { ConnectError, type ServiceImpl } from '@connectrpc/connect';
import { inTransaction, MAX_IDEMPOTENCY_KEY_LENGTH, requestHash } from '@punchcard/db';
import {
  EnterGraceRequestSchema,
  ExpireBatchResultSchema,
  ExpireRequestSchema,
  LedgerService,
  type ExpireBatchRequest,
  type ExpireBatchResult,
} from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { invalid } from '../domain/errors.js';
import { applyExpiryCalls, type ExpiryCall } from '../operations/expiry-batch.js';
import { requireUuid } from '../operations/ledger.js';
import { withEncodedField, withoutEntitlement } from '../proto/encoded.js';
import { dateOf } from '../proto/mapping.js';
import { onceEach, type KeyClaim } from '../store/idempotency.js';
import { toConnectError } from './errors.js';
import { authorise, SCHEDULER, type LedgerApiDeps } from './handlers.js';

/** At most this many items per ExpireBatch: one transaction should stay short. */
export const MAX_EXPIRE_BATCH = 1000;

/** The single RPC each item stands for: its idempotency keys live under that method's name. */
const METHOD = { expire: `${LedgerService.typeName}/Expire`, enterGrace: `${LedgerService.typeName}/EnterGrace` } as const;

interface Item {
  call: ExpiryCall;
  claim: KeyClaim;
}

/** Validates the whole request first: a malformed item fails the batch, naming the field. */
function itemsOf(req: ExpireBatchRequest): Item[] {
  if (req.items.length === 0) throw invalid('items', 'is required');
  if (req.items.length > MAX_EXPIRE_BATCH) throw invalid('items', `must hold at most ${MAX_EXPIRE_BATCH} items`);
  const entitlements = new Map<string, number>();
  const keys = new Map<string, number>();
  return req.items.map((item, i): Item => {
    const c = item.call;
    if (c.case === undefined) throw invalid(`items[${i}]`, 'sets neither expire nor enter_grace');
    const at = `items[${i}].${c.case === 'expire' ? 'expire' : 'enter_grace'}`;
    const key = c.value.idempotencyKey;
    if (key === '') throw invalid(`${at}.idempotency_key`, 'is required');
    if (key.length > MAX_IDEMPOTENCY_KEY_LENGTH) throw invalid(`${at}.idempotency_key`, `must be at most ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`);
    const entitlementId = requireUuid(`${at}.entitlement_id`, c.value.entitlementId);
    const sameEntitlement = entitlements.get(entitlementId);
    if (sameEntitlement !== undefined) throw invalid(`${at}.entitlement_id`, `is items[${sameEntitlement}]'s too; one item per entitlement`);
    entitlements.set(entitlementId, i);
    const sameKey = keys.get(key);
    if (sameKey !== undefined) throw invalid(`${at}.idempotency_key`, `is items[${sameKey}]'s too`);
    keys.set(key, i);
    if (c.case === 'expire') {
      const dueTime = dateOf(c.value.dueTime);
      if (!dueTime) throw invalid(`${at}.due_time`, 'is required');
      return {
        call: { action: 'expire', entitlementId, dueTime, reason: c.value.reason, requestId: key },
        // The digest Expire's own idempotency takes: the request without its key.
        claim: { method: METHOD.expire, key, requestHash: requestHash(toBinary(ExpireRequestSchema, { ...c.value, idempotencyKey: '' })) },
      };
    }
    const expiryTime = dateOf(c.value.expiryTime);
    if (!expiryTime) throw invalid(`${at}.expiry_time`, 'is required');
    const graceEndTime = dateOf(c.value.graceEndTime);
    return {
      call: { action: 'enterGrace', entitlementId, expiryTime, ...(graceEndTime ? { graceEndTime } : {}), requestId: key },
      claim: { method: METHOD.enterGrace, key, requestHash: requestHash(toBinary(EnterGraceRequestSchema, { ...c.value, idempotencyKey: '' })) },
    };
  });
}

/**
 * An item's answer from its encoded response (stored, or just built): carried as bytes, so the batch
 * response is not built from decoded messages and encoded again.
 */
function answer(call: ExpiryCall, encoded: Uint8Array, omitEntitlement: boolean): ExpireBatchResult {
  const field = call.action === 'expire' ? ExpireBatchResultSchema.field.expire : ExpireBatchResultSchema.field.enterGrace;
  return withEncodedField(ExpireBatchResultSchema, field.number, omitEntitlement ? withoutEntitlement(encoded) : encoded);
}

function refusal(err: unknown): ExpireBatchResult {
  const e = toConnectError(err);
  if (!(e instanceof ConnectError)) throw err;
  return create(ExpireBatchResultSchema, { result: { case: 'error', value: { code: e.code, message: e.rawMessage } } });
}

/**
 * ExpireBatch: every item answered as its own Expire / EnterGrace call would be, in one transaction.
 * Idempotency per item under the single RPC's method name and request digest, so keys are shared
 * with the single calls; a refused item stores nothing (its key may run again), like a failed call.
 */
export function expiryBatchHandlers(deps: LedgerApiDeps): Pick<ServiceImpl<typeof LedgerService>, 'expireBatch'> {
  return {
    async expireBatch(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), SCHEDULER, 'ExpireBatch');
      const items = itemsOf(req);
      const results = await inTransaction(deps.db, async (tx) => {
        const outcomes = await onceEach(
          tx,
          caller.tenantId,
          items.map((i) => i.claim),
          (keys, answersWrite) =>
            applyExpiryCalls(
              tx,
              deps,
              caller,
              items.map((i) => i.call),
              { keys, answersWrite },
            ),
        );
        return outcomes.map((o, n) => ('refused' in o ? refusal(o.refused) : answer(items[n]!.call, o.encoded, req.omitEntitlements)));
      });
      return { results };
    },
  };
}
