import { randomUUID } from 'node:crypto';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { ExpiryAnchor, ExpiryMode, Feature, SessionOrder } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { EntitlementStatus, EntryKind, LedgerService, VisitState, type LedgerEntry } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { spentRowsLeftAfter } from '@punchcard/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishVisitCompleted, readLedgerEvents } from './support/bus.js';
import { ALL_FEATURES, definitionTerms } from './support/ledger-db.js';
import { startLedger, type LedgerHarness, type Who } from './support/service.js';

const DAY = 86_400_000;
let h: LedgerHarness;
const A = randomUUID();
const B = randomUUID();
const staffA: Who = { tenantId: A, roles: ['staff'], subject: 'front-desk-1' };
const managerA: Who = { tenantId: A, roles: ['manager'], subject: 'manager-1' };
const schedulerA: Who = { tenantId: A, roles: ['system'], subject: 'expiry-scheduler' };
const staffB: Who = { tenantId: B, roles: ['staff'], subject: 'b-desk' };
let a: Client<typeof LedgerService>;

beforeAll(async () => {
  h = await startLedger('ledgersvc');
  const ids: string[] = [];
  for (const tenantId of [A, B]) {
    ids.push(await h.feed.tenant(tenantId, tenantId === A ? ALL_FEATURES : [Feature.MANUAL_DEDUCTION]));
    ids.push(await h.feed.branch(tenantId, 'b1'), await h.feed.branch(tenantId, 'b2'));
    ids.push(await h.feed.definition(tenantId, 'ten', 1, definitionTerms()));
  }
  ids.push(
    await h.feed.definition(A, 'soft', 1, definitionTerms({ paidSessions: 2, bonusSessions: 1, sessionOrder: SessionOrder.BONUS_FIRST, branches: { allBranches: true }, expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 30, mode: ExpiryMode.SOFT, graceDays: 7, maxFreezeDays: 14, freezeExtendsExpiry: true } })),
    await h.feed.definition(A, 'short', 1, definitionTerms({ paidSessions: 5, expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 10 } })),
    await h.feed.definition(A, 'massage', 1, definitionTerms({ paidSessions: 5, serviceCodes: ['MASSAGE'], expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 5 } })),
    await h.feed.definition(A, 'promo', 1, definitionTerms({ paidSessions: 5, redemptionPriority: -1, expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 60 } })),
  );
  await h.settled(...ids);
  a = await h.client(staffA);
});
afterAll(async () => h?.close());

async function buy(client: Client<typeof LedgerService>, memberId: string, definitionId = 'ten', branchId = 'b1') {
  const r = await client.purchase({ idempotencyKey: randomUUID(), memberId, definitionId, branchId, paymentReference: `pay-${memberId}` });
  return r.entitlement!;
}

async function connectError(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error('expected the call to fail');
}

describe('clients speaking JSON', () => {
  it('get whole answers (first and replayed) from Purchase, Consume alone and grouped, Reverse and ExpireBatch, over Connect and gRPC-Web', async () => {
    const binary = await h.client(staffA);
    const started = h.clock.now;
    try {
      for (const protocol of ['connect', 'grpc-web'] as const) {
        const json = await h.client(staffA, protocol);
        const purchase = { idempotencyKey: randomUUID(), memberId: `json-${protocol}`, definitionId: 'short', branchId: 'b1', paymentReference: 'json' };
        const bought = await json.purchase(purchase);
        const id = bought.entitlement!.entitlementId;
        expect(bought.entitlement).toEqual((await binary.getEntitlement({ entitlementId: id })).entitlement);
        expect(bought.entry).toMatchObject({ kind: EntryKind.PURCHASE, entitlementId: id });
        expect(await json.purchase(purchase)).toEqual(bought);

        const consume = { idempotencyKey: randomUUID(), entitlementId: id, branchId: 'b1' };
        const consumed = await json.consume(consume);
        expect(consumed).toMatchObject({ entitlement: { remaining: 4, version: 2n }, entry: { kind: EntryKind.CONSUME, sessionsDelta: -1 } });
        expect(await json.consume(consume)).toEqual(consumed);
        const visit = await json.consume({ idempotencyKey: randomUUID(), entitlementId: id, branchId: 'b1', visitId: `visit-${randomUUID()}` });
        expect(visit).toMatchObject({ entitlement: { remaining: 3 }, entry: { kind: EntryKind.CONSUME } });
        const reversed = await json.reverse({ idempotencyKey: randomUUID(), entryId: consumed.entry!.entryId, reason: 'booked by mistake' });
        expect(reversed).toMatchObject({ entitlement: { remaining: 4 }, entry: { kind: EntryKind.REVERSAL } });

        h.clock.now = new Date(started.getTime() + 11 * DAY);
        const scheduler = await h.client(schedulerA, protocol);
        const item = { call: { case: 'expire' as const, value: { idempotencyKey: randomUUID(), entitlementId: id, dueTime: bought.entitlement!.expiryTime, reason: 'time up' } } };
        const batch = await scheduler.expireBatch({ items: [item] });
        expect(batch.results[0]!.result).toMatchObject({ case: 'expire', value: { entitlement: { status: EntitlementStatus.EXPIRED }, entry: { kind: EntryKind.EXPIRE, sessionsDelta: -4 } } });
        h.clock.now = started;
      }
    } finally {
      h.clock.now = started;
    }
  });
});

