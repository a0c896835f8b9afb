import { fromBinary } from '@bufbuild/protobuf';
import { DefinitionTermsSchema } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { isUuid, uuidv7 } from '@punchcard/db';
import type { Kysely } from 'kysely';
import { consume, pick, usability, type ConsumeInput } from '../domain/consume.js';
import type { Policies } from '../domain/policies.js';
import { poolRefusal } from '../domain/sharing.js';
import { invalid, notFound, precondition, RuleViolation } from '../domain/errors.js';
import {
  enterGrace,
  expire,
  extend,
  freeze,
  purchase,
  reverse,
  unfreeze,
  type MaybeTransition,
} from '../domain/lifecycle.js';
import { isValidTimeZone } from '../domain/time.js';
import type { TenantFacts, Transition } from '../domain/types.js';
import { insertEntryWithEvent } from '../events/ledger-events.js';
import { featureNames, policiesFromDefinition, rulesFromDefinition } from '../proto/terms.js';
import { definitionVersions, getBranch, getTenant } from '../store/catalogue.js';
import {
  getEntry,
  insertEntitlement,
  lockEntitlement,
  lockEntitlementWithTenant,
  lockOpenForConsumer,
  poolUsage,
  recentClosedForMember,
  entitlementUpdate,
  type Actor,
  type EntitlementRecord,
  type EntryRecord,
} from '../store/entitlements.js';
import type { LedgerDb } from '../store/schema.js';
import { membersOf } from '../store/households.js';
import { claimVisit, lockVisit, updateVisit } from '../store/visits.js';

type Tx = Kysely<LedgerDb>;

/** Who is acting, for which tenant; every query below is scoped to `tenantId`. */
export interface Caller extends Actor {
  tenantId: string;
}

export interface OperationContext {
  clock: () => Date;
  newId?: () => string;
}

export interface Recorded {
  entitlement: EntitlementRecord;
  entry: EntryRecord;
  /** `{ entitlement, entry }` encoded once (see encodeMovement): the entry's event and the RPC's answer. */
  encoded: Uint8Array;
}

export interface MaybeRecorded {
  entitlement: EntitlementRecord;
  entry?: EntryRecord;
}

/** How far in the future a caller-supplied business time may lie (clock skew between systems). */
const MAX_CLOCK_SKEW_MS = 5 * 60_000;

export function requireUuid(field: string, value: string): string {
  if (value === '') throw invalid(field, 'is required');
  if (!isUuid(value)) throw invalid(field, 'must be a UUID');
  return value.toLowerCase();
}

export function requireText(field: string, value: string, max = 200): string {
  if (value.trim() === '') throw invalid(field, 'is required');
  if (value.length > max) throw invalid(field, `must be at most ${max} characters`);
  return value;
}

export function notInFuture(field: string, t: Date | undefined, now: Date): Date {
  if (t === undefined) return now;
  if (Number.isNaN(t.getTime())) throw invalid(field, 'is not a valid time');
  if (t.getTime() > now.getTime() + MAX_CLOCK_SKEW_MS) throw invalid(field, 'must not be in the future');
  return t;
}

export async function tenantFacts(tx: Tx, tenantId: string): Promise<TenantFacts | undefined> {
  const t = await getTenant(tx, tenantId);
  return t && factsOf(tenantId, t.features);
}

export function factsOf(tenantId: string, features: readonly number[]): TenantFacts {
  return { tenantId, features: featureNames(features) };
}

/** Saves a decided transition: the entitlement row, its entry and the entry's event, all in `tx`. */
export async function record(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  requestId: string,
  prev: EntitlementRecord,
  t: Transition,
  now: Date,
  entryId?: string,
): Promise<Recorded> {
  const entitlement: EntitlementRecord = { ...prev, ...t.next };
  const entry = entryRecord(ctx, caller, requestId, entitlement, t, now, entryId);
  const encoded = await insertEntryWithEvent(tx, entitlement, entry, entitlementUpdate(prev, t.next, now));
  return { entitlement, entry, encoded };
}

