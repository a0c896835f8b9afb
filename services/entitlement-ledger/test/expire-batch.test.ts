import { randomBytes, randomUUID } from 'node:crypto';
import { create, fromBinary, toJson, type JsonValue } from '@bufbuild/protobuf';
import { timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type Client } from '@connectrpc/connect';
import { streamName, withNamespace } from '@punchcard/bus';
import { ExpiryAnchor, ExpiryMode, Feature } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { LedgerEntryRecordedSchema } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import {
  EnterGraceResponseSchema,
  EntitlementStatus,
  EntryKind,
  ExpireResponseSchema,
  LedgerService,
  type Entitlement,
  type ExpireBatchItem,
  type ExpireBatchResult,
  type ExpireResponse,
} from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { readStream } from '@punchcard/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './support/bus.js';
import { ALL_FEATURES, definitionTerms } from './support/ledger-db.js';
import { failure, startLedger, type LedgerHarness, type Who } from './support/service.js';

const DAY = 86_400_000;
let h: LedgerHarness;
const A = randomUUID();
const B = randomUUID();
const staff: Who = { tenantId: A, roles: ['staff'], subject: 'front-desk' };
const manager: Who = { tenantId: A, roles: ['manager'], subject: 'manager' };
const scheduler: Who = { tenantId: A, roles: ['system'], subject: 'expiry-scheduler' };
let desk: Client<typeof LedgerService>;
let boss: Client<typeof LedgerService>;
let sys: Client<typeof LedgerService>;

beforeAll(async () => {
  h = await startLedger('ledgerbatch');
  const ids: string[] = [];
  for (const tenantId of [A, B]) {
    ids.push(await h.feed.tenant(tenantId, tenantId === A ? ALL_FEATURES : [Feature.MANUAL_DEDUCTION]), await h.feed.branch(tenantId, 'b1'));
    ids.push(await h.feed.definition(tenantId, 'hard', 1, definitionTerms({ paidSessions: 3, expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 10, mode: ExpiryMode.HARD, maxFreezeDays: 90 } })));
  }
  ids.push(
    await h.feed.definition(A, 'soft', 1, definitionTerms({ paidSessions: 2, bonusSessions: 1, expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 10, mode: ExpiryMode.SOFT, graceDays: 5 } })),
    await h.feed.definition(A, 'custom', 1, definitionTerms({ paidSessions: 3, expiry: { mode: ExpiryMode.HARD, customRule: { kind: { case: 'daysAfterPurchase', value: 30 } } } })),
  );
  await h.settled(...ids);
  [desk, boss, sys] = await Promise.all([h.client(staff), h.client(manager), h.client(scheduler)]);
});
afterAll(async () => h?.close());

async function buy(definitionId: string, client = desk): Promise<Entitlement> {
  const r = await client.purchase({ idempotencyKey: randomUUID(), memberId: `m-${definitionId}`, definitionId, branchId: 'b1', paymentReference: 'pay' });
  return r.entitlement!;
}

const at = (t: Date): Timestamp => timestampFromDate(t);
const tracedBy = (traceId: string) => ({ headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } });

/** A batch item's answer as JSON, or the error of the single call. */
type Answer = { case: 'expire' | 'enterGrace'; value: JsonValue } | { case: 'error'; code: Code; message: string };

function answerOf(r: ExpireBatchResult): Answer {
  const x = r.result;
  if (x.case === 'expire') return { case: 'expire', value: toJson(ExpireResponseSchema, x.value) };
  if (x.case === 'enterGrace') return { case: 'enterGrace', value: toJson(EnterGraceResponseSchema, x.value) };
  if (x.case === 'error') return { case: 'error', code: x.value.code, message: x.value.message };
  throw new Error('a result without an answer');
}

/** Replaces each twin's own ids (entitlements, entries, keys) with labels, so twins compare equal. */
function normalised(value: unknown, labels: Map<string, string>): unknown {
  let text = JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  for (const [id, label] of labels) text = text.replaceAll(id, label);
  text = text.replace(/"entryId":"[0-9a-f-]{36}"/g, '"entryId":"<entry>"');
  return JSON.parse(text);
}

interface Twin {
  labels: Map<string, string>;
  items: ExpireBatchItem[];
}

