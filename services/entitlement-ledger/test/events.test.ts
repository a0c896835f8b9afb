import { randomUUID } from 'node:crypto';
import { connectBus, declareStreams, deleteStreams, type Bus, type ConsumeOutcome } from '@punchcard/bus';
import { Feature } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { EntitlementStatus, EntryKind } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { inTransaction } from '@punchcard/db';
import { testNamespace, testNats } from '@punchcard/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLedgerEvents, type LedgerEvents } from '../src/events/wiring.js';
import { consumeSession, purchasePackage, type Caller } from '../src/operations/ledger.js';
import { getEntitlement, listEntries } from '../src/store/entitlements.js';
import { getVisit } from '../src/store/visits.js';
import {
  CatalogueFeed,
  publishVisitCancelled,
  publishVisitCompleted,
  readLedgerEvents,
  waitFor,
} from './support/bus.js';
import { ALL_FEATURES, BASIC_FEATURES, definitionTerms, ledgerTestDb, type LedgerTestDb } from './support/ledger-db.js';

const ctx = { clock: () => new Date() };
let t: LedgerTestDb;
let bus: Bus;
let namespace: string;
let events: LedgerEvents;
let feed: CatalogueFeed;
const outcomes: ConsumeOutcome[] = [];

const advanced = randomUUID();
const basic = randomUUID();

beforeAll(async () => {
  t = await ledgerTestDb('ledger_events');
  namespace = testNamespace('ledgerev');
  bus = await connectBus({ url: await testNats(), name: 'ledger-events-test' });
  await declareStreams(bus.jsm, { namespace });
  events = await startLedgerEvents({ db: t.db, pool: t.pool, js: bus.js, nc: bus.nc, namespace, clock: ctx.clock, relayPollMs: 100, onOutcome: (o) => outcomes.push(o) });
  feed = new CatalogueFeed(bus, namespace);
  for (const [tenantId, features] of [
    [advanced, ALL_FEATURES],
    [basic, BASIC_FEATURES],
  ] as const) {
    await feed.tenant(tenantId, [...features]);
    await feed.branch(tenantId, 'b1');
    await feed.definition(tenantId, 'd1', 1, definitionTerms({ paidSessions: 3, bonusSessions: 1 }));
  }
  const ids = feed.ids();
  await waitFor('catalogue events applied', async () => ids.every((id) => outcomes.some((o) => o.eventId === id && o.outcome === 'applied')));
});

afterAll(async () => {
  await events?.stop();
  if (bus) {
    await deleteStreams(bus.jsm, namespace);
    await bus.close();
  }
  await t?.drop();
});

function buy(tenantId: string, memberId: string) {
  const caller: Caller = { tenantId, subject: 'pos-1', roles: ['staff'] };
  return inTransaction(t.db, (tx) =>
    purchasePackage(tx, ctx, caller, { memberId, definitionId: 'd1', definitionVersion: 0, branchId: 'b1', paymentReference: 'p' }, randomUUID()),
  );
}

const settled = (eventId: string) =>
  waitFor(`event ${eventId} settled`, async () => outcomes.find((o) => o.eventId === eventId && (o.outcome === 'applied' || o.outcome === 'duplicate')));

