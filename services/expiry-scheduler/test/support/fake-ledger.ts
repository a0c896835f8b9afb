import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { publishEvent, type Bus } from '@punchcard/bus';
import { ExpiryMode, type ExpiryPolicySchema } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { LedgerEntryRecordedSchema, type LedgerEntryRecorded } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import {
  EnterGraceResponseSchema,
  EntitlementSchema,
  EntitlementStatus,
  EntryKind,
  ExpireResponseSchema,
  LedgerEntrySchema,
  LedgerService,
  UnfreezeResponseSchema,
  type EnterGraceRequest,
  type EnterGraceResponse,
  type Entitlement,
  type ExpireBatchResultSchema,
  type ExpireRequest,
  type ExpireResponse,
  type LedgerEntry,
} from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

/** One call the scheduler made (an Unfreeze, or an item of an ExpireBatch), as the fake ledger saw it on the wire. */
export interface LedgerCall {
  method: 'EnterGrace' | 'Expire' | 'Unfreeze';
  idempotencyKey: string;
  entitlementId: string;
  /** From the bearer token. */
  tenantId: string;
  roles: string[];
  /** A repeated idempotency key: answered with the first response, nothing applied. */
  replay: boolean;
  /** EnterGrace: expiry_time; Expire: due_time. */
  instant?: Date;
  graceEndTime?: Date;
}

export type PolicyInit = MessageInitShape<typeof ExpiryPolicySchema>;

export interface PurchaseSpec {
  tenantId: string;
  entitlementId?: string;
  memberId?: string;
  policy: PolicyInit;
  timeZone: string;
  purchaseTime: Date;
  /** What the real ledger would record (it computes standard policies itself); unset for custom rules / first use. */
  expiryTime?: Date;
  sessions?: number;
}

type Changes = Partial<Pick<Entitlement, 'status' | 'remaining' | 'frozenDays'>> & {
  expiryTime?: Date | null;
  graceEndTime?: Date | null;
  activationTime?: Date | null;
  frozenUntilTime?: Date | null;
  lastUseTime?: Date | null;
};

/** A ledger event ready to publish (tests may publish out of order, or twice). */
export interface PendingEvent {
  version: number;
  eventId: string;
  entry: LedgerEntry;
  /** The event's payload. */
  message: LedgerEntryRecorded;
  publish(): Promise<void>;
}

/**
 * A stand-in for the entitlement ledger: a real Connect/gRPC server implementing ExpireBatch (each item
 * as Expire or EnterGrace would answer it) and Unfreeze, idempotent by key, recording every call; and a simulator that publishes
 * `LedgerEntryRecorded` events on the bus exactly as the ledger would, keeping each entitlement's
 * version sequence.
 */
/** The instants a call acts on, as the request carries them. */
type CallDetail = { instant?: Parameters<typeof timestampDate>[0] | undefined; graceEnd?: Parameters<typeof timestampDate>[0] | undefined };

export class FakeLedger {
  readonly calls: LedgerCall[] = [];
  readonly entitlements = new Map<string, Entitlement>();
  /** Responses by idempotency key: the effects applied. */
  private readonly responses = new Map<string, unknown>();
  /** Calls being applied, by idempotency key. */
  private readonly applying = new Map<string, Promise<unknown>>();
  private failures: { code: Code; count: number } | undefined;
  private requestFailures: { code: Code; count: number } | undefined;
  /** Each ExpireBatch request: whose, how many items, whether it asked for entries only. */
  readonly requests: { tenantId: string; items: number; omitEntitlements: boolean }[] = [];
  /** Runs when an ExpireBatch request arrives, before anything is answered (tests hold requests open with it). */
  onRequest: (() => Promise<void> | void) | undefined;
  private readonly frozenAt = new Map<string, Date>();
  /** Runs on every call before it is applied (tests use it to crash a scheduler mid-batch). */
  onCall: ((call: LedgerCall) => Promise<void> | void) | undefined;
  /** Event ids published, in order. */
  readonly published: string[] = [];
  private server: http2.Http2Server | undefined;
  url = '';

  constructor(
    private readonly bus: Bus,
    private readonly namespace: string,
    private readonly clock: () => Date,
  ) {}