/** Inserts an entitlement that starts with its first entry (a purchase, a transfer in, an upgrade in). */
export async function recordNew(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  requestId: string,
  entitlement: EntitlementRecord,
  t: Transition,
  now: Date,
  entryId?: string,
): Promise<Recorded> {
  await insertEntitlement(tx, entitlement, now);
  const entry = entryRecord(ctx, caller, requestId, entitlement, t, now, entryId);
  const encoded = await insertEntryWithEvent(tx, entitlement, entry);
  return { entitlement, entry, encoded };
}

export function newId(ctx: OperationContext): string {
  return (ctx.newId ?? uuidv7)();
}

export function entryRecord(ctx: OperationContext, caller: Caller, requestId: string, e: EntitlementRecord, t: Transition, now: Date, entryId?: string): EntryRecord {
  // Led by a key the draft has not, not by the spread: on Node 20's V8 the keys after a leading
  // spread give every object a hidden class of its own, made in the old generation (bench/JOURNAL.md,
  // 7 December from 09:10).
  return {
    currency: e.priceCurrency,
    ...t.entry,
    tenantId: e.tenantId,
    entryId: entryId ?? newId(ctx),
    entitlementId: e.entitlementId,
    memberId: t.entry.memberId ?? e.memberId,
    actor: { subject: caller.subject, roles: [...caller.roles] },
    recordTime: now,
    requestId,
  };
}

async function maybeRecord(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  requestId: string,
  prev: EntitlementRecord,
  t: MaybeTransition,
  now: Date,
): Promise<MaybeRecorded> {
  return 'noop' in t ? { entitlement: prev } : record(tx, ctx, caller, requestId, prev, t, now);
}

export async function locked(tx: Tx, caller: Caller, entitlementId: string): Promise<EntitlementRecord> {
  const id = requireUuid('entitlement_id', entitlementId);
  const e = await lockEntitlement(tx, caller.tenantId, id);
  if (!e) throw notFound('entitlement', id);
  return e;
}

export interface PurchaseRequest {
  memberId: string;
  definitionId: string;
  /** 0 = the current version. */
  definitionVersion: number;
  branchId: string;
  paymentReference: string;
  purchaseTime?: Date;
}

/**
 * Sells a package, pinned to a definition version the ledger learnt from catalogue events. Only the
 * current, unretired version is sold: the catalogue is the source of truth for what is on sale, the
 * ledger's copy may lag behind it, and a lagging copy refuses rather than sells stale terms.
 */
