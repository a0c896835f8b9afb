import { ExpiryMode } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { Code } from '@connectrpc/connect';
import fc from 'fast-check';
import { sql, type KyselyPlugin, type OperationNode } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { compareDue, type DueCursor } from '../src/domain/schedule.js';
import { sweepDue } from '../src/sweep.js';
import { DAY, newTenantId, TestEnv } from './support/env.js';
import type { LedgerCall } from './support/fake-ledger.js';
import { seedBacklog } from './support/seed.js';

const HOUR = 3_600_000;
let env: TestEnv;

beforeAll(async () => {
  env = await TestEnv.start('2025-01-01T00:00:00Z');
});

afterEach(async () => {
  await env.stopReplicas();
});

afterAll(async () => {
  await env?.close();
});

const hard = { anchor: 1, durationDays: 30, mode: ExpiryMode.HARD };

async function timerStates(tenantId: string): Promise<Record<string, number>> {
  const rows = await env.db.db
    .selectFrom('timers')
    .select(['state', (eb) => eb.fn.countAll<bigint>().as('n')])
    .where('tenant_id', '=', tenantId)
    .groupBy('state')
    .execute();
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
}

/** Each idempotency key applied exactly once at the ledger (replays of the same key aside). */
function appliedOnce(calls: LedgerCall[]): Map<string, number> {
  const applied = new Map<string, number>();
  for (const c of calls) if (!c.replay) applied.set(c.idempotencyKey, (applied.get(c.idempotencyKey) ?? 0) + 1);
  return applied;
}

const callsOf = (tenantId: string) => env.ledger.calls.filter((c) => c.tenantId === tenantId);

describe('catch-up after downtime', () => {
  it('fires overdue timers in due order, grace before expiry, logging progress', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-01-01T00:00:00Z');
    await seedBacklog(env, {
      tenantId,
      count: 100,
      firstExpiry: new Date('2025-02-01T00:00:00Z'),
      stepMs: HOUR,
      policy: { ...hard, mode: ExpiryMode.SOFT, graceDays: 2 },
    });
    expect(await timerStates(tenantId)).toEqual({ PENDING: 200 + 200 });
    // Down for months: everything is overdue.
    env.clock.set('2025-06-01T00:00:00Z');
    const replica = await env.startReplica({ batchSize: 40, concurrency: 1, progressIntervalMs: 0 });
    const result = await replica.runtime.sweeper.runNow({ tenantId });
    // Reminders are fired as no-ops (their expiry passed); 100 grace + 100 expiry calls.
    expect(result).toEqual({ fired: 400, failed: 0, retried: 0 });
    const calls = callsOf(tenantId);
    expect(calls).toHaveLength(200);
    const instants = calls.map((c) => c.instant!.getTime());
    expect(instants).toEqual([...instants].sort((a, b) => a - b));
    const byEntitlement = new Map<string, string[]>();
    for (const c of calls) byEntitlement.set(c.entitlementId, [...(byEntitlement.get(c.entitlementId) ?? []), c.method]);
    for (const methods of byEntitlement.values()) expect(methods).toEqual(['EnterGrace', 'Expire']);

    const progress = replica.logLines.map((l) => JSON.parse(l) as { msg: string; done?: number; remaining?: number; ratePerSecond?: number }).filter((l) => l.msg.startsWith('expiry backlog'));
    expect(progress.length).toBeGreaterThan(5);
    expect(progress[0]!.msg).toMatch(/^expiry backlog: 40 fired, 0 failed, \d+ remaining, \d+\/s/);
    expect(progress.at(-1)).toMatchObject({ done: 400, remaining: 0 });
    await env.settle();
    expect(await timerStates(tenantId)).toEqual({ FIRED: 400 });
    const events = await env.expiryEvents(tenantId);
    expect(events.filter((e) => e.event === 'grace_started')).toHaveLength(100);
    expect(events.filter((e) => e.event === 'expired')).toHaveLength(100);
    await replica.stop();
  });
});