  async listen(): Promise<void> {
    const server = http2.createServer(connectNodeAdapter({ routes: (router) => this.routes(router) }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The next `count` calls (batch items or single calls) fail with `code` before anything is applied. */
  failNext(count: number, code: Code): void {
    this.failures = { code, count };
  }

  /** The next `count` ExpireBatch requests fail as a whole with `code`; nothing is applied or recorded. */
  failRequests(count: number, code: Code): void {
    this.requestFailures = { code, count };
  }

  /** Effects applied (distinct idempotency keys that changed or answered). */
  get effects(): number {
    return this.responses.size;
  }

  callsFor(entitlementId: string): LedgerCall[] {
    return this.calls.filter((c) => c.entitlementId === entitlementId);
  }

  // --- the ledger's side of the bus -------------------------------------------------------------

  async purchase(spec: PurchaseSpec): Promise<Entitlement> {
    const pending = this.preparePurchase(spec);
    await pending.publish();
    return this.entitlements.get(pending.entitlementId)!;
  }

  preparePurchase(spec: PurchaseSpec): PendingEvent & { entitlementId: string } {
    const id = spec.entitlementId ?? randomUUID();
    const sessions = spec.sessions ?? 10;
    const custom = spec.policy.customRule !== undefined;
    const e = create(EntitlementSchema, {
      tenantId: spec.tenantId,
      entitlementId: id,
      memberId: spec.memberId ?? `member-${id.slice(0, 8)}`,
      terms: { definitionId: 'def-1', definitionVersion: 1, terms: { code: 'PKG', expiry: spec.policy }, timeZone: spec.timeZone },
      purchaseBranchId: 'branch-1',
      status: EntitlementStatus.ACTIVE,
      paidSessions: sessions,
      paidRemaining: sessions,
      remaining: sessions,
      purchaseTime: timestampFromDate(spec.purchaseTime),
      ...(spec.policy.anchor === 2 || custom ? {} : { activationTime: timestampFromDate(spec.purchaseTime) }),
      ...(spec.expiryTime ? { expiryTime: timestampFromDate(spec.expiryTime) } : {}),
      version: 0n,
    });
    this.entitlements.set(id, e);
    return { ...this.prepare(id, EntryKind.PURCHASE, spec.purchaseTime, {}, 'entitlement_purchased'), entitlementId: id };
  }

  consume(id: string, at: Date, changes: Changes = {}): Promise<void> {
    const e = this.get(id);
    const remaining = changes.remaining ?? e.remaining - 1;
    return this.prepare(id, EntryKind.CONSUME, at, {
      lastUseTime: at,
      ...(e.activationTime ? {} : { activationTime: at }),
      status: remaining === 0 ? EntitlementStatus.EXHAUSTED : e.status,
      ...changes,
      remaining,
    }, 'session_consumed').publish();
  }

  extend(id: string, at: Date, newExpiry: Date): Promise<void> {
    const e = this.get(id);
    return this.prepare(id, EntryKind.EXTEND, at, {
      expiryTime: newExpiry,
      graceEndTime: null,
      status: e.status === EntitlementStatus.IN_GRACE ? EntitlementStatus.ACTIVE : e.status,
    }, 'entitlement_extended').publish();
  }

  freeze(id: string, at: Date, until: Date, newExpiry?: Date): Promise<void> {
    this.frozenAt.set(id, at);
    return this.prepare(id, EntryKind.FREEZE, at, {
      status: EntitlementStatus.FROZEN,
      frozenUntilTime: until,
      ...(newExpiry ? { expiryTime: newExpiry } : {}),
    }, 'entitlement_frozen').publish();
  }

  /** Any other entry that moves the entitlement (refund, transfer, reversal ...). */
  record(id: string, kind: EntryKind, at: Date, changes: Changes, event: string): Promise<void> {
    return this.prepare(id, kind, at, changes, event).publish();
  }

  /** `requestId`: the idempotency key of the call that made the entry, as the ledger records it. */
  prepare(id: string, kind: EntryKind, at: Date, changes: Changes, event: string, requestId = `fake-${randomUUID()}`): PendingEvent {
    const e = this.apply(id, changes);
    const entry = this.entry(e, kind, at, requestId);
    const message = create(LedgerEntryRecordedSchema, { entitlement: e, entry });
    const eventId = entry.entryId;
    return {
      version: Number(e.version),
      eventId,
      entry,
      message,
      publish: async () => {
        await publishEvent(this.bus.js, {
          namespace: this.namespace,
          source: '/punchcard/entitlement-ledger',
          producer: 'ledger',
          event,
          tenantId: e.tenantId,
          aggregateId: e.entitlementId,
          aggregateVersion: Number(e.version),
          schema: LedgerEntryRecordedSchema,
          message,
          id: eventId,
          time: at,
        });
        this.published.push(eventId);
      },
    };
  }

  private get(id: string): Entitlement {
    const e = this.entitlements.get(id);
    if (!e) throw new ConnectError(`entitlement ${id} not found`, Code.NotFound);
    return e;
  }

  private apply(id: string, changes: Changes): Entitlement {
    const prev = this.get(id);
    const ts = (d: Date | null | undefined, keep: Entitlement['expiryTime']) => (d === undefined ? keep : d === null ? undefined : timestampFromDate(d));
    const next = create(EntitlementSchema, {
      ...prev,
      status: changes.status ?? prev.status,
      remaining: changes.remaining ?? prev.remaining,
      paidRemaining: changes.remaining ?? prev.paidRemaining,
      frozenDays: changes.frozenDays ?? prev.frozenDays,
      expiryTime: ts(changes.expiryTime, prev.expiryTime),
      graceEndTime: ts(changes.graceEndTime, prev.graceEndTime),
      activationTime: ts(changes.activationTime, prev.activationTime),
      frozenUntilTime: ts(changes.frozenUntilTime, prev.frozenUntilTime),
      lastUseTime: ts(changes.lastUseTime, prev.lastUseTime),
      version: prev.version + 1n,
    });
    this.entitlements.set(id, next);
    return next;
  }

  private entry(e: Entitlement, kind: EntryKind, at: Date, requestId: string): LedgerEntry {
    return create(LedgerEntrySchema, {
      requestId,
      tenantId: e.tenantId,
      entryId: randomUUID(),
      entitlementId: e.entitlementId,
      kind,
      occurredTime: timestampFromDate(at),
      recordTime: timestampFromDate(this.clock()),
      balanceAfter: e.remaining,
      entitlementVersion: e.version,
      ...(e.expiryTime ? { expiryTime: e.expiryTime } : {}),
    });
  }

  // --- the RPCs the scheduler calls -------------------------------------------------------------

  private routes(router: ConnectRouter): void {
    router.service(LedgerService, {
      expireBatch: async (req, ctx) => {
        const claims = claimsOf(ctx.requestHeader.get('authorization'));
        this.requests.push({ tenantId: claims.tenant_id ?? '', items: req.items.length, omitEntitlements: req.omitEntitlements });
        await this.onRequest?.();
        if (this.requestFailures && this.requestFailures.count > 0) {
          this.requestFailures.count -= 1;
          throw new ConnectError('the ledger is down', this.requestFailures.code);
        }
        const results: MessageInitShape<typeof ExpireBatchResultSchema>[] = [];
        // One at a time, in order, each exactly as its single call: the ledger answers per item.
        for (const item of req.items) {
          try {
            if (item.call.case === 'expire') results.push({ result: { case: 'expire', value: await this.expire(ctx, item.call.value) } });
            else if (item.call.case === 'enterGrace') results.push({ result: { case: 'enterGrace', value: await this.enterGrace(ctx, item.call.value) } });
            else throw new ConnectError('items: neither expire nor enter_grace', Code.InvalidArgument);
          } catch (err) {
            const e = ConnectError.from(err);
            results.push({ result: { case: 'error', value: { code: e.code, message: e.rawMessage } } });
          }
        }
        return { results };
      },
      unfreeze: async (req, ctx) =>
        this.idempotent(ctx, 'Unfreeze', req.idempotencyKey, req.entitlementId, {}, async (e) => {
          if (e.status !== EntitlementStatus.FROZEN) throw new ConnectError(`entitlement ${e.entitlementId} is not frozen`, Code.FailedPrecondition);
          const from = this.frozenAt.get(e.entitlementId) ?? this.clock();
          const until = e.frozenUntilTime ? timestampDate(e.frozenUntilTime) : this.clock();
          const used = Math.ceil((Math.min(until.getTime(), this.clock().getTime()) - from.getTime()) / 86_400_000);
          const p = this.prepare(e.entitlementId, EntryKind.UNFREEZE, this.clock(), {
            status: EntitlementStatus.ACTIVE,
            frozenUntilTime: null,
            frozenDays: e.frozenDays + Math.max(0, used),
          }, 'entitlement_unfrozen', req.idempotencyKey);
          await p.publish();
          return create(UnfreezeResponseSchema, { entitlement: this.get(e.entitlementId), entry: p.entry });
        }),
    });
  }

  private enterGrace(ctx: HandlerContext, req: EnterGraceRequest): Promise<EnterGraceResponse> {
    return this.idempotent(ctx, 'EnterGrace', req.idempotencyKey, req.entitlementId, { instant: req.expiryTime, graceEnd: req.graceEndTime }, async (e) => {
      const expiry = timestampDate(req.expiryTime!);
      // As the ledger judges it: for a custom rule a manager's date is a floor, a later expiry is not stale.
      const recorded = e.expiryTime ? timestampDate(e.expiryTime).getTime() : undefined;
      const custom = e.terms?.terms?.expiry?.customRule !== undefined;
      const stale = recorded !== undefined && (custom ? expiry.getTime() < recorded : expiry.getTime() !== recorded);
      if (e.status !== EntitlementStatus.ACTIVE || stale) return create(EnterGraceResponseSchema, { entitlement: e });
      if (e.terms?.terms?.expiry?.mode !== ExpiryMode.SOFT) throw new ConnectError('HARD expiry has no grace', Code.FailedPrecondition);
      const p = this.prepare(e.entitlementId, EntryKind.GRACE, this.clock(), {
        status: EntitlementStatus.IN_GRACE,
        expiryTime: expiry,
        graceEndTime: timestampDate(req.graceEndTime!),
      }, 'grace_started', req.idempotencyKey);
      await p.publish();
      return create(EnterGraceResponseSchema, { entitlement: this.get(e.entitlementId), entry: p.entry });
    });
  }

  private expire(ctx: HandlerContext, req: ExpireRequest): Promise<ExpireResponse> {
    return this.idempotent(ctx, 'Expire', req.idempotencyKey, req.entitlementId, { instant: req.dueTime }, async (e) => {
      const due = timestampDate(req.dueTime!);
      const closed = [EntitlementStatus.EXPIRED, EntitlementStatus.EXHAUSTED, EntitlementStatus.REFUNDED, EntitlementStatus.TRANSFERRED, EntitlementStatus.UPGRADED].includes(e.status);
      const end = e.graceEndTime ?? e.expiryTime;
      if (closed || (end && due < timestampDate(end))) return create(ExpireResponseSchema, { entitlement: e });
      const p = this.prepare(e.entitlementId, EntryKind.EXPIRE, this.clock(), { status: EntitlementStatus.EXPIRED, remaining: 0, frozenUntilTime: null }, 'entitlement_expired', req.idempotencyKey);
      await p.publish();
      return create(ExpireResponseSchema, { entitlement: this.get(e.entitlementId), entry: p.entry });
    });
  }

  /**
   * As the real ledger's key claim does, a call whose key is being applied waits for that call and
   * then replays it (a crashed scheduler's request can still be running when its successor re-calls).
   */
  private async idempotent<R>(
    ctx: HandlerContext,
    method: LedgerCall['method'],
    key: string,
    entitlementId: string,
    detail: CallDetail,
    run: (e: Entitlement) => Promise<R>,
  ): Promise<R> {
    const earlier = this.applying.get(key);
    const mine = (async () => {
      if (earlier) await earlier.catch(() => undefined);
      return this.applyOnce(ctx, method, key, entitlementId, detail, run);
    })();
    this.applying.set(key, mine);
    try {
      return await mine;
    } finally {
      if (this.applying.get(key) === mine) this.applying.delete(key);
    }
  }

  private async applyOnce<R>(
    ctx: HandlerContext,
    method: LedgerCall['method'],
    key: string,
    entitlementId: string,
    detail: CallDetail,
    run: (e: Entitlement) => Promise<R>,
  ): Promise<R> {
    const claims = claimsOf(ctx.requestHeader.get('authorization'));
    const replay = this.responses.has(key);
    const call: LedgerCall = {
      method,
      idempotencyKey: key,
      entitlementId,
      tenantId: claims.tenant_id ?? '',
      roles: claims.roles ?? [],
      replay,
      ...(detail.instant ? { instant: timestampDate(detail.instant) } : {}),
      ...(detail.graceEnd ? { graceEndTime: timestampDate(detail.graceEnd) } : {}),
    };
    this.calls.push(call);
    await this.onCall?.(call);
    if (!key) throw new ConnectError('idempotency_key: is required', Code.InvalidArgument);
    if (!(claims.roles ?? []).includes('system')) throw new ConnectError('needs role system', Code.PermissionDenied);
    if (this.failures && this.failures.count > 0) {
      this.failures.count -= 1;
      throw new ConnectError('the ledger is having a moment', this.failures.code);
    }
    if (replay) return this.responses.get(key) as R;
    const e = this.get(entitlementId);
    if (e.tenantId !== claims.tenant_id) throw new ConnectError(`entitlement ${entitlementId} not found`, Code.NotFound);
    const response = await run(e);
    this.responses.set(key, response);
    return response;
  }
}

/** The JWT's claims, unverified: the fake trusts the token and only records who it names. */
function claimsOf(authorization: string | null): { tenant_id?: string; roles?: string[] } {
  const token = authorization?.replace(/^Bearer /i, '') ?? '';
  const payload = token.split('.')[1];
  if (!payload) return {};
  try {
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { tenant_id?: string; roles?: string[] };
  } catch {
    return {};
  }
}