export async function purchasePackage(tx: Tx, ctx: OperationContext, caller: Caller, req: PurchaseRequest, requestId: string): Promise<Recorded> {
  const now = ctx.clock();
  const memberId = requireText('member_id', req.memberId);
  const definitionId = requireText('definition_id', req.definitionId);
  const branchId = requireText('branch_id', req.branchId);
  if (req.definitionVersion < 0) throw invalid('definition_version', 'must be 0 (current) or a version number');
  if (req.paymentReference.length > 200) throw invalid('payment_reference', 'must be at most 200 characters');
  const purchaseTime = notInFuture('purchase_time', req.purchaseTime, now);

  const tenant = await getTenant(tx, caller.tenantId);
  if (!tenant) throw precondition(`tenant ${caller.tenantId} is not known to the ledger yet (no catalogue.tenant_changed received)`);
  const branch = await getBranch(tx, caller.tenantId, branchId);
  if (!branch) throw precondition(`branch ${branchId} is not known to the ledger yet (no catalogue.branch_changed received)`);
  if (!branch.active) throw precondition(`branch ${branchId} is inactive`);
  if (!isValidTimeZone(branch.timeZone)) throw precondition(`branch ${branchId} has an unknown time zone ${branch.timeZone}`);

  const versions = await definitionVersions(tx, caller.tenantId, definitionId);
  const latest = versions[0];
  if (!latest) {
    throw precondition(`definition ${definitionId} is not known to the ledger yet (no catalogue.definition_published received)`);
  }
  const chosen = req.definitionVersion === 0 ? latest : versions.find((v) => v.version === req.definitionVersion);
  if (!chosen) {
    throw precondition(
      `definition ${definitionId} version ${req.definitionVersion} is not known to the ledger yet (latest received: version ${latest.version})`,
    );
  }
  if (chosen.retired) throw precondition(`definition ${definitionId} is retired; it can no longer be sold`);
  if (chosen.version !== latest.version) {
    throw precondition(`definition ${definitionId} version ${chosen.version} is superseded by version ${latest.version}; sell the current version`);
  }

  const terms = fromBinary(DefinitionTermsSchema, chosen.terms);
  const t = purchase({
    tenantId: caller.tenantId,
    entitlementId: newId(ctx),
    memberId,
    definitionId,
    definitionVersion: chosen.version,
    terms: rulesFromDefinition(terms),
    timeZone: branch.timeZone,
    branchId,
    paidSessions: terms.paidSessions,
    bonusSessions: terms.bonusSessions,
    purchaseTime,
  });
  const entitlement: EntitlementRecord = {
    ...t.next,
    termsBytes: chosen.terms,
    priceCurrency: terms.price?.currencyCode || tenant.defaultCurrency,
    priceMinor: terms.price?.amountMinor ?? 0n,
    paymentReference: req.paymentReference,
  };
  return recordNew(tx, ctx, caller, requestId, entitlement, t, now);
}

export interface ConsumeRequest {
  /** Empty = the ledger picks among the member's entitlements. */
  entitlementId: string;
  memberId: string;
  serviceCode: string;
  branchId: string;
  occurredTime?: Date;
  visitId: string;
  reason: string;
  /** The caller already claimed the visit id (the visit consumer does, to record rejections). */
  visitClaimed?: boolean;
}

/** A consume request's fields checked before anything is locked; throws naming the field. */
export function checkConsume(req: ConsumeRequest, now: Date): { branchId: string; occurredTime: Date } {
  const branchId = requireText('branch_id', req.branchId);
  if (req.entitlementId === '') {
    requireText('member_id', req.memberId);
    requireText('service_code', req.serviceCode);
  }
  if (req.reason.length > 500) throw invalid('reason', 'must be at most 500 characters');
  return { branchId, occurredTime: notInFuture('occurred_time', req.occurredTime, now) };
}

/**
 * Consumes one session under row locks: the named entitlement's, or all the member's open ones in
 * id order when the ledger picks (so concurrent consumes cannot overdraw or deadlock). A visit id
 * is claimed first: one consume per (tenant, visit id) whichever path reports it.
 */