describe('restart mid-backlog', () => {
  it('a replica stopped part-way and a new one started fire every timer exactly once', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-01-01T00:00:00Z');
    await seedBacklog(env, { tenantId, count: 300, firstExpiry: new Date('2025-01-02T00:00:00Z'), stepMs: 60_000, policy: hard });
    env.clock.set('2025-03-01T00:00:00Z');
    const first = await env.startReplica({ batchSize: 20, sweepIntervalMs: 1 });
    await env.until(() => callsOf(tenantId).length >= 100, 'the first replica to fire part of the backlog');
    await first.stop();
    const firedBeforeRestart = callsOf(tenantId).length;
    expect(firedBeforeRestart).toBeLessThan(300);
    expect(await timerStates(tenantId)).toEqual({ FIRED: firedBeforeRestart, PENDING: 300 - firedBeforeRestart });

    const second = await env.startReplica({ batchSize: 20, sweepIntervalMs: 1 });
    await env.until(async () => (await timerStates(tenantId)).PENDING === undefined, 'the second replica to drain the rest');
    const calls = callsOf(tenantId);
    expect(calls).toHaveLength(300);
    expect(calls.filter((c) => c.replay)).toEqual([]);
    expect([...appliedOnce(calls).values()].every((n) => n === 1)).toBe(true);
    expect(appliedOnce(calls).size).toBe(300);
    await env.settle();
    await second.stop();
  });

  it('a crash after the ledger applied but before the sweep committed re-calls with the same keys: effects once', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-01-01T00:00:00Z');
    await seedBacklog(env, { tenantId, count: 200, firstExpiry: new Date('2025-01-02T00:00:00Z'), stepMs: 60_000, policy: hard });
    env.clock.set('2025-03-01T00:00:00Z');
    const crashing = await env.startReplica({ applicationName: 'expiry-crashing', batchSize: 25, concurrency: 2 });
    let killed = false;
    env.ledger.onCall = async (call) => {
      if (killed || call.tenantId !== tenantId || callsOf(tenantId).length < 60) return;
      killed = true;
      // The process "dies" with its sweep transaction open: the ledger has applied what it was sent.
      await sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'expiry-crashing' and state like 'idle in transaction%'`.execute(env.db.db);
    };
    await expect(crashing.runtime.sweeper.runNow({ tenantId })).rejects.toThrow();
    env.ledger.onCall = undefined;
    await crashing.stop();
    const before = await timerStates(tenantId);
    expect(before.FIRED ?? 0).toBeLessThan(callsOf(tenantId).length);

    const next = await env.startReplica({ batchSize: 25 });
    expect(await next.runtime.sweeper.runNow({ tenantId })).toMatchObject({ failed: 0 });
    const calls = callsOf(tenantId);
    const replays = calls.filter((c) => c.replay);
    expect(replays.length).toBeGreaterThan(0);
    // At most the batches the crashed replica had in flight: 2 of 25.
    expect(replays.length).toBeLessThanOrEqual(50);
    expect(appliedOnce(calls).size).toBe(200);
    expect([...appliedOnce(calls).values()].every((n) => n === 1)).toBe(true);
    expect(await timerStates(tenantId)).toEqual({ FIRED: 200 });
    // What fired is announced once per timer.
    const expired = (await env.expiryEvents(tenantId)).filter((e) => e.event === 'expired');
    expect(new Set(expired.map((e) => e.id)).size).toBe(200);
    expect(expired).toHaveLength(200);
    await env.settle();
    await next.stop();
  });
});

describe('replicas racing on one backlog', () => {
  it('share the work and fire each timer exactly once', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-01-01T00:00:00Z');
    await seedBacklog(env, { tenantId, count: 400, firstExpiry: new Date('2025-01-02T00:00:00Z'), stepMs: 10_000, policy: hard });
    env.clock.set('2025-01-01T00:00:00Z');
    env.clock.advance(40 * DAY);
    const a = await env.startReplica({ batchSize: 25 });
    const b = await env.startReplica({ batchSize: 25 });
    const [ra, rb] = await Promise.all([a.runtime.sweeper.runNow({ tenantId }), b.runtime.sweeper.runNow({ tenantId })]);
    expect(ra.fired + rb.fired).toBe(400);
    expect(ra.fired).toBeGreaterThan(0);
    expect(rb.fired).toBeGreaterThan(0);
    const calls = callsOf(tenantId);
    expect(calls).toHaveLength(400);
    expect(calls.filter((c) => c.replay)).toEqual([]);
    expect(new Set(calls.map((c) => c.idempotencyKey)).size).toBe(400);
    expect(await timerStates(tenantId)).toEqual({ FIRED: 400 });
    await env.settle();
    await Promise.all([a.stop(), b.stop()]);
  });
});

describe('batches', () => {
  it('grace and expiry go to the ledger as one ExpireBatch per tenant and claimed batch', async () => {
    const [t1, t2] = [newTenantId(), newTenantId()];
    env.clock.set('2025-01-01T00:00:00Z');
    for (const tenantId of [t1, t2]) {
      await seedBacklog(env, { tenantId, count: 60, firstExpiry: new Date('2025-01-02T00:00:00Z'), stepMs: 60_000, policy: { ...hard, mode: ExpiryMode.SOFT, graceDays: 2 } });
    }
    env.clock.set('2025-03-01T00:00:00Z');
    const before = env.ledger.requests.length;
    const replica = await env.startReplica({ batchSize: 50, concurrency: 1 });
    await replica.runtime.sweeper.runNow();
    const requests = env.ledger.requests.slice(before);
    // 240 calls (grace, then expiry) in claims of 50 that mix the two tenants: a request per tenant of each claim.
    expect(requests.every((r) => r.items > 0 && r.items <= 50 && r.omitEntitlements)).toBe(true);
    expect(requests.reduce((n, r) => n + r.items, 0)).toBe(240);
    expect(requests.length).toBeLessThan(240 / 50 + 2 * 6);
    for (const tenantId of [t1, t2]) {
      expect(await timerStates(tenantId)).toEqual({ FIRED: 120 });
      const calls = callsOf(tenantId);
      expect(calls.filter((c) => c.method === 'EnterGrace')).toHaveLength(60);
      expect(calls.filter((c) => c.method === 'Expire')).toHaveLength(60);
      const events = await env.expiryEvents(tenantId);
      expect(events.filter((e) => e.event === 'grace_started')).toHaveLength(60);
      expect(events.filter((e) => e.event === 'expired')).toHaveLength(60);
    }
    await env.settle();
    await replica.stop();
  });

  it('a refused item fails its timer only; the rest of the batch fires', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-01-01T00:00:00Z');
    const ids = await seedBacklog(env, { tenantId, count: 20, firstExpiry: new Date('2025-01-02T00:00:00Z'), stepMs: 60_000, policy: hard });
    env.ledger.entitlements.delete(ids[7]!);
    env.clock.set('2025-03-01T00:00:00Z');
    const replica = await env.startReplica({ batchSize: 100 });
    expect(await replica.runtime.sweeper.runNow({ tenantId })).toEqual({ fired: 19, failed: 1, retried: 0 });
    const failed = await env.db.db.selectFrom('timers').selectAll().where('tenant_id', '=', tenantId).where('state', '=', 'FAILED').execute();
    expect(failed).toMatchObject([{ entitlement_id: ids[7], kind: 'EXPIRE', attempts: 1, last_error: expect.stringContaining('not found') }]);
    const expired = (await env.expiryEvents(tenantId)).filter((e) => e.event === 'expired');
    expect(expired).toHaveLength(19);
    await env.settle();
    await replica.stop();
  });

  it('a request that fails as a whole retries every timer in it later, under the same keys', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-01-01T00:00:00Z');
    await seedBacklog(env, { tenantId, count: 30, firstExpiry: new Date('2025-01-02T00:00:00Z'), stepMs: 60_000, policy: hard });
    env.clock.set('2025-03-01T00:00:00Z');
    const replica = await env.startReplica({ batchSize: 100, concurrency: 1 });
    env.ledger.failRequests(1, Code.Unavailable);
    expect(await replica.runtime.sweeper.runNow({ tenantId })).toEqual({ fired: 0, failed: 0, retried: 30 });
    const waiting = await env.db.db.selectFrom('timers').selectAll().where('tenant_id', '=', tenantId).where('state', '=', 'PENDING').execute();
    expect(waiting).toHaveLength(30);
    expect(waiting.every((t) => t.kind === 'EXPIRE' && t.attempts === 1 && t.last_error?.includes('the ledger is down'))).toBe(true);
    expect(callsOf(tenantId)).toEqual([]);
    env.clock.advance(5_000);
    expect(await replica.runtime.sweeper.runNow({ tenantId })).toEqual({ fired: 30, failed: 0, retried: 0 });
    expect(await timerStates(tenantId)).toEqual({ FIRED: 30 });
    expect(new Set(callsOf(tenantId).map((c) => c.idempotencyKey))).toEqual(new Set(waiting.map((t) => `expiry-timer-${t.timer_id}`)));
    await env.settle();
    await replica.stop();
  });

  it('a timer passed over while the earlier one of its entitlement fired in the same batch fires before the sweep ends', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-01-01T00:00:00Z');
    // 100 graces an hour apart, each expiry two days after its grace: one claim of 500 takes every
    // grace, while the expiries due before the last grace have to wait for theirs.
    await seedBacklog(env, { tenantId, count: 100, firstExpiry: new Date('2025-01-02T00:00:00Z'), stepMs: HOUR, policy: { ...hard, mode: ExpiryMode.SOFT, graceDays: 2 } });
    env.clock.set('2025-03-01T00:00:00Z');
    const replica = await env.startReplica({ batchSize: 500, concurrency: 1 });
    const r = await replica.runtime.sweeper.runNow({ tenantId });
    // 100 graces, 100 expiries and 51 reminders (skipped: their expiry has passed).
    expect(r).toEqual({ fired: 251, failed: 0, retried: 0 });
    expect(await timerStates(tenantId)).toEqual({ FIRED: 251 });
    const byEntitlement = new Map<string, string[]>();
    for (const c of callsOf(tenantId)) byEntitlement.set(c.entitlementId, [...(byEntitlement.get(c.entitlementId) ?? []), c.method]);
    expect([...byEntitlement.values()].every((m) => m.join() === 'EnterGrace,Expire')).toBe(true);
    await env.settle();
    await replica.stop();
  });

  it('keeps `concurrency` batches in flight, each timer fired once', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-01-01T00:00:00Z');
    await seedBacklog(env, { tenantId, count: 90, firstExpiry: new Date('2025-01-02T00:00:00Z'), stepMs: 60_000, policy: hard });
    env.clock.set('2025-03-01T00:00:00Z');
    const replica = await env.startReplica({ batchSize: 10, concurrency: 3 });
    let arrived = 0;
    // The first three requests are answered only once all three have arrived, so three were in flight
    // at once: one batch at a time would never get there. (Counted on arrival: polling the number in
    // flight could miss the moment, as the third is answered at once.)
    env.ledger.onRequest = async () => {
      if (arrived >= 3) return;
      arrived += 1;
      await env.until(() => arrived >= 3, 'three batches in flight');
    };
    const result = await replica.runtime.sweeper.runNow({ tenantId });
    env.ledger.onRequest = undefined;
    expect(result).toEqual({ fired: 90, failed: 0, retried: 0 });
    const calls = callsOf(tenantId);
    expect(calls).toHaveLength(90);
    expect(new Set(calls.map((c) => c.idempotencyKey)).size).toBe(90);
    expect(await timerStates(tenantId)).toEqual({ FIRED: 90 });
    await env.settle();
    await replica.stop();
  });
});

/** A claim of the sweep as sent to Postgres: where it started, how many rows it took, where they ended, and when. */
interface SentClaim {
  after?: DueCursor;
  rows?: number;
  end?: DueCursor;
  sent: number;
  returned?: number;
}

/** Values of a `sql` template in the order they are bound, nested fragments included. */
function boundValues(node: OperationNode): unknown[] {
  if (node.kind === 'ValueNode') return [(node as OperationNode & { value: unknown }).value];
  if (node.kind === 'RawNode') return (node as OperationNode & { parameters: readonly OperationNode[] }).parameters.flatMap(boundValues);
  return [];
}

/** Records the claims a sweep sends through a Kysely plugin, in the order they are sent and answered. */
function claimRecorder(): { plugin: KyselyPlugin; claims: SentClaim[] } {
  const claims: SentClaim[] = [];
  const byQuery = new Map<string, SentClaim>();
  let tick = 0;
  const plugin: KyselyPlugin = {
    transformQuery({ node, queryId }) {
      const raw = node as OperationNode & { sqlFragments?: readonly string[] };
      if (raw.kind === 'RawNode' && raw.sqlFragments?.join('').includes('skip locked')) {
        // now, now, the tenant, [the cursor: due time, rank, timer id], the limit
        const v = boundValues(node);
        const claim: SentClaim = { sent: ++tick, ...(v.length === 7 ? { after: { dueTime: v[3] as Date, rank: v[4] as number, timerId: v[5] as string } } : {}) };
        claims.push(claim);
        byQuery.set(queryId.queryId, claim);
      }
      return node;
    },
    async transformResult({ result, queryId }) {
      const claim = byQuery.get(queryId.queryId);
      if (claim) {
        claim.returned = ++tick;
        claim.rows = result.rows.length;
        const last = result.rows.at(-1) as { due_time: Date; rank: number; timer_id: string } | undefined;
        if (last) claim.end = { dueTime: last.due_time, rank: last.rank, timerId: last.timer_id };
      }
      return result;
    },
  };
  return { plugin, claims };
}

describe('claims of concurrent batches', () => {
  it('each claim starts after the furthest claim answered before it, not walking rows that batches in flight hold', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-01-01T00:00:00Z');
    await seedBacklog(env, { tenantId, count: 90, firstExpiry: new Date('2025-01-02T00:00:00Z'), stepMs: 60_000, policy: hard });
    env.clock.set('2025-03-01T00:00:00Z');
    // The first request waits for the third: the second and third batches' claims are answered
    // before the first batch's worker claims again.
    let arrived = 0;
    env.ledger.onRequest = async () => {
      arrived += 1;
      if (arrived === 1) await env.until(() => arrived >= 3, 'three batches in flight');
    };
    const { plugin, claims } = claimRecorder();
    const ledger = env.ledgerClient();
    const result = await sweepDue({ db: env.db.db.withPlugin(plugin), ledger, clock: env.clock.now, batchSize: 10, concurrency: 3 }, { tenantId }).finally(() => {
      env.ledger.onRequest = undefined;
      ledger.close();
    });
    expect(result).toEqual({ fired: 90, failed: 0, retried: 0 });
    expect(await timerStates(tenantId)).toEqual({ FIRED: 90 });
    expect(claims.reduce((n, c) => n + c.rows!, 0)).toBe(90);
    // Each claim takes a whole batch, except where two claims in flight at once split the rows that
    // were left between them. A claim that started past claimable rows would leave a part for a
    // claim from the start to find.
    for (const c of claims) {
      if (c.rows === 0 || c.rows === 10) continue;
      expect(claims.some((d) => d !== c && d.rows! > 0 && d.sent < c.returned! && c.sent < d.returned!)).toBe(true);
    }
    expect(claims.filter((c) => c.after).length).toBeGreaterThanOrEqual(6);
    for (const c of claims) {
      if (!c.after) continue;
      for (const d of claims) if (d.end && d.returned! < c.sent) expect(compareDue(c.after, d.end)).toBeGreaterThanOrEqual(0);
    }
    // A replica applies the ledger's events of the expiries, as the other tests leave it.
    const replica = await env.startReplica();
    await env.settle();
    await replica.stop();
  });

  it('due order in the sweep agrees with the order of the due index in Postgres', async () => {
    const cursors = fc.sample(
      fc.record({
        dueTime: fc.integer({ min: 0, max: 3 }).map((h) => new Date(Date.UTC(2025, 0, 1, h))),
        rank: fc.integer({ min: 0, max: 3 }),
        timerId: fc.uuid(),
      }),
      200,
    );
    const { rows } = await sql<{ timer_id: string }>`
      select v."timerId"::text as timer_id from jsonb_to_recordset(${JSON.stringify(cursors)}::jsonb) as v ("dueTime" timestamptz, rank smallint, "timerId" uuid)
      order by v."dueTime", v.rank, v."timerId"`.execute(env.db.db);
    expect([...cursors].sort(compareDue).map((c) => c.timerId)).toEqual(rows.map((r) => r.timer_id));
  });
});