describe('auto-deduction from the VISITS stream', () => {
  it('a visit delivered 5 times (new event ids, redeliveries) consumes exactly once', async () => {
    const { entitlement } = await buy(advanced, 'm-five');
    const visitId = `v-${randomUUID()}`;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await publishVisitCompleted(bus, namespace, { tenantId: advanced, visitId, memberId: 'm-five' }));
    // A republish with the same event id is dropped by JetStream's duplicate window.
    await publishVisitCompleted(bus, namespace, { tenantId: advanced, visitId, memberId: 'm-five', eventId: ids[0]! });
    for (const id of ids) await settled(id);
    const after = (await getEntitlement(t.db, advanced, entitlement.entitlementId))!;
    expect(after.paidRemaining + after.bonusRemaining).toBe(3);
    const history = await listEntries(t.db, advanced, entitlement.entitlementId, 0, 50);
    const consumes = history.items.filter((e) => e.kind === 'CONSUME');
    expect(consumes).toHaveLength(1);
    expect(consumes[0]).toMatchObject({ visitId, actor: { subject: 'visits:/booking/test-clinic', roles: ['system'] }, requestId: `visit:${visitId}` });
    expect(await getVisit(t.db, advanced, visitId)).toMatchObject({ state: 'CONSUMED', entryId: consumes[0]!.entryId, source: 'event' });
  });

  it('visit_cancelled reverses that visit\'s consume, once', async () => {
    const { entitlement } = await buy(advanced, 'm-cancel');
    const visitId = `v-${randomUUID()}`;
    await settled(await publishVisitCompleted(bus, namespace, { tenantId: advanced, visitId, memberId: 'm-cancel' }));
    await settled(await publishVisitCancelled(bus, namespace, advanced, visitId));
    await settled(await publishVisitCancelled(bus, namespace, advanced, visitId));
    const history = await listEntries(t.db, advanced, entitlement.entitlementId, 0, 50);
    expect(history.items.map((e) => [e.kind, e.sessionsDelta])).toEqual([
      ['PURCHASE', 4],
      ['CONSUME', -1],
      ['REVERSAL', 1],
    ]);
    expect(history.items[2]).toMatchObject({ reversesEntryId: history.items[1]!.entryId, reason: 'no-show' });
    expect(await getVisit(t.db, advanced, visitId)).toMatchObject({ state: 'REVERSED', reversalEntryId: history.items[2]!.entryId });
  });

  it('a cancellation that arrives first wins: the late visit_completed consumes nothing', async () => {
    const { entitlement } = await buy(advanced, 'm-early-cancel');
    const visitId = `v-${randomUUID()}`;
    await settled(await publishVisitCancelled(bus, namespace, advanced, visitId));
    await settled(await publishVisitCompleted(bus, namespace, { tenantId: advanced, visitId, memberId: 'm-early-cancel' }));
    expect((await getEntitlement(t.db, advanced, entitlement.entitlementId))!.version).toBe(1);
    expect(await getVisit(t.db, advanced, visitId)).toMatchObject({ state: 'CANCELLED' });
  });

  it('one-off visits consume nothing', async () => {
    const { entitlement } = await buy(advanced, 'm-oneoff');
    const visitId = `v-${randomUUID()}`;
    await settled(await publishVisitCompleted(bus, namespace, { tenantId: advanced, visitId, memberId: 'm-oneoff', oneOff: true }));
    expect((await getEntitlement(t.db, advanced, entitlement.entitlementId))!.version).toBe(1);
    expect(await getVisit(t.db, advanced, visitId)).toMatchObject({ state: 'ONE_OFF' });
  });

  it('records refused visits as REJECTED with the reason: BASIC plan, no sessions left', async () => {
    const { entitlement } = await buy(basic, 'm-basic');
    const visitId = `v-${randomUUID()}`;
    await settled(await publishVisitCompleted(bus, namespace, { tenantId: basic, visitId, memberId: 'm-basic' }));
    expect((await getEntitlement(t.db, basic, entitlement.entitlementId))!.version).toBe(1);
    expect(await getVisit(t.db, basic, visitId)).toMatchObject({ state: 'REJECTED', errorCode: 'failed_precondition', reason: expect.stringMatching(/AUTO_DEDUCTION/) });

    const nobody = `v-${randomUUID()}`;
    await settled(await publishVisitCompleted(bus, namespace, { tenantId: advanced, visitId: nobody, memberId: 'm-nobody' }));
    expect(await getVisit(t.db, advanced, nobody)).toMatchObject({ state: 'REJECTED', reason: expect.stringMatching(/no entitlement covering/) });

    // Staff can still deduct a rejected visit by hand, once.
    const staff: Caller = { tenantId: basic, subject: 'front-desk', roles: ['staff'] };
    const manual = () =>
      inTransaction(t.db, (tx) =>
        consumeSession(tx, ctx, staff, { entitlementId: '', memberId: 'm-basic', serviceCode: 'PHYSIO', branchId: 'b1', visitId, reason: 'manual' }, randomUUID()),
      );
    await manual();
    await expect(manual()).rejects.toThrow(/already consumed a session/);
    expect(await getVisit(t.db, basic, visitId)).toMatchObject({ state: 'CONSUMED', source: 'api' });
  });

  it('exhausted packages reject with resource_exhausted', async () => {
    await buy(advanced, 'm-empty');
    for (let i = 0; i < 4; i++) await settled(await publishVisitCompleted(bus, namespace, { tenantId: advanced, visitId: `v-${randomUUID()}`, memberId: 'm-empty' }));
    const fifth = `v-${randomUUID()}`;
    await settled(await publishVisitCompleted(bus, namespace, { tenantId: advanced, visitId: fifth, memberId: 'm-empty' }));
    expect(await getVisit(t.db, advanced, fifth)).toMatchObject({ state: 'REJECTED', errorCode: 'resource_exhausted' });
  });
});