/**
 * The same situation built twice, entitlement for entitlement: packages due to expire or enter grace,
 * in grace past its end, extended since (stale), frozen, exhausted, already expired, HARD asked for
 * grace, a due time in the future, a custom rule, an unknown id and another tenant's package.
 */
async function twin(later: Date): Promise<Twin> {
  const labels = new Map<string, string>();
  const label = (id: string, name: string) => {
    labels.set(id, name);
    return id;
  };
  const start = h.clock.now;
  const hardDue = await buy('hard');
  const softDue = await buy('soft');
  const softGraceOver = await buy('soft');
  const stale = await buy('hard');
  const frozen = await buy('hard');
  const exhausted = await buy('hard');
  const expired = await buy('hard');
  const hardGrace = await buy('hard');
  const future = await buy('hard');
  const custom = await buy('custom');
  const other = await buy('hard', await h.client({ tenantId: B, roles: ['staff'] }));
  const unknown = randomUUID();
  await boss.extend({ idempotencyKey: randomUUID(), entitlementId: stale.entitlementId, extendDays: 100, reason: 'goodwill' });
  await desk.freeze({ idempotencyKey: randomUUID(), entitlementId: frozen.entitlementId, untilTime: at(new Date(start.getTime() + 60 * DAY)), reason: 'travel' });
  for (let i = 0; i < 3; i++) await desk.consume({ idempotencyKey: randomUUID(), entitlementId: exhausted.entitlementId, branchId: 'b1' });
  h.clock.now = new Date(start.getTime() + 12 * DAY);
  await sys.enterGrace({ idempotencyKey: randomUUID(), entitlementId: softGraceOver.entitlementId, expiryTime: softGraceOver.expiryTime });
  const graceOver = (await desk.getEntitlement({ entitlementId: softGraceOver.entitlementId })).entitlement!;
  await sys.expire({ idempotencyKey: randomUUID(), entitlementId: expired.entitlementId, dueTime: expired.expiryTime, reason: 'time up' });
  h.clock.now = later;
  const expire = (e: string, name: string, dueTime: Timestamp | undefined, reason = ''): ExpireBatchItem =>
    ({ call: { case: 'expire', value: { idempotencyKey: label(`key-${name}-${randomUUID()}`, `key-${name}`), entitlementId: label(e, name), dueTime, reason } } }) as ExpireBatchItem;
  const grace = (e: string, name: string, expiryTime: Timestamp | undefined): ExpireBatchItem =>
    ({ call: { case: 'enterGrace', value: { idempotencyKey: label(`key-${name}-${randomUUID()}`, `key-${name}`), entitlementId: label(e, name), expiryTime } } }) as ExpireBatchItem;
  return {
    labels,
    items: [
      expire(hardDue.entitlementId, 'hard-due', hardDue.expiryTime, 'expiry due'),
      grace(softDue.entitlementId, 'soft-due', softDue.expiryTime),
      expire(softGraceOver.entitlementId, 'soft-grace-over', graceOver.graceEndTime),
      expire(stale.entitlementId, 'stale', stale.expiryTime),
      expire(frozen.entitlementId, 'frozen', frozen.expiryTime),
      expire(exhausted.entitlementId, 'exhausted', exhausted.expiryTime),
      expire(expired.entitlementId, 'expired', expired.expiryTime),
      grace(hardGrace.entitlementId, 'hard-grace', hardGrace.expiryTime),
      expire(future.entitlementId, 'future', at(new Date(later.getTime() + DAY))),
      expire(custom.entitlementId, 'custom', at(new Date(later.getTime() - 60_000)), 'rule says so'),
      expire(unknown, 'unknown', hardDue.expiryTime),
      expire(other.entitlementId, 'other-tenant', other.expiryTime),
    ],
  };
}

/** Each item as its own Expire / EnterGrace call. */
async function singly(items: ExpireBatchItem[], traceId: string): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (const item of items) {
    try {
      if (item.call.case === 'expire') answers.push({ case: 'expire', value: toJson(ExpireResponseSchema, await sys.expire(item.call.value, tracedBy(traceId))) });
      else if (item.call.case === 'enterGrace') answers.push({ case: 'enterGrace', value: toJson(EnterGraceResponseSchema, await sys.enterGrace(item.call.value, tracedBy(traceId))) });
    } catch (err) {
      const e = ConnectError.from(err);
      answers.push({ case: 'error', code: e.code, message: e.rawMessage });
    }
  }
  return answers;
}

