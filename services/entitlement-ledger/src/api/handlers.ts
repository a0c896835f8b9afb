import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { checkIdempotencyKey, inTransaction, requestHash, withIdempotency } from '@punchcard/db';
import {
  ConsumeResponseSchema,
  EnterGraceResponseSchema,
  type ConsumeRequest as ConsumeRequestMessage,
  type ConsumeResponse,
  ExpireResponseSchema,
  ExtendResponseSchema,
  FreezeResponseSchema,
  LedgerService,
  PurchaseResponseSchema,
  ReverseResponseSchema,
  UnfreezeResponseSchema,
} from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { invalid, notFound, RuleViolation } from '../domain/errors.js';
import type { Status } from '../domain/types.js';
import {
  consumeSession,
  enterGracePeriod,
  expireEntitlement,
  extendEntitlement,
  freezeEntitlement,
  purchasePackage,
  requireText,
  requireUuid,
  reverseConsume,
  unfreezeEntitlement,
  type Caller,
  type ConsumeRequest,
  type OperationContext,
} from '../operations/ledger.js';
import { encodedMessage } from '../proto/encoded.js';
import { dateOf, entitlementToProto, entryToProto, movementToProto, statusFromProto, visitStateFromProto, visitToProto } from '../proto/mapping.js';
import { getEntitlement, listEntitlements, listEntries } from '../store/entitlements.js';
import type { KeyClaim } from '../store/idempotency.js';
import type { LedgerDb } from '../store/schema.js';
import { getVisit, listVisits } from '../store/visits.js';
import { consumeGroupCommit, type ConsumeBatching } from './consume-batch.js';
import { toConnectError } from './errors.js';
import { expiryBatchHandlers } from './expiry-batch.js';
import { packageHandlers } from './packages.js';
import { decodeToken, encodeToken, pageSize } from './pagination.js';

/** The authenticated caller, as the platform's auth interceptor establishes it. */
export interface AuthenticatedCaller {
  subject: string;
  tenantId: string;
  roles: readonly string[];
  /** When set, the caller may act only at these branches. */
  branchIds?: readonly string[] | undefined;
}

export interface LedgerApiDeps extends OperationContext {
  db: Kysely<LedgerDb>;
  callerOf: (ctx: HandlerContext) => AuthenticatedCaller;
  /** Group concurrent Consume RPCs of named entitlements into shared transactions (see consumeGroupCommit); off when unset. */
  consumeBatching?: ConsumeBatching | undefined;
  /** Where a grouped consume transaction that failed is reported. */
  logger?: Logger | undefined;
}

export const ANY_ROLE = ['staff', 'manager', 'admin', 'system'] as const;
export const MANAGERS = ['manager', 'admin'] as const;
export const SCHEDULER = ['system'] as const;

export function authorise(caller: AuthenticatedCaller, allowed: readonly string[], action: string): Caller {
  if (!caller.roles.some((r) => allowed.includes(r))) {
    throw new RuleViolation('permission_denied', `${action} needs one of the roles ${allowed.join(', ')}`);
  }
  return { tenantId: caller.tenantId, subject: caller.subject, roles: caller.roles };
}

export function atBranch(caller: AuthenticatedCaller, branchId: string, field: string): void {
  if (caller.branchIds && branchId !== '' && !caller.branchIds.includes(branchId)) {
    throw new RuleViolation('permission_denied', `${field} ${branchId} is not one of the caller's branches`);
  }
}

const METHOD_PREFIX = `${LedgerService.typeName}/`;

/** A mutating request's idempotency claim: its key under the RPC's full name, and the digest of the request without the key. */
export function idempotencyClaim<I extends DescMessage>(method: string, input: I, request: MessageShape<I> & { idempotencyKey: string }): KeyClaim {
  checkIdempotencyKey(request.idempotencyKey);
  return { method: METHOD_PREFIX + method, key: request.idempotencyKey, requestHash: requestHash(toBinary(input, { ...request, idempotencyKey: '' })) };
}

/** A Consume RPC's fields as the consume operations take them. */
export function consumeFields(req: ConsumeRequestMessage): ConsumeRequest {
  return {
    entitlementId: req.entitlementId,
    memberId: req.memberId,
    serviceCode: req.serviceCode,
    branchId: req.branchId,
    visitId: req.visitId,
    reason: req.reason,
    ...(req.occurredTime ? { occurredTime: dateOf(req.occurredTime)! } : {}),
  };
}

/**
 * Runs a mutating request exactly once per idempotency key: the effect, its entries, its events
 * and the stored response commit together; a repeat returns the stored response unchanged.
 */