export async function consumeSession(tx: Tx, ctx: OperationContext, caller: Caller, req: ConsumeRequest, requestId: string): Promise<Recorded> {
  const now = ctx.clock();
  const { branchId, occurredTime } = checkConsume(req, now);

  if (req.visitId !== '' && !req.visitClaimed) {
    requireText('visit_id', req.visitId);
    const existing = await claimVisit(
      tx,
      {
        tenantId: caller.tenantId,
        visitId: req.visitId,
        // Provisional until the consume below succeeds; a failure rolls the claim back with it.
        state: 'CONSUMED',
        source: 'api',
        memberId: req.memberId,
        serviceCode: req.serviceCode,
        branchId,
        occurredTime,
        entitlementId: null,
        entryId: null,
        reversalEntryId: null,
        reason: '',
        errorCode: '',
      },
      now,
    );
    if (existing && existing.state !== 'REJECTED') {
      throw precondition(
        existing.state === 'CONSUMED'
          ? `visit ${req.visitId} already consumed a session (entry ${existing.entryId})`
          : `visit ${req.visitId} is ${existing.state.toLowerCase().replace('_', '-')}; it cannot consume a session`,
      );
    }
  }

  let target: EntitlementRecord;
  let tenant: TenantFacts;
  let memberId = req.memberId;
  if (req.entitlementId !== '') {
    const id = requireUuid('entitlement_id', req.entitlementId);
    const found = await lockEntitlementWithTenant(tx, caller.tenantId, id);
    if (!found) throw notFound('entitlement', id);
    target = found.entitlement;
    // A tenant the ledger has not heard of yet has no features.
    tenant = factsOf(caller.tenantId, found.tenantFeatures ?? []);
    if (memberId !== '' && memberId !== target.memberId) {
      // Someone else's package: only through the household pool it is shared with.
      const refusal = await poolCheck(tx, target, memberId, tenant);
      if (refusal) throw refusal;
    } else {
      memberId = target.memberId;
    }
  } else {
    tenant = (await tenantFacts(tx, caller.tenantId)) ?? factsOf(caller.tenantId, []);
    const input = consumeInput(req, memberId, branchId, occurredTime);
    const open = await lockOpenForConsumer(tx, caller.tenantId, memberId, tenant.features.has('SHARING'));
    const own = open.filter((e) => e.memberId === memberId);
    const pools: EntitlementRecord[] = [];
    const refusedPools: { e: EntitlementRecord; violation: RuleViolation }[] = [];
    for (const e of open.filter((x) => x.memberId !== memberId)) {
      const violation = await poolCheck(tx, e, memberId, tenant);
      if (violation) refusedPools.push({ e, violation });
      else pools.push(e);
    }
    // The member's own packages first; household pools when none of them can be used.
    const ownUsable = own.some((e) => usability(e, input, tenant).ok);
    try {
      target = pick(ownUsable ? own : [...own, ...pools], input, tenant) as EntitlementRecord;
    } catch (err) {
      if (!(err instanceof RuleViolation)) throw err;
      const capped = refusedPools.find(({ e }) => usability(e, input, tenant).ok);
      if (capped) throw capped.violation;
      // Nothing usable: let closed packages (expired, refunded …) explain it if they fit better.
      const closed = await recentClosedForMember(tx, caller.tenantId, memberId);
      pick([...own, ...pools, ...closed], input, tenant);
      throw err;
    }
  }
  const t = consume(target, consumeInput(req, memberId, branchId, occurredTime), tenant);
  const result = await record(tx, ctx, caller, requestId, target, t, now);
  if (req.visitId !== '') {
    await updateVisit(
      tx,
      caller.tenantId,
      req.visitId,
      {
        state: 'CONSUMED',
        source: req.visitClaimed ? 'event' : 'api',
        memberId,
        serviceCode: req.serviceCode,
        branchId,
        occurredTime,
        entitlementId: result.entitlement.entitlementId,
        entryId: result.entry.entryId,
        reason: '',
        errorCode: '',
      },
      now,
    );
  }
  return result;
}

/**
 * Why `memberId` may not consume from `e` through its household pool (undefined = allowed). Runs
 * under the entitlement's row lock, so the usage it counts cannot change before the consume commits.
 */
async function poolCheck(tx: Tx, e: EntitlementRecord, memberId: string, tenant: TenantFacts): Promise<RuleViolation | undefined> {
  if (e.householdId === null) return poolRefusal(e, policiesOf(e), memberId, { member: false, holder: false }, new Map(), tenant);
  const members = await membersOf(tx, e.tenantId, e.householdId, [memberId, e.memberId]);
  const usage = await poolUsage(tx, e.tenantId, e.entitlementId);
  return poolRefusal(e, policiesOf(e), memberId, { member: members.has(memberId), holder: members.has(e.memberId) }, usage, tenant);
}

/** The policies of the definition version the entitlement was sold on. */
export function policiesOf(e: EntitlementRecord): Policies {
  return policiesFromDefinition(fromBinary(DefinitionTermsSchema, e.termsBytes), e.priceCurrency);
}