describe('no overdraft', () => {
  it('200 concurrent consumes (stock gRPC clients) on a 10-session entitlement: exactly 10 succeed, the rest ResourceExhausted', async () => {
    const e = await buy(a, 'race');
    const { client, token } = await h.grpc(staffA);
    const results = await Promise.all(
      Array.from({ length: 200 }, () =>
        client
          .call('consume', { idempotencyKey: randomUUID(), entitlementId: e.entitlementId, branchId: 'b1' }, { token })
          .then(() => 'ok', (err: { code: number }) => err.code),
      ),
    );
    expect(results.filter((r) => r === 'ok')).toHaveLength(10);
    expect(results.filter((r) => r === GrpcStatus.RESOURCE_EXHAUSTED)).toHaveLength(190);
    const after = (await a.getEntitlement({ entitlementId: e.entitlementId })).entitlement!;
    expect(after).toMatchObject({ remaining: 0, paidRemaining: 0, status: EntitlementStatus.EXHAUSTED, version: 11n });
    const history = await a.listEntries({ entitlementId: e.entitlementId, pageSize: 100 });
    expect(history.entries.reduce((sum, x) => sum + x.sessionsDelta, 0)).toBe(0);
  });
});

describe('idempotency', () => {
  it('a repeated key returns the first result and changes nothing', async () => {
    const e = await buy(a, 'idem');
    const request = { idempotencyKey: randomUUID(), entitlementId: e.entitlementId, branchId: 'b1', reason: 'visit' };
    const first = await a.consume(request);
    h.clock.now = new Date(h.clock.now.getTime() + 60_000);
    const again = await a.consume(request);
    expect(again).toEqual(first);
    const { client, token } = await h.grpc(staffA);
    const overGrpc = await client.call('consume', request, { token });
    expect(overGrpc.entry!.entryId).toBe(first.entry!.entryId);
    const after = (await a.getEntitlement({ entitlementId: e.entitlementId })).entitlement!;
    expect(after).toMatchObject({ remaining: 9, version: 2n });
    // The answer is sent as the bytes its event carries (stored terms); decoded, the same entitlement.
    expect(first.entitlement).toEqual(after);

    const purchaseKey = randomUUID();
    const bought = await a.purchase({ idempotencyKey: purchaseKey, memberId: 'idem', definitionId: 'ten', branchId: 'b1' });
    const rebought = await a.purchase({ idempotencyKey: purchaseKey, memberId: 'idem', definitionId: 'ten', branchId: 'b1' });
    expect(rebought.entitlement!.entitlementId).toBe(bought.entitlement!.entitlementId);
    expect((await a.listEntitlements({ memberId: 'idem' })).entitlements).toHaveLength(2);
  });

  it('the same key with a different request, or no key, is InvalidArgument on idempotency_key', async () => {
    const e = await buy(a, 'idem-2');
    const key = randomUUID();
    await a.consume({ idempotencyKey: key, entitlementId: e.entitlementId, branchId: 'b1' });
    const reused = await connectError(a.consume({ idempotencyKey: key, entitlementId: e.entitlementId, branchId: 'b2' }));
    expect(reused.code).toBe(Code.InvalidArgument);
    expect(reused.rawMessage).toMatch(/^idempotency_key/);
    const missing = await connectError(a.consume({ entitlementId: e.entitlementId, branchId: 'b1' }));
    expect(missing.code).toBe(Code.InvalidArgument);
    expect(missing.rawMessage).toMatch(/idempotency_key is required/);
  });
});