/** The ledger events the twin's items caused (their entries carry the items' keys as request ids). */
async function eventsOf(t: Twin) {
  const messages = await readStream(h.bus.nc, streamName(h.namespace, 'LEDGER'), withNamespace(h.namespace, `punchcard.ledger.*.${A}`));
  return messages
    .map((m) => ({
      subject: m.subject.slice(h.namespace.length + 1),
      version: m.headers?.get('ce-entityversion'),
      traceparent: m.headers?.get('traceparent') ?? '',
      data: fromBinary(LedgerEntryRecordedSchema, m.data),
    }))
    .filter((e) => t.labels.has(e.data.entry?.requestId ?? ''))
    .sort((x, y) => (t.labels.get(x.data.entry!.entitlementId)! < t.labels.get(y.data.entry!.entitlementId)! ? -1 : 1));
}

describe('ExpireBatch', () => {
  it('answers every item as its single call does, on a mix of states, with the same entries and events', async () => {
    const base = new Date('2025-03-01T02:00:00Z');
    h.clock.now = base;
    const later = new Date(base.getTime() + 40 * DAY);
    const single = await twin(later);
    h.clock.now = base;
    const batched = await twin(later);

    const singleTrace = randomBytes(16).toString('hex');
    const batchTrace = randomBytes(16).toString('hex');
    const one = await singly(single.items, singleTrace);
    const batch = await sys.expireBatch({ items: batched.items }, tracedBy(batchTrace));
    expect(batch.results).toHaveLength(batched.items.length);
    const many = batch.results.map(answerOf);
    expect(normalised(many, batched.labels)).toEqual(normalised(one, single.labels));

    // The mix is what it claims to be.
    const kinds = many.map((a) => (a.case === 'error' ? Code[a.code] : (a.value as { entry?: { kind: string } }).entry?.kind ?? 'no entry'));
    expect(kinds).toEqual([
      'ENTRY_KIND_EXPIRE',
      'ENTRY_KIND_GRACE',
      'ENTRY_KIND_EXPIRE',
      'no entry',
      expect.any(String),
      expect.any(String),
      'no entry',
      'FailedPrecondition',
      'InvalidArgument',
      'ENTRY_KIND_EXPIRE',
      'NotFound',
      'NotFound',
    ]);
    expect(many[8]).toMatchObject({ message: expect.stringMatching(/^due_time: .* is in the future$/) });

    await waitFor('the events of both', async () => (await eventsOf(batched)).length >= 4 && (await eventsOf(single)).length >= 4);
    const [singleEvents, batchEvents] = [await eventsOf(single), await eventsOf(batched)];
    const shape = (events: typeof batchEvents, t: Twin) =>
      normalised(
        events.map((e) => ({ subject: e.subject, version: e.version, data: toJson(LedgerEntryRecordedSchema, e.data) })),
        t.labels,
      );
    expect(batchEvents.map((e) => e.subject)).toEqual(expect.arrayContaining([`punchcard.ledger.entitlement_expired.${A}`, `punchcard.ledger.grace_started.${A}`]));
    expect(shape(batchEvents, batched)).toEqual(shape(singleEvents, single));
    // The events continue the caller's trace, as the single calls' do.
    expect(batchEvents.every((e) => e.traceparent.includes(batchTrace))).toBe(true);
    expect(singleEvents.every((e) => e.traceparent.includes(singleTrace))).toBe(true);
  });

  it('is idempotent per item: a repeat answers the same and changes nothing; keys are shared with the single calls', async () => {
    h.clock.now = new Date('2025-06-01T00:00:00Z');
    const [x, y, z, w] = [await buy('hard'), await buy('hard'), await buy('hard'), await buy('hard')];
    h.clock.now = new Date('2025-07-01T00:00:00Z');
    const item = (e: Entitlement, key: string = randomUUID()): ExpireBatchItem =>
      ({ call: { case: 'expire', value: { idempotencyKey: key, entitlementId: e.entitlementId, dueTime: e.expiryTime, reason: '' } } }) as ExpireBatchItem;
    const first = await sys.expireBatch({ items: [item(x), item(y)] });
    expect(first.results.map((r) => r.result.case)).toEqual(['expire', 'expire']);
    h.clock.now = new Date('2025-07-02T00:00:00Z');
    const again = await sys.expireBatch({ items: [item(x, keyOf(first, 0, x)), item(y, keyOf(first, 1, y))] });
    expect(again).toEqual(first);
    // Without the entitlements: the same answers, entries only.
    const slim = await sys.expireBatch({ items: [item(x, keyOf(first, 0, x)), item(y, keyOf(first, 1, y))], omitEntitlements: true });
    expect(slim.results.map((r) => r.result.value)).toEqual(first.results.map((r) => create(ExpireResponseSchema, { entry: (r.result.value as ExpireResponse).entry })));
    for (const e of [x, y]) {
      const entries = (await desk.listEntries({ entitlementId: e.entitlementId })).entries;
      expect(entries.map((n) => n.kind)).toEqual([EntryKind.PURCHASE, EntryKind.EXPIRE]);
    }

    // A key first used by a single Expire answers the same in a batch, and the other way round.
    const singleKey = randomUUID();
    const alone = await sys.expire({ idempotencyKey: singleKey, entitlementId: z.entitlementId, dueTime: z.expiryTime, reason: '' });
    const inBatch = await sys.expireBatch({ items: [item(z, singleKey)] });
    expect(inBatch.results[0]!.result).toEqual({ case: 'expire', value: alone });
    const fromBatch = await sys.expire({ idempotencyKey: keyOf(first, 0, x), entitlementId: x.entitlementId, dueTime: x.expiryTime, reason: '' });
    expect(fromBatch).toEqual(first.results[0]!.result.value);

    // A key reused for another request is that item's refusal, as Expire's; the rest of the batch goes on.
    const mixed = await sys.expireBatch({
      items: [
        { call: { case: 'expire', value: { idempotencyKey: singleKey, entitlementId: z.entitlementId, dueTime: z.expiryTime, reason: 'other reason' } } } as ExpireBatchItem,
        item(w),
      ],
      omitEntitlements: true,
    });
    const single = await failure(sys.expire({ idempotencyKey: singleKey, entitlementId: z.entitlementId, dueTime: z.expiryTime, reason: 'other reason' }));
    expect(mixed.results[0]!.result).toMatchObject({ case: 'error', value: { code: Code.InvalidArgument, message: single.rawMessage } });
    expect(single.rawMessage).toMatch(/^idempotency_key/);
    expect(mixed.results[1]!.result).toMatchObject({ case: 'expire', value: { entry: { kind: EntryKind.EXPIRE, entitlementId: w.entitlementId } } });
    expect((mixed.results[1]!.result.value as ExpireResponse).entitlement).toBeUndefined();
  });

  it('a refused item keeps no key: asked again once it can apply, it applies', async () => {
    h.clock.now = new Date('2025-08-01T00:00:00Z');
    const e = await buy('hard');
    const key = randomUUID();
    const request = { items: [{ call: { case: 'expire', value: { idempotencyKey: key, entitlementId: e.entitlementId, dueTime: e.expiryTime, reason: '' } } } as ExpireBatchItem] };
    const early = await sys.expireBatch(request);
    expect(early.results[0]!.result).toMatchObject({ case: 'error', value: { code: Code.InvalidArgument } });
    h.clock.now = new Date('2025-09-01T00:00:00Z');
    const due = await sys.expireBatch(request);
    expect(due.results[0]!.result.case).toBe('expire');
    expect((due.results[0]!.result.value as { entry?: unknown }).entry).toBeDefined();
  });

  it('refuses a malformed batch as a whole, naming the item and field; only the scheduler may call it', async () => {
    const e = await buy('hard');
    const ok = (key: string = randomUUID(), id: string = e.entitlementId): ExpireBatchItem =>
      ({ call: { case: 'expire', value: { idempotencyKey: key, entitlementId: id, dueTime: e.expiryTime, reason: '' } } }) as ExpireBatchItem;
    const cases: [ExpireBatchItem[], string][] = [
      [[], 'items: is required'],
      [[ok(), ok('', randomUUID())], 'items[1].expire.idempotency_key: is required'],
      [[ok(), ok(randomUUID(), 'not-a-uuid')], 'items[1].expire.entitlement_id: must be a UUID'],
      [[ok(), ok()], "items[1].expire.entitlement_id: is items[0]'s too; one item per entitlement"],
      [[ok('k'), ok('k', randomUUID())], "items[1].expire.idempotency_key: is items[0]'s too"],
      [[ok(), { call: { case: 'enterGrace', value: { idempotencyKey: 'g', entitlementId: randomUUID() } } } as ExpireBatchItem], 'items[1].enter_grace.expiry_time: is required'],
      [[ok(), { call: { case: 'expire', value: { idempotencyKey: 'd', entitlementId: randomUUID() } } } as ExpireBatchItem], 'items[1].expire.due_time: is required'],
      [[{ call: { case: undefined } } as ExpireBatchItem], 'items[0]: sets neither expire nor enter_grace'],
      [Array.from({ length: 1001 }, () => ok(randomUUID(), randomUUID())), 'items: must hold at most 1000 items'],
    ];
    for (const [items, message] of cases) {
      const err = await failure(sys.expireBatch({ items }));
      expect([err.code, err.rawMessage]).toEqual([Code.InvalidArgument, message]);
    }
    expect((await failure(desk.expireBatch({ items: [ok()] }))).code).toBe(Code.PermissionDenied);
    expect((await desk.getEntitlement({ entitlementId: e.entitlementId })).entitlement!.version).toBe(1n);
  });

  it('racing consumes never overdraw: each package ends expired with its entries summing to zero', async () => {
    h.clock.now = new Date('2025-10-01T00:00:00Z');
    const packages = await Promise.all(Array.from({ length: 40 }, () => buy('custom')));
    const dueTime = at(new Date(h.clock.now.getTime() - 60_000));
    const items = packages.map((e) => ({ call: { case: 'expire', value: { idempotencyKey: randomUUID(), entitlementId: e.entitlementId, dueTime, reason: '' } } }) as ExpireBatchItem);
    const consumes = packages.flatMap((e) =>
      Array.from({ length: 4 }, () =>
        desk.consume({ idempotencyKey: randomUUID(), entitlementId: e.entitlementId, branchId: 'b1' }).then(
          () => 'ok',
          (err: unknown) => Code[ConnectError.from(err).code],
        ),
      ),
    );
    const [batch, outcomes] = await Promise.all([
      Promise.all([sys.expireBatch({ items: items.slice(0, 20) }), sys.expireBatch({ items: items.slice(20) })]),
      Promise.all(consumes),
    ]);
    expect(batch.flatMap((b) => b.results.map((r) => r.result.case))).toEqual(Array(40).fill('expire'));
    expect(new Set(outcomes)).toEqual(new Set(outcomes.filter((o) => ['ok', 'FailedPrecondition', 'ResourceExhausted'].includes(o))));
    let consumed = 0;
    for (const e of packages) {
      const after = (await desk.getEntitlement({ entitlementId: e.entitlementId })).entitlement!;
      expect(after).toMatchObject({ status: EntitlementStatus.EXPIRED, remaining: 0 });
      const entries = (await desk.listEntries({ entitlementId: e.entitlementId })).entries;
      expect(entries.reduce((s, n) => s + n.sessionsDelta, 0)).toBe(0);
      const uses = entries.filter((n) => n.kind === EntryKind.CONSUME).length;
      expect(uses).toBeLessThanOrEqual(3);
      expect(entries.find((n) => n.kind === EntryKind.EXPIRE)!.sessionsDelta).toBe(uses - 3);
      consumed += uses;
    }
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(consumed);
  });
});

function keyOf(batch: { results: ExpireBatchResult[] }, i: number, e: Entitlement): string {
  const r = batch.results[i]!.result;
  if (r.case !== 'expire' || r.value.entry?.entitlementId !== e.entitlementId) throw new Error(`item ${i} did not expire ${e.entitlementId}`);
  return r.value.entry.requestId;
}
