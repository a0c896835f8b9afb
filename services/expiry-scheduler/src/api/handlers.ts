import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  ExpiryService,
  GetScheduleResponseSchema,
  ListDueResponseSchema,
  RunDueRequestSchema,
  RunDueResponseSchema,
  type GetScheduleRequest,
  type GetScheduleResponse,
  type ListDueRequest,
  type ListDueResponse,
  type RunDueRequest,
  type RunDueResponse,
} from '@punchcard/contracts/punchcard/expiry/v1/expiry_pb';
import { IdempotencyKeyError, inTransaction, requestHash, withIdempotency } from '@punchcard/db';
import { invalidArgument, notFound, requireRole, type Caller, type Role } from '@punchcard/platform';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { firingOrder } from '../domain/schedule.js';
import type { ExpiryDb } from '../store/schema.js';
import { countDue, getEntitlement, listDue, requeueFailed, timersOf } from '../store/store.js';
import type { SweepOptions, SweepResult } from '../sweep.js';
import { decodePageToken, encodePageToken, timerToProto } from './convert.js';

export interface ExpiryApiDeps {
  db: Kysely<ExpiryDb>;
  clock: () => Date;
  /** Fires due timers now (the service's sweeper, so a forced run and the background one take turns). */
  runDue: (options: SweepOptions) => Promise<SweepResult>;
  logger?: Logger;
}

const READERS: Role[] = ['staff', 'manager', 'admin', 'system'];
const OPERATORS: Role[] = ['admin', 'system'];
export const MAX_PAGE_SIZE = 1000;
const DEFAULT_PAGE_SIZE = 100;

/**
 * The ExpiryService handlers, caller first (the server adapter takes it from the verified token).
 * Every read is confined to the caller's tenant; operators (admin, system) list and force due timers.
 */
export function expiryHandlers(deps: ExpiryApiDeps) {
  return {
    async getSchedule(caller: Caller, req: GetScheduleRequest): Promise<GetScheduleResponse> {
      requireRole(caller, ...READERS);
      if (req.entitlementId.trim() === '') throw invalidArgument('entitlement_id', 'is required');
      const row = await getEntitlement(deps.db, caller.tenantId, req.entitlementId);
      if (!row) throw notFound('entitlement', req.entitlementId);
      const timers = await timersOf(deps.db, caller.tenantId, req.entitlementId);
      const pending = timers
        .filter((t) => t.state === 'PENDING')
        .sort((a, b) => firingOrder({ kind: a.kind, dueTime: a.due_time }, { kind: b.kind, dueTime: b.due_time }));
      const past = timers.filter((t) => t.state !== 'PENDING').sort((a, b) => b.update_time.getTime() - a.update_time.getTime());
      return create(GetScheduleResponseSchema, {
        entitlementId: row.entitlement_id,
        ...(row.expiry_time ? { expiryTime: timestampFromDate(row.expiry_time) } : {}),
        ...(row.grace_end_time ? { graceEndTime: timestampFromDate(row.grace_end_time) } : {}),
        timers: [...pending, ...past].map(timerToProto),
        entitlementVersion: row.version,
        timeZone: row.time_zone,
      });
    },

    async listDue(caller: Caller, req: ListDueRequest): Promise<ListDueResponse> {
      requireRole(caller, ...OPERATORS);
      if (req.pageSize < 0 || req.pageSize > MAX_PAGE_SIZE) throw invalidArgument('page_size', `must be from 0 to ${MAX_PAGE_SIZE}`);
      const size = req.pageSize || DEFAULT_PAGE_SIZE;
      const after = req.pageToken ? decodePageToken(req.pageToken) : undefined;
      if (req.pageToken && !after) throw invalidArgument('page_token', 'is not a token returned by ListDue');
      const before = req.dueBefore ? timestampDate(req.dueBefore) : deps.clock();
      const rows = await listDue(deps.db, { tenantId: caller.tenantId, before, limit: size + 1, ...(after ? { after } : {}) });
      const page = rows.slice(0, size);
      const last = page[page.length - 1];
      return create(ListDueResponseSchema, {
        timers: page.map(timerToProto),
        nextPageToken: rows.length > size && last ? encodePageToken({ dueTime: last.due_time, rank: last.rank, timerId: last.timer_id }) : '',
      });
    },

    async runDue(caller: Caller, req: RunDueRequest): Promise<RunDueResponse> {
      requireRole(caller, ...OPERATORS);
      if (req.limit < 0) throw invalidArgument('limit', 'must not be negative (0 = every due timer)');
      const run = async () => {
        if (req.retryFailed) {
          const requeued = await inTransaction(deps.db, (tx) => requeueFailed(tx, caller.tenantId, deps.clock()));
          if (requeued > 0) deps.logger?.info({ tenantId: caller.tenantId, requeued, subject: caller.subject }, 'failed timers put back to pending');
        }
        const result = await deps.runDue({ tenantId: caller.tenantId, ...(req.limit > 0 ? { limit: req.limit } : {}) });
        const remaining = await countDue(deps.db, deps.clock(), caller.tenantId);
        return toBinary(RunDueResponseSchema, create(RunDueResponseSchema, { fired: result.fired, failed: result.failed, remaining }));
      };
      try {
        const { response } = await inTransaction(deps.db, (tx) =>
          withIdempotency(
            tx,
            {
              tenantId: caller.tenantId,
              key: req.idempotencyKey,
              method: `${ExpiryService.typeName}/RunDue`,
              requestHash: requestHash(toBinary(RunDueRequestSchema, create(RunDueRequestSchema, { limit: req.limit, retryFailed: req.retryFailed }))),
            },
            run,
          ),
        );
        return fromBinary(RunDueResponseSchema, response);
      } catch (err) {
        if (err instanceof IdempotencyKeyError) throw invalidArgument('idempotency_key', err.message);
        throw err;
      }
    },
  };
}

export type ExpiryHandlers = ReturnType<typeof expiryHandlers>;