describe('reversal', () => {
  it('restores exactly one session and cannot be applied twice', async () => {
    const e = await buy(a, 'rev', 'soft');
    const c = await a.consume({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, branchId: 'b1' });
    expect(c.entry).toMatchObject({ paidDelta: 0, bonusDelta: -1 });
    const r = await a.reverse({ idempotencyKey: randomUUID(), entryId: c.entry!.entryId, reason: 'wrong member' });
    expect(r.entry).toMatchObject({ kind: EntryKind.REVERSAL, sessionsDelta: 1, bonusDelta: 1, reversesEntryId: c.entry!.entryId, reason: 'wrong member' });
    expect(r.entitlement).toMatchObject({ remaining: 3, bonusRemaining: 1, version: 3n });
    const twice = await connectError(a.reverse({ idempotencyKey: randomUUID(), entryId: c.entry!.entryId, reason: 'again' }));
    expect(twice.code).toBe(Code.FailedPrecondition);
    expect(twice.rawMessage).toMatch(/already reversed/);
    const notConsume = await connectError(a.reverse({ idempotencyKey: randomUUID(), entryId: r.entry!.entryId, reason: 'x' }));
    expect(notConsume.code).toBe(Code.InvalidArgument);
    expect((await a.getEntitlement({ entitlementId: e.entitlementId })).entitlement!.remaining).toBe(3);
  });
});

describe('the ledger picks', () => {
  it('eligible, then priority, then soonest expiry (FEFO), then oldest', async () => {
    const member = `fefo-${randomUUID()}`;
    const longer = await buy(a, member, 'ten'); // 90 days
    const sooner = await buy(a, member, 'short'); // 10 days
    await buy(a, member, 'massage'); // 5 days, other service
    const pick = () => a.consume({ idempotencyKey: randomUUID(), memberId: member, serviceCode: 'PHYSIO', branchId: 'b1' });
    expect((await pick()).entitlement!.entitlementId).toBe(sooner.entitlementId);
    const promo = await buy(a, member, 'promo'); // 60 days but priority -1
    expect((await pick()).entitlement!.entitlementId).toBe(promo.entitlementId);
    for (let i = 0; i < 4; i++) await pick();
    // promo exhausted; sooner (10 days) still has sessions and expires first.
    expect((await pick()).entitlement!.entitlementId).toBe(sooner.entitlementId);
    expect((await a.getEntitlement({ entitlementId: longer.entitlementId })).entitlement!.remaining).toBe(10);
  });

  it('explains why nothing could be consumed', async () => {
    const member = `none-${randomUUID()}`;
    const none = await connectError(a.consume({ idempotencyKey: randomUUID(), memberId: member, serviceCode: 'PHYSIO', branchId: 'b1' }));
    expect(none.code).toBe(Code.FailedPrecondition);
    expect(none.rawMessage).toMatch(/has no entitlement covering service code PHYSIO/);
    const e = await buy(a, member, 'ten', 'b1');
    const other = await connectError(a.consume({ idempotencyKey: randomUUID(), memberId: member, serviceCode: 'PHYSIO', branchId: 'b2' }));
    expect(other.rawMessage).toMatch(new RegExp(`entitlement ${e.entitlementId} is not usable at branch b2`));
    const missing = await connectError(a.consume({ idempotencyKey: randomUUID(), memberId: member, branchId: 'b1' }));
    expect(missing.code).toBe(Code.InvalidArgument);
    expect(missing.rawMessage).toBe('service_code: is required');
  });
});