describe('ledger events', () => {
  it('are published in entitlement-version order, with CloudEvents headers, and decode as LedgerEntryRecorded', async () => {
    const { entitlement } = await buy(advanced, 'm-events');
    const visitId = `v-${randomUUID()}`;
    await settled(await publishVisitCompleted(bus, namespace, { tenantId: advanced, visitId, memberId: 'm-events' }));
    await settled(await publishVisitCancelled(bus, namespace, advanced, visitId));
    await events.relay.flush();
    const mine = (await readLedgerEvents(bus, namespace, advanced)).filter((e) => e.data.entitlement?.entitlementId === entitlement.entitlementId);
    expect(mine.map((e) => [e.subject, e.entityVersion])).toEqual([
      [`punchcard.ledger.entitlement_purchased.${advanced}`, 1],
      [`punchcard.ledger.session_consumed.${advanced}`, 2],
      [`punchcard.ledger.consume_reversed.${advanced}`, 3],
    ]);
    const [purchased, consumed, reversed] = mine;
    expect(purchased!.type).toBe('punchcard.ledger.entitlement_purchased');
    expect(purchased!.contentType).toBe('application/protobuf');
    expect(consumed!.id).toBe(consumed!.data.entry!.entryId);
    expect(consumed!.data.entry).toMatchObject({ kind: EntryKind.CONSUME, sessionsDelta: -1, visitId, entitlementVersion: 2n, balanceAfter: 3 });
    expect(consumed!.data.entitlement).toMatchObject({ status: EntitlementStatus.ACTIVE, remaining: 3, version: 2n });
    expect(consumed!.data.entitlement!.terms!.terms!.code).toBe('PHYSIO10');
    expect(reversed!.data.entry!.reversesEntryId).toBe(consumed!.data.entry!.entryId);
  });
});

describe('catalogue read model', () => {
  it('sells only what the ledger has seen published and not retired', async () => {
    const tenantId = randomUUID();
    const caller: Caller = { tenantId, subject: 'pos', roles: ['staff'] };
    const sell = (definitionVersion = 0) =>
      inTransaction(t.db, (tx) =>
        purchasePackage(tx, ctx, caller, { memberId: 'm', definitionId: 'dx', definitionVersion, branchId: 'b1', paymentReference: '' }, randomUUID()),
      );
    await expect(sell()).rejects.toThrow(/tenant .* is not known to the ledger yet/);
    const tenantEvt = await feed.tenant(tenantId, [Feature.MANUAL_DEDUCTION]);
    const branchEvt = await feed.branch(tenantId, 'b1', 'Europe/Berlin');
    await settled(tenantEvt);
    await settled(branchEvt);
    await expect(sell()).rejects.toThrow(/definition dx is not known to the ledger yet/);
    await settled(await feed.definition(tenantId, 'dx', 1, definitionTerms({ paidSessions: 5 })));
    await settled(await feed.definition(tenantId, 'dx', 2, definitionTerms({ paidSessions: 6 })));
    const sold = await sell();
    expect(sold.entitlement).toMatchObject({ definitionVersion: 2, paidSessions: 6, timeZone: 'Europe/Berlin' });
    await expect(sell(1)).rejects.toThrow(/version 1 is superseded by version 2/);
    await expect(sell(3)).rejects.toThrow(/version 3 is not known to the ledger yet \(latest received: version 2\)/);
    await settled(await feed.retire(tenantId, 'dx', 2, definitionTerms()));
    await expect(sell()).rejects.toThrow(/definition dx is retired/);
  });
});