export function consumeInput(req: ConsumeRequest, memberId: string, branchId: string, occurredTime: Date): ConsumeInput {
  return {
    memberId,
    branchId,
    serviceCode: req.serviceCode,
    occurredTime,
    reason: req.reason === '' ? (req.visitId ? 'visit' : 'consume') : req.reason,
    ...(req.visitId ? { visitId: req.visitId } : {}),
  };
}

/** Reverses one CONSUME entry, restoring exactly its session; a second reversal is refused. */
export async function reverseConsume(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  req: { entryId: string; reason: string },
  requestId: string,
): Promise<Recorded> {
  const now = ctx.clock();
  const entryId = requireUuid('entry_id', req.entryId);
  const reason = requireText('reason', req.reason, 500);
  const first = await getEntry(tx, caller.tenantId, entryId);
  if (!first) throw notFound('entry', entryId);
  // Lock order everywhere: visit, then entitlement (a visit's cancellation takes them in that order too).
  const visit = first.visitId ? await lockVisit(tx, caller.tenantId, first.visitId) : undefined;
  const target = await lockEntitlement(tx, caller.tenantId, first.entitlementId);
  if (!target) throw notFound('entitlement', first.entitlementId);
  // Read again under the entitlement's lock: a concurrent reversal has committed or not by now.
  const consumed = (await getEntry(tx, caller.tenantId, entryId))!;
  const t = reverse(target, consumed, reason, now);
  const result = await record(tx, ctx, caller, requestId, target, t, now);
  if (visit && visit.entryId === consumed.entryId) {
    await updateVisit(tx, caller.tenantId, visit.visitId, { state: 'REVERSED', reversalEntryId: result.entry.entryId }, now);
  }
  return result;
}

export async function freezeEntitlement(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  req: { entitlementId: string; untilTime?: Date; reason: string },
  requestId: string,
): Promise<Recorded> {
  const now = ctx.clock();
  if (!req.untilTime) throw invalid('until_time', 'is required');
  const e = await locked(tx, caller, req.entitlementId);
  return record(tx, ctx, caller, requestId, e, freeze(e, req.untilTime, req.reason || 'freeze', now), now);
}

export async function unfreezeEntitlement(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  req: { entitlementId: string; reason: string },
  requestId: string,
): Promise<Recorded> {
  const now = ctx.clock();
  const e = await locked(tx, caller, req.entitlementId);
  return record(tx, ctx, caller, requestId, e, unfreeze(e, req.reason || 'unfreeze', now), now);
}

export async function extendEntitlement(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  req: { entitlementId: string; newExpiryTime?: Date; extendDays: number; reason: string },
  requestId: string,
): Promise<Recorded> {
  const now = ctx.clock();
  const e = await locked(tx, caller, req.entitlementId);
  const t = extend(
    e,
    {
      reason: req.reason,
      ...(req.newExpiryTime ? { newExpiryTime: req.newExpiryTime } : {}),
      ...(req.extendDays !== 0 ? { extendDays: req.extendDays } : {}),
    },
    now,
  );
  return record(tx, ctx, caller, requestId, e, t, now);
}

export async function enterGracePeriod(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  req: { entitlementId: string; expiryTime?: Date; graceEndTime?: Date },
  requestId: string,
): Promise<MaybeRecorded> {
  const now = ctx.clock();
  if (!req.expiryTime) throw invalid('expiry_time', 'is required');
  const e = await locked(tx, caller, req.entitlementId);
  return maybeRecord(tx, ctx, caller, requestId, e, enterGrace(e, req.expiryTime, req.graceEndTime, now), now);
}

export async function expireEntitlement(
  tx: Tx,
  ctx: OperationContext,
  caller: Caller,
  req: { entitlementId: string; dueTime?: Date; reason: string },
  requestId: string,
): Promise<MaybeRecorded> {
  const now = ctx.clock();
  if (!req.dueTime) throw invalid('due_time', 'is required');
  const e = await locked(tx, caller, req.entitlementId);
  return maybeRecord(tx, ctx, caller, requestId, e, expire(e, req.dueTime, req.reason, now), now);
}