describe('tenant isolation', () => {
  it('tenant B can neither read nor change tenant A\'s entitlements', async () => {
    const e = await buy(a, 'sealed');
    const c = await a.consume({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, branchId: 'b1' });
    const b = await h.client(staffB);
    for (const call of [
      () => b.getEntitlement({ entitlementId: e.entitlementId }),
      () => b.listEntries({ entitlementId: e.entitlementId }),
      () => b.consume({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, branchId: 'b1' }),
      () => b.reverse({ idempotencyKey: randomUUID(), entryId: c.entry!.entryId, reason: 'steal' }),
      () => b.freeze({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, untilTime: timestampFromDate(new Date(h.clock.now.getTime() + DAY)) }),
    ]) {
      expect((await connectError(call())).code).toBe(Code.NotFound);
    }
    expect((await b.listEntitlements({ memberId: 'sealed' })).entitlements).toEqual([]);
    const picked = await connectError(b.consume({ idempotencyKey: randomUUID(), memberId: 'sealed', serviceCode: 'PHYSIO', branchId: 'b1' }));
    expect(picked.code).toBe(Code.FailedPrecondition);
    // The same idempotency key in two tenants is two requests.
    const key = randomUUID();
    await a.consume({ idempotencyKey: key, entitlementId: e.entitlementId, branchId: 'b1' });
    expect((await connectError(b.consume({ idempotencyKey: key, entitlementId: e.entitlementId, branchId: 'b1' }))).code).toBe(Code.NotFound);
    expect((await a.getEntitlement({ entitlementId: e.entitlementId })).entitlement!.remaining).toBe(8);
  });
});

describe('history and lifecycle', () => {
  it('lists every movement with actor and reason, paginated', async () => {
    const e = await buy(a, 'history', 'soft');
    const m = await h.client(managerA);
    const s = await h.client(schedulerA);
    const start = h.clock.now;
    const at = (days: number) => timestampFromDate(new Date(start.getTime() + days * DAY));
    await a.consume({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, branchId: 'b2', reason: 'adjustment', occurredTime: at(0) });
    const frozen = await a.freeze({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, untilTime: at(5), reason: 'travel' });
    expect(frozen.entitlement!.expiryTime!.seconds - e.expiryTime!.seconds).toBe(BigInt(5 * 86_400));
    h.clock.now = new Date(start.getTime() + 2 * DAY);
    const thawed = await a.unfreeze({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, reason: 'back early' });
    expect(thawed.entitlement).toMatchObject({ status: EntitlementStatus.ACTIVE, frozenDays: 2 });
    expect((await connectError(a.extend({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, extendDays: 3, reason: 'x' }))).code).toBe(Code.PermissionDenied);
    const noReason = await connectError(m.extend({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, extendDays: 3 }));
    expect(noReason.rawMessage).toBe('reason: is required for an extension');
    const extended = await m.extend({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, extendDays: 3, reason: 'goodwill' });
    const expiry = extended.entitlement!.expiryTime!;
    h.clock.now = new Date(Number(expiry.seconds) * 1000 + DAY);
    expect((await connectError(a.expire({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, dueTime: expiry }))).code).toBe(Code.PermissionDenied);
    const stale = await s.enterGrace({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, expiryTime: e.expiryTime });
    expect(stale.entry).toBeUndefined();
    const grace = await s.enterGrace({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, expiryTime: expiry });
    expect(grace.entitlement!.status).toBe(EntitlementStatus.IN_GRACE);
    const inGrace = await a.consume({ idempotencyKey: randomUUID(), memberId: 'history', serviceCode: 'PHYSIO', branchId: 'b1' });
    expect(inGrace.entry!.inGrace).toBe(true);
    const early = await s.expire({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, dueTime: expiry });
    expect(early.entry).toBeUndefined();
    h.clock.now = new Date(Number(grace.entitlement!.graceEndTime!.seconds) * 1000);
    const expired = await s.expire({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, dueTime: grace.entitlement!.graceEndTime, reason: 'grace over' });
    expect(expired.entry).toMatchObject({ kind: EntryKind.EXPIRE, sessionsDelta: -1, balanceAfter: 0 });
    const repeat = await s.expire({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, dueTime: grace.entitlement!.graceEndTime });
    expect(repeat.entry).toBeUndefined();

    const all: LedgerEntry[] = [];
    let pageToken = '';
    do {
      const page = await m.listEntries({ entitlementId: e.entitlementId, pageSize: 3, pageToken });
      all.push(...page.entries);
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(all.map((x) => [x.kind, x.sessionsDelta, x.actor!.subject, x.reason, Number(x.entitlementVersion)])).toEqual([
      [EntryKind.PURCHASE, 3, 'front-desk-1', 'purchase', 1],
      [EntryKind.CONSUME, -1, 'front-desk-1', 'adjustment', 2],
      [EntryKind.FREEZE, 0, 'front-desk-1', 'travel', 3],
      [EntryKind.UNFREEZE, 0, 'front-desk-1', 'back early', 4],
      [EntryKind.EXTEND, 0, 'manager-1', 'goodwill', 5],
      [EntryKind.GRACE, 0, 'expiry-scheduler', 'grace period started', 6],
      [EntryKind.CONSUME, -1, 'front-desk-1', 'consume', 7],
      [EntryKind.EXPIRE, -1, 'expiry-scheduler', 'grace over', 8],
    ]);
    expect(all[1]!.actor!.roles).toEqual(['staff']);
    expect(all[1]!.branchId).toBe('b2');
    expect(all.every((x, i) => i === 0 || x.balanceAfter === all[i - 1]!.balanceAfter + x.sessionsDelta)).toBe(true);
    // New entitlements and entries get time-ordered ids (UUIDv7), so the entries' key only grows.
    const millis = (id: string) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
    expect([e.entitlementId, ...all.map((x) => x.entryId)].every((id) => id[14] === '7')).toBe(true);
    expect(all.every((x, i) => i === 0 || millis(x.entryId) >= millis(all[i - 1]!.entryId))).toBe(true);
  });

  it('multi-branch use needs the tenant\'s plan', async () => {
    const b = await h.client(staffB);
    await h.settled(await h.feed.definition(B, 'anywhere', 1, definitionTerms({ branches: { allBranches: true } })));
    const e = await buy(b, 'mb', 'anywhere');
    const err = await connectError(b.consume({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, branchId: 'b2' }));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/needs multi-branch \(ENTERPRISE plan\)/);
  });

  it('a token limited to branches acts only there', async () => {
    const limited = await h.client({ ...staffA, branchIds: ['b1'] });
    const e = await buy(limited, 'limited');
    const err = await connectError(limited.consume({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, branchId: 'b2' }));
    expect(err.code).toBe(Code.PermissionDenied);
  });

  it('a token with an empty branch list acts at no branch (as in the catalogue and revenue)', async () => {
    const none = await h.client({ ...staffA, branchIds: [] });
    const err = await connectError(buy(none, 'nowhere'));
    expect(err.code).toBe(Code.PermissionDenied);
  });
});

