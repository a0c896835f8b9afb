import { randomBytes, randomUUID } from 'node:crypto';
import { fromBinary, toJson } from '@bufbuild/protobuf';
import { timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import { streamName, withNamespace } from '@punchcard/bus';
import { ExpiryAnchor, ExpiryMode, Feature } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { LedgerEntryRecordedSchema } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { ConsumeResponseSchema, LedgerEntrySchema } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStream } from '@punchcard/testing';
import { NON_ENTRY_EVENTS } from '../src/events/ledger-events.js';
import { waitFor } from './support/bus.js';
import { ALL_FEATURES, definitionTerms } from './support/ledger-db.js';
import { startLedger, type LedgerHarness, type Who } from './support/service.js';

const DAY = 86_400_000;
const START = new Date('2025-03-01T02:00:00Z');
const A = randomUUID();
const B = randomUUID();
const staff: Who = { tenantId: A, roles: ['staff'], subject: 'front-desk' };
interface ConsumeInit {
  idempotencyKey: string;
  entitlementId: string;
  branchId: string;
  memberId?: string;
  serviceCode?: string;
  reason?: string;
  occurredTime?: Timestamp;
}

/** The same ledger twice: consumes grouped one transaction at a time, and every consume in a transaction of its own. */
let grouped: LedgerHarness;
let alone: LedgerHarness;

async function feed(h: LedgerHarness): Promise<void> {
  const ids: string[] = [];
  for (const tenantId of [A, B]) {
    ids.push(await h.feed.tenant(tenantId, tenantId === A ? ALL_FEATURES : [Feature.MANUAL_DEDUCTION]));
    ids.push(await h.feed.branch(tenantId, 'b1'), await h.feed.branch(tenantId, 'b2'));
    ids.push(await h.feed.definition(tenantId, 'ten', 1, definitionTerms({ expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 90, mode: ExpiryMode.HARD, maxFreezeDays: 30 } })));
  }
  ids.push(
    await h.feed.definition(A, 'one', 1, definitionTerms({ paidSessions: 1 })),
    await h.feed.definition(A, 'family', 1, definitionTerms({ sharing: { householdPool: true, perMemberSessionCap: 3 } })),
  );
  await h.settled(...ids);
}

beforeAll(async () => {
  [grouped, alone] = await Promise.all([
    startLedger('ledgergroups', START, { LEDGER_CONSUME_GROUPS: '1', LEDGER_CONSUME_GROUP_MAX: '8' }),
    startLedger('ledgeralone', START, { LEDGER_CONSUME_GROUPS: '0' }),
  ]);
  await Promise.all([feed(grouped), feed(alone)]);
});
afterAll(async () => Promise.all([grouped?.close(), alone?.close()]));

/** What a consume answered: the response as JSON, or the error's code and message. */
type Answer = { ok: unknown } | { code: string; message: string };

/** Ids and keys named by label, so the same situation built in two ledgers compares equal. */
function normalised(value: unknown, labels: Map<string, string>): unknown {
  let text = JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  for (const [id, label] of labels) text = text.replaceAll(id, label);
  text = text.replace(/"(entryId|requestId)":"[0-9a-f-]{36}"/g, '"$1":"<$1>"').replace(/entry [0-9a-f-]{36}/g, 'entry <entry>');
  return JSON.parse(text);
}

interface Situation {
  labels: Map<string, string>;
  requests: ConsumeInit[];
  /** The trace id each request is sent with. */
  traces: string[];
  /** The keys of the requests that make an entry. */
  made: string[];
  entitlements: string[];
}

/**
 * Packages in every state a consume meets, then one burst of consumes at them: plain ones, one
 * package consumed twice, exhausted, frozen, the wrong branch, another member through the household
 * pool (allowed) and a stranger (refused), an unknown id, another tenant's package, a repeat of a
 * request answered before, a key reused for another request, the same request twice in the burst,
 * and bad input.
 */