export type Once = <I extends DescMessage & { typeName: string }, O extends DescMessage>(
  method: string,
  input: I,
  request: MessageShape<I> & { idempotencyKey: string },
  output: O,
  caller: Caller,
  /** The answer, or its bytes when they are encoded already (a movement's: see Recorded.encoded). */
  run: (tx: Kysely<LedgerDb>, requestId: string) => Promise<MessageInitShape<O> | Uint8Array>,
) => Promise<MessageShape<O>>;

export function ledgerHandlers(deps: LedgerApiDeps): ServiceImpl<typeof LedgerService> {
  const { db } = deps;

  async function once<I extends DescMessage & { typeName: string }, O extends DescMessage>(
    method: string,
    input: I,
    request: MessageShape<I> & { idempotencyKey: string },
    output: O,
    caller: Caller,
    run: (tx: Kysely<LedgerDb>, requestId: string) => Promise<MessageInitShape<O> | Uint8Array>,
  ): Promise<MessageShape<O>> {
    const claim = idempotencyClaim(method, input, request);
    let answer: MessageShape<O> | undefined;
    const { response, replayed } = await inTransaction(db, (tx) =>
      withIdempotency(tx, { tenantId: caller.tenantId, ...claim }, async () => {
        const result = await run(tx, request.idempotencyKey);
        // Encoded already (a movement, whose bytes are its event's too): stored and sent as they are.
        if (result instanceof Uint8Array) {
          answer = encodedMessage(output, result);
          return result;
        }
        answer = create(output, result);
        return toBinary(output, answer);
      }),
    );
    // A first answer is returned as built; only a replay is decoded from what was stored.
    return !replayed && answer ? answer : fromBinary(output, response);
  }

  function consumeAlone(caller: Caller, req: ConsumeRequestMessage): Promise<ConsumeResponse> {
    return once('Consume', LedgerService.method.consume.input, req, ConsumeResponseSchema, caller, async (tx, key) => {
      const r = await consumeSession(tx, deps, caller, consumeFields(req), key);
      return r.encoded;
    });
  }
  const grouped = deps.consumeBatching ? consumeGroupCommit(deps, deps.consumeBatching, consumeAlone) : undefined;

  const handlers: ServiceImpl<typeof LedgerService> = {
    ...packageHandlers(deps, once),
    ...expiryBatchHandlers(deps),

    async purchase(req, ctx) {
      const auth = deps.callerOf(ctx);
      const caller = authorise(auth, ANY_ROLE, 'Purchase');
      atBranch(auth, req.branchId, 'branch_id');
      return once('Purchase', LedgerService.method.purchase.input, req, PurchaseResponseSchema, caller, async (tx, key) => {
        const r = await purchasePackage(
          tx,
          deps,
          caller,
          {
            memberId: req.memberId,
            definitionId: req.definitionId,
            definitionVersion: req.definitionVersion,
            branchId: req.branchId,
            paymentReference: req.paymentReference,
            ...(req.purchaseTime ? { purchaseTime: dateOf(req.purchaseTime)! } : {}),
          },
          key,
        );
        return r.encoded;
      });
    },

    async consume(req, ctx) {
      const auth = deps.callerOf(ctx);
      const caller = authorise(auth, ANY_ROLE, 'Consume');
      atBranch(auth, req.branchId, 'branch_id');
      return grouped?.takes(req) ? grouped.consume(caller, req) : consumeAlone(caller, req);
    },

    async reverse(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'Reverse');
      return once('Reverse', LedgerService.method.reverse.input, req, ReverseResponseSchema, caller, async (tx, key) => {
        const r = await reverseConsume(tx, deps, caller, { entryId: req.entryId, reason: req.reason }, key);
        return r.encoded;
      });
    },

    async getEntitlement(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'GetEntitlement');
      const id = requireUuid('entitlement_id', req.entitlementId);
      const e = await getEntitlement(db, caller.tenantId, id);
      if (!e) throw notFound('entitlement', id);
      return { entitlement: entitlementToProto(e) };
    },

    async listEntitlements(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'ListEntitlements');
      const limit = pageSize(req.pageSize);
      const cursor = decodeToken(req.pageToken, ['s']);
      const statuses: Status[] = [];
      for (const s of req.statuses) {
        const status = statusFromProto(s);
        if (!status) throw invalid('statuses', `${s} is not an entitlement status`);
        statuses.push(status);
      }
      let after = 0n;
      if (cursor) {
        if (!/^\d+$/.test(cursor.s)) throw invalid('page_token', 'is not a token this list returned');
        after = BigInt(cursor.s);
      }
      const page = await listEntitlements(
        db,
        caller.tenantId,
        {
          ...(req.memberId ? { memberId: req.memberId } : {}),
          statuses,
          ...(req.expiringBefore ? { expiringBefore: dateOf(req.expiringBefore)! } : {}),
        },
        after,
        limit,
      );
      return {
        entitlements: page.items.map(entitlementToProto),
        nextPageToken: page.next === undefined ? '' : encodeToken({ s: page.next.toString() }),
      };
    },

    async listEntries(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'ListEntries');
      const id = requireUuid('entitlement_id', req.entitlementId);
      const limit = pageSize(req.pageSize);
      const cursor = decodeToken(req.pageToken, ['v']);
      const after = cursor ? Number(cursor.v) : 0;
      if (!Number.isSafeInteger(after) || after < 0) throw invalid('page_token', 'is not a token this list returned');
      if (!(await getEntitlement(db, caller.tenantId, id))) throw notFound('entitlement', id);
      const page = await listEntries(db, caller.tenantId, id, after, limit);
      return {
        entries: page.items.map(entryToProto),
        nextPageToken: page.next === undefined ? '' : encodeToken({ v: Number(page.next) }),
      };
    },

    async extend(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), MANAGERS, 'Extend');
      return once('Extend', LedgerService.method.extend.input, req, ExtendResponseSchema, caller, async (tx, key) => {
        const r = await extendEntitlement(
          tx,
          deps,
          caller,
          {
            entitlementId: req.entitlementId,
            extendDays: req.extendDays,
            reason: req.reason,
            ...(req.newExpiryTime ? { newExpiryTime: dateOf(req.newExpiryTime)! } : {}),
          },
          key,
        );
        return r.encoded;
      });
    },

    async freeze(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'Freeze');
      return once('Freeze', LedgerService.method.freeze.input, req, FreezeResponseSchema, caller, async (tx, key) => {
        const r = await freezeEntitlement(
          tx,
          deps,
          caller,
          { entitlementId: req.entitlementId, reason: req.reason, ...(req.untilTime ? { untilTime: dateOf(req.untilTime)! } : {}) },
          key,
        );
        return r.encoded;
      });
    },

    async unfreeze(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'Unfreeze');
      return once('Unfreeze', LedgerService.method.unfreeze.input, req, UnfreezeResponseSchema, caller, async (tx, key) => {
        const r = await unfreezeEntitlement(tx, deps, caller, { entitlementId: req.entitlementId, reason: req.reason }, key);
        return r.encoded;
      });
    },

    async enterGrace(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), SCHEDULER, 'EnterGrace');
      return once('EnterGrace', LedgerService.method.enterGrace.input, req, EnterGraceResponseSchema, caller, async (tx, key) =>
        movementToProto(
          await enterGracePeriod(
            tx,
            deps,
            caller,
            {
              entitlementId: req.entitlementId,
              ...(req.expiryTime ? { expiryTime: dateOf(req.expiryTime)! } : {}),
              ...(req.graceEndTime ? { graceEndTime: dateOf(req.graceEndTime)! } : {}),
            },
            key,
          ),
        ),
      );
    },

    async expire(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), SCHEDULER, 'Expire');
      return once('Expire', LedgerService.method.expire.input, req, ExpireResponseSchema, caller, async (tx, key) =>
        movementToProto(
          await expireEntitlement(
            tx,
            deps,
            caller,
            { entitlementId: req.entitlementId, reason: req.reason, ...(req.dueTime ? { dueTime: dateOf(req.dueTime)! } : {}) },
            key,
          ),
        ),
      );
    },

    async getVisit(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'GetVisit');
      const visitId = requireText('visit_id', req.visitId);
      const v = await getVisit(db, caller.tenantId, visitId);
      if (!v) throw notFound('visit', visitId);
      return { visit: visitToProto(v) };
    },

    async listVisits(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'ListVisits');
      const limit = pageSize(req.pageSize);
      const cursor = decodeToken(req.pageToken, ['c', 'v']);
      const createdAt = cursor ? new Date(cursor.c) : undefined;
      if (createdAt && Number.isNaN(createdAt.getTime())) throw invalid('page_token', 'is not a token this list returned');
      const state = visitStateFromProto(req.state);
      const rows = await listVisits(
        db,
        caller.tenantId,
        { ...(state ? { state } : {}), ...(req.memberId ? { memberId: req.memberId } : {}) },
        cursor && createdAt ? { createdAt, visitId: cursor.v } : undefined,
        limit + 1,
      );
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        visits: page.map(visitToProto),
        nextPageToken: rows.length > limit && last ? encodeToken({ c: last.createdAt.toISOString(), v: last.visitId }) : '',
      };
    },
  };
  return withErrorMapping(handlers);
}

/** Wraps every handler so business refusals leave as their gRPC codes, never as Internal. */
function withErrorMapping<T extends object>(handlers: T): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(handlers) as [string, (...args: unknown[]) => unknown][]) {
    wrapped[name] = async (...args: unknown[]) => {
      try {
        return await fn(...args);
      } catch (err) {
        throw toConnectError(err);
      }
    };
  }
  return wrapped as T;
}