describe('auto-deduction and events', () => {
  it('a visit event delivered 5 times consumes once, and the ledger events decode', async () => {
    const e = await buy(a, 'visitor');
    const visitId = `visit-${randomUUID()}`;
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await publishVisitCompleted(h.bus, h.namespace, { tenantId: A, visitId, memberId: 'visitor', occurredTime: h.clock.now }));
    await h.settled(...ids);
    const visit = (await a.getVisit({ visitId })).visit!;
    expect(visit).toMatchObject({ state: VisitState.CONSUMED, entitlementId: e.entitlementId });
    expect((await a.getEntitlement({ entitlementId: e.entitlementId })).entitlement!.remaining).toBe(9);
    const rejected = await a.listVisits({ state: VisitState.REJECTED });
    expect(rejected.visits.every((v) => v.state === VisitState.REJECTED)).toBe(true);

    await h.running.state.events!.relay.flush();
    const mine = (await readLedgerEvents(h.bus, h.namespace, A)).filter((x) => x.data.entitlement!.entitlementId === e.entitlementId);
    expect(mine.map((x) => [x.type, x.entityVersion])).toEqual([
      ['punchcard.ledger.entitlement_purchased', 1],
      ['punchcard.ledger.session_consumed', 2],
    ]);
    expect(mine[1]!.data.entry).toMatchObject({ entryId: visit.entryId, visitId, kind: EntryKind.CONSUME });
  });
});

describe('housekeeping', () => {
  it('deletes applied event ids and idempotency keys past their retention, and keeps fresh ones', async () => {
    const left = await spentRowsLeftAfter(h.running.state.database.db, () => h.running.housekeep());
    expect(left).toEqual({ inbox: ['fresh'], idempotency_keys: ['fresh'] });
  });
});