async function situation(h: LedgerHarness): Promise<Situation> {
  h.clock.now = START;
  const labels = new Map<string, string>();
  const label = (id: string, name: string) => (labels.set(id, name), id);
  const desk = await h.client(staff);
  const buy = async (name: string, definitionId = 'ten', memberId = 'member', client = desk) => {
    const r = await client.purchase({ idempotencyKey: randomUUID(), memberId, definitionId, branchId: 'b1', paymentReference: name });
    return label(r.entitlement!.entitlementId, name);
  };
  const key = (name: string) => label(`${name}-${randomUUID()}`, `key-${name}`);
  const plain = [await buy('plain-0'), await buy('plain-1'), await buy('plain-2')];
  const twice = await buy('twice');
  const exhausted = await buy('exhausted', 'one');
  await desk.consume({ idempotencyKey: key('use-up'), entitlementId: exhausted, branchId: 'b1' });
  const frozen = await buy('frozen');
  await desk.freeze({ idempotencyKey: randomUUID(), entitlementId: frozen, untilTime: timestampFromDate(new Date(START.getTime() + 20 * DAY)), reason: 'travel' });
  const elsewhere = await buy('elsewhere');
  const pooled = await buy('pooled', 'family', 'holder');
  const guarded = await buy('guarded', 'family', 'holder');
  const household = await desk.createHousehold({ idempotencyKey: randomUUID(), name: 'family', ownerMemberId: 'holder', memberIds: ['kid'] });
  const householdId = label(household.household!.householdId, 'household');
  for (const e of [pooled, guarded]) await desk.shareEntitlement({ idempotencyKey: randomUUID(), entitlementId: e, householdId });
  const theirs = await buy('theirs', 'ten', 'member', await h.client({ tenantId: B, roles: ['staff'] }));
  const repeated = await buy('repeated');
  const repeat: ConsumeInit = { idempotencyKey: key('repeat'), entitlementId: repeated, branchId: 'b1', reason: 'first visit' };
  await desk.consume(repeat);
  const reused = await buy('reused');
  const reusedKey = key('reused');
  await desk.consume({ idempotencyKey: reusedKey, entitlementId: reused, branchId: 'b1' });
  const doubled = await buy('doubled');
  const doubledKey = key('doubled');
  const unknown = label(randomUUID(), 'unknown');

  h.clock.now = new Date(START.getTime() + 2 * DAY);
  const named = (name: string, entitlementId: string, more: Partial<ConsumeInit> = {}): ConsumeInit => ({ idempotencyKey: key(name), entitlementId, branchId: 'b1', ...more });
  const requests: ConsumeInit[] = [
    named('plain-0', plain[0]!),
    named('plain-1', plain[1]!, { reason: 'physio', serviceCode: 'PHYSIO' }),
    named('plain-2', plain[2]!, { memberId: 'member', occurredTime: timestampFromDate(new Date(START.getTime() + DAY)) }),
    named('twice', twice),
    named('twice', twice),
    named('exhausted', exhausted),
    named('frozen', frozen),
    named('elsewhere', elsewhere, { branchId: 'b2' }),
    named('pooled', pooled, { memberId: 'kid' }),
    named('guarded', guarded, { memberId: 'stranger' }),
    named('theirs', theirs),
    named('unknown', unknown),
    repeat,
    { ...named('reused', reused), idempotencyKey: reusedKey, reason: 'another request' },
    { ...named('doubled', doubled), idempotencyKey: doubledKey },
    { ...named('doubled', doubled), idempotencyKey: doubledKey },
    named('no-branch', plain[0]!, { branchId: '' }),
    named('bad-id', 'not-a-uuid'),
    { ...named('no-key', plain[1]!), idempotencyKey: '' },
    named('future', plain[1]!, { occurredTime: timestampFromDate(new Date(START.getTime() + 3 * DAY)) }),
  ];
  const made = [0, 1, 2, 3, 4, 8, 14].map((i) => requests[i]!.idempotencyKey);
  return { labels, requests, made, traces: requests.map(() => randomBytes(16).toString('hex')), entitlements: [...plain, twice, exhausted, frozen, elsewhere, pooled, guarded, repeated, reused, doubled] };
}

/** Sends the burst at once (the grouped ledger gathers what arrives while its one transaction runs). */
async function burst(h: LedgerHarness, s: Situation): Promise<Answer[]> {
  const desk = await h.client(staff);
  return Promise.all(
    s.requests.map((r, i) =>
      desk.consume(r, { headers: { traceparent: `00-${s.traces[i]}-${randomBytes(8).toString('hex')}-01` } }).then(
        (ok): Answer => ({ ok: toJson(ConsumeResponseSchema, ok) }),
        (err: unknown): Answer => {
          const e = ConnectError.from(err);
          return { code: Code[e.code], message: e.rawMessage };
        },
      ),
    ),
  );
}

/** Every entry of the situation's packages, in order per package. */
async function entriesOf(h: LedgerHarness, s: Situation) {
  const desk = await h.client(staff);
  const all = [];
  for (const entitlementId of s.entitlements) {
    const entries = (await desk.listEntries({ entitlementId })).entries;
    all.push(entries.map((e) => toJson(LedgerEntrySchema, e)));
  }
  return all;
}

/** The grouped transactions so far, committed and failed, and the consumes the committed ones held. */
async function groupSizes(h: LedgerHarness): Promise<{ committed: number; failed: number; grouped: number }> {
  const text = await (await fetch(`${h.running.opsUrl}/metrics`)).text();
  const value = (series: string, outcome: string) =>
    Number(text.split('\n').find((l) => l.startsWith(`punchcard_ledger_consume_group_size_${series}{`) && l.includes(`outcome="${outcome}"`))?.split(' ')[1] ?? 0);
  return { committed: value('count', 'committed'), failed: value('count', 'failed'), grouped: value('sum', 'committed') };
}

describe('grouped consumes', () => {
  it('answer as consumes in transactions of their own, with the same entries and events, each event in its request trace', async () => {
    const before = await groupSizes(grouped);
    const [g, a] = [await situation(grouped), await situation(alone)];
    const [groupedAnswers, aloneAnswers] = [await burst(grouped, g), await burst(alone, a)];

    // The two consumes of one package (their keys share a label) run one after the other, in either order: compare them as a set.
    const comparable = (answers: Answer[], s: Situation) => {
      const n = normalised(answers, s.labels) as unknown[];
      return [...n.slice(0, 3), ...[n[3], n[4]].map((x) => JSON.stringify(x)).sort(), ...n.slice(5)];
    };
    expect(comparable(groupedAnswers, g)).toEqual(comparable(aloneAnswers, a));

    // The burst is the mix it claims to be.
    const outcome = (x: Answer) => ('ok' in x ? 'ok' : x.code);
    expect(groupedAnswers.map(outcome)).toEqual([
      'ok',
      'ok',
      'ok',
      'ok',
      'ok',
      'ResourceExhausted',
      'FailedPrecondition',
      'FailedPrecondition',
      'ok',
      'FailedPrecondition',
      'NotFound',
      'NotFound',
      'ok',
      'InvalidArgument',
      'ok',
      'ok',
      'InvalidArgument',
      'InvalidArgument',
      'InvalidArgument',
      'InvalidArgument',
    ]);
    expect(groupedAnswers[14]).toEqual(groupedAnswers[15]);
    expect(groupedAnswers.slice(16).map((x) => ('message' in x ? x.message.split(/[: ]/)[0] : ''))).toEqual(['branch_id', 'entitlement_id', 'idempotency_key', 'occurred_time']);

    // Transactions were shared, and none failed.
    const after = await groupSizes(grouped);
    expect(after.failed).toBe(before.failed);
    expect(after.grouped - before.grouped).toBeGreaterThan(after.committed - before.committed);

    expect(normalised(await entriesOf(grouped, g), g.labels)).toEqual(normalised(await entriesOf(alone, a), a.labels));

    const [groupedEvents, aloneEvents] = [await burstEvents(grouped, g), await burstEvents(alone, a)];
    const shape = (events: typeof groupedEvents, s: Situation) =>
      (normalised(events.map((e) => ({ subject: e.subject, version: e.version, data: toJson(LedgerEntryRecordedSchema, e.data) })), s.labels) as unknown[])
        .map((x) => JSON.stringify(x))
        .sort();
    expect(shape(groupedEvents, g)).toEqual(shape(aloneEvents, a));
    expect(groupedEvents).toHaveLength(7);
    // Each event continues the trace of the request that made it.
    for (const e of groupedEvents) {
      const i = g.requests.findIndex((r) => r.idempotencyKey === e.data.entry!.requestId);
      expect(e.traceparent).toContain(g.traces[i]!);
    }
  });

  it('a grouped transaction held up by a row lock holds the other consumes back only until it counts as stalled', async () => {
    const h = await startLedger('ledgerstall', START, { LEDGER_CONSUME_GROUPS: '2', LEDGER_CONSUME_GROUP_STALL_MS: '20' });
    try {
      await feed(h);
      const desk = await h.client(staff);
      const [held, ...free] = await Promise.all(
        Array.from({ length: 4 }, async (_, i) => (await desk.purchase({ idempotencyKey: randomUUID(), memberId: `m${i}`, definitionId: 'ten', branchId: 'b1', paymentReference: 'p' })).entitlement!.entitlementId),
      );
      const db = h.running.state.database.db;
      let blocked: Promise<{ entitlement?: { remaining: number } }> | undefined;
      // Another transaction holds the first package's row (as a transfer or a refund would) while consumes arrive.
      await db.transaction().execute(async (tx) => {
        await sql`select 1 from entitlements where entitlement_id = ${held} for update`.execute(tx);
        blocked = desk.consume({ idempotencyKey: randomUUID(), entitlementId: held!, branchId: 'b1' });
        await waitFor('the consume of the held package to wait for its row', async () => {
          const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`.execute(tx);
          return rows[0]!.n > 0;
        });
        const others = Promise.all(free.map((entitlementId) => desk.consume({ idempotencyKey: randomUUID(), entitlementId, branchId: 'b1' })));
        const outcome = await Promise.race([others.then((r) => r.map((x) => x.entitlement!.remaining)), new Promise((r) => setTimeout(() => r('still waiting'), 10_000))]);
        expect(outcome).toEqual([9, 9, 9]);
        expect(await Promise.race([blocked.then(() => 'answered'), new Promise((r) => setTimeout(() => r('waiting'), 50))])).toBe('waiting');
      });
      expect((await blocked!).entitlement!.remaining).toBe(9);
    } finally {
      await h.close();
    }
  });

  it('a grouped transaction that fails is applied one consume at a time: every consume lands once', async () => {
    const db = grouped.running.state.database.db;
    const desk = await grouped.client(staff);
    grouped.clock.now = START;
    const packages = await Promise.all(
      Array.from({ length: 24 }, async (_, i) => (await desk.purchase({ idempotencyKey: randomUUID(), memberId: `m${i}`, definitionId: 'ten', branchId: 'b1', paymentReference: 'p' })).entitlement!.entitlementId),
    );
    // Postgres refuses any statement that inserts more than one entry: every group of two or more fails.
    await sql`
      create function refuse_grouped_entries() returns trigger language plpgsql as $$
      begin
        if (select count(*) from inserted) > 1 then raise exception 'refused: % entries in one statement', (select count(*) from inserted); end if;
        return null;
      end $$`.execute(db);
    await sql`create trigger refuse_grouped_entries after insert on entries referencing new table as inserted for each statement execute function refuse_grouped_entries()`.execute(db);
    try {
      const before = await groupSizes(grouped);
      const answers = await Promise.all(packages.map((entitlementId) => desk.consume({ idempotencyKey: randomUUID(), entitlementId, branchId: 'b1' })));
      expect(answers.map((r) => r.entitlement!.remaining)).toEqual(Array(24).fill(9));
      expect((await groupSizes(grouped)).failed).toBeGreaterThan(before.failed);
    } finally {
      await sql`drop trigger refuse_grouped_entries on entries`.execute(db);
      await sql`drop function refuse_grouped_entries()`.execute(db);
    }
    for (const entitlementId of packages) {
      const entries = (await desk.listEntries({ entitlementId })).entries;
      expect(entries.map((e) => e.sessionsDelta)).toEqual([10, -1]);
    }
  });
});

/** The burst's consume events (entries made by its requests), with their traceparent. */
async function burstEvents(h: LedgerHarness, s: Situation) {
  return waitFor('the burst events', async () => {
    const events = (await readStream(h.bus.nc, streamName(h.namespace, 'LEDGER'), withNamespace(h.namespace, `punchcard.ledger.*.${A}`)))
      .filter((m) => !(m.subject.split('.').at(-2)! in NON_ENTRY_EVENTS))
      .map((m) => ({ subject: m.subject.slice(h.namespace.length + 1), version: m.headers?.get('ce-entityversion'), traceparent: m.headers?.get('traceparent') ?? '', data: fromBinary(LedgerEntryRecordedSchema, m.data) }))
      .filter((e) => s.made.includes(e.data.entry?.requestId ?? ''));
    return events.length >= s.made.length && events;
  });
}
