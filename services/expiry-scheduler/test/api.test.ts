import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { ServiceError } from '@grpc/grpc-js';
import { ExpiryAnchor, ExpiryMode } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { ExpiryService, TimerKind, TimerState } from '@punchcard/contracts/punchcard/expiry/v1/expiry_pb';
import { loadConfig, mintToken, startService, type RunningService } from '@punchcard/platform';
import { grpcJsClient, spentRowsLeftAfter, type GrpcJsClient } from '@punchcard/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expirySchedulerService, type ExpiryState } from '../src/service.js';
import { newTenantId, TestEnv } from './support/env.js';

const at = (s: string) => new Date(s);
const Status = { INVALID_ARGUMENT: 3, NOT_FOUND: 5, PERMISSION_DENIED: 7, UNAUTHENTICATED: 16 } as const;

let env: TestEnv;
let service: RunningService<ExpiryState>;
let client: GrpcJsClient<typeof ExpiryService>;

beforeAll(async () => {
  env = await TestEnv.start('2025-03-01T10:00:00Z');
  const definition = expirySchedulerService({ clock: env.clock.now, relayPollMs: 100, gapRetryMs: 50, onConsumed: env.track });
  const config = loadConfig(definition, {
    DATABASE_URL: env.database.url,
    NATS_URL: env.natsUrl,
    BUS_NAMESPACE: env.namespace,
    AUTH_DEV_MODE: '1',
    PORT: '0',
    OPS_PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    LEDGER_URL: env.ledger.url,
    EXPIRY_SWEEP_INTERVAL_MS: '0',
  });
  service = await startService(definition, config);
  client = grpcJsClient(ExpiryService, service.apiUrl);
});

afterAll(async () => {
  client?.close();
  await service?.stop();
  await env?.close();
});

const token = (tenantId: string, ...roles: string[]) => mintToken({ tenantId, roles, subject: 'tester' });

async function grpcError(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  const err = (await p.then(
    () => expect.fail('expected the call to fail'),
    (e: unknown) => e,
  )) as ServiceError;
  return { code: err.code, details: err.details };
}

async function purchase(tenantId: string, expiry: string) {
  return env.ledger.purchase({
    tenantId,
    policy: { anchor: ExpiryAnchor.PURCHASE, durationDays: 30, mode: ExpiryMode.HARD, reminderOffsetsDays: [3] },
    timeZone: 'Europe/London',
    purchaseTime: at('2025-03-01T10:00:00Z'),
    expiryTime: at(expiry),
  });
}

describe('ExpiryService over gRPC', () => {
  it('GetSchedule: what will happen and when, for the caller’s tenant only', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    const e = await purchase(tenantId, '2025-03-31T23:00:00Z');
    await env.settle();
    const s = await client.call('getSchedule', { entitlementId: e.entitlementId }, { token: await token(tenantId, 'staff') });
    expect(timestampDate(s.expiryTime!).toISOString()).toBe('2025-03-31T23:00:00.000Z');
    expect(s.timers.map((t) => [TimerKind[t.kind], TimerState[t.state]])).toEqual([
      ['REMINDER', 'PENDING'],
      ['EXPIRE', 'PENDING'],
    ]);

    expect(await grpcError(client.call('getSchedule', { entitlementId: e.entitlementId }, { token: await token(newTenantId(), 'admin') }))).toMatchObject({
      code: Status.NOT_FOUND,
    });
    expect(await grpcError(client.call('getSchedule', { entitlementId: '' }, { token: await token(tenantId, 'staff') }))).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('entitlement_id'),
    });
    expect((await grpcError(client.call('getSchedule', { entitlementId: e.entitlementId }))).code).toBe(Status.UNAUTHENTICATED);
  });

  it('ListDue: operators page through due timers in due order', async () => {
    const tenantId = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    for (const day of ['05', '03', '04']) await purchase(tenantId, `2025-04-${day}T23:00:00Z`);
    await env.settle();
    const admin = await token(tenantId, 'admin');
    const dueBefore = timestampFromDate(at('2025-04-30T00:00:00Z'));
    const first = await client.call('listDue', { dueBefore, pageSize: 4 }, { token: admin });
    expect(first.timers).toHaveLength(4);
    expect(first.nextPageToken).not.toBe('');
    const second = await client.call('listDue', { dueBefore, pageSize: 4, pageToken: first.nextPageToken }, { token: admin });
    expect(second.timers).toHaveLength(2);
    expect(second.nextPageToken).toBe('');
    const dues = [...first.timers, ...second.timers].map((t) => timestampDate(t.dueTime!).getTime());
    expect(dues).toEqual([...dues].sort((a, b) => a - b));
    // Unset due_before = now (the service clock): nothing is due on 1 March.
    expect((await client.call('listDue', {}, { token: admin })).timers).toEqual([]);

    expect(await grpcError(client.call('listDue', {}, { token: await token(tenantId, 'staff') }))).toMatchObject({ code: Status.PERMISSION_DENIED });
    expect(await grpcError(client.call('listDue', { pageToken: 'nope' }, { token: admin }))).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('page_token'),
    });
    expect(await grpcError(client.call('listDue', { pageSize: 5000 }, { token: admin }))).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('page_size'),
    });
  });

  it('RunDue: fires the tenant’s due timers; a repeated key replays the first answer', async () => {
    const tenantId = newTenantId();
    const other = newTenantId();
    env.clock.set('2025-03-01T10:00:00Z');
    const mine = await purchase(tenantId, '2025-03-31T23:00:00Z');
    const theirs = await purchase(other, '2025-03-31T23:00:00Z');
    await env.settle();
    env.clock.set('2025-04-01T12:00:00Z');
    const admin = await token(tenantId, 'admin');
    const first = await client.call('runDue', { idempotencyKey: 'run-1' }, { token: admin });
    expect(first).toMatchObject({ fired: 2, failed: 0, remaining: 0 });
    expect(env.ledger.callsFor(mine.entitlementId)).toHaveLength(1);
    // Another tenant's timers are not touched by this tenant's operator.
    expect(env.ledger.callsFor(theirs.entitlementId)).toHaveLength(0);
    const again = await client.call('runDue', { idempotencyKey: 'run-1' }, { token: admin });
    expect(again).toMatchObject({ fired: 2, failed: 0, remaining: 0 });
    expect(env.ledger.callsFor(mine.entitlementId)).toHaveLength(1);

    expect(await grpcError(client.call('runDue', { idempotencyKey: 'run-1', limit: 5 }, { token: admin }))).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('idempotency_key'),
    });
    expect(await grpcError(client.call('runDue', {}, { token: admin }))).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('idempotency_key'),
    });
    expect(await grpcError(client.call('runDue', { idempotencyKey: 'x', limit: -1 }, { token: admin }))).toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringContaining('limit'),
    });
    expect(await grpcError(client.call('runDue', { idempotencyKey: 'y' }, { token: await token(tenantId, 'manager') }))).toMatchObject({
      code: Status.PERMISSION_DENIED,
    });
    // The ledger saw real tokens for the entitlement's tenant with role system.
    expect(env.ledger.callsFor(mine.entitlementId)[0]).toMatchObject({ tenantId, roles: ['system'] });

    // SREs see what fired and the backlog (the other tenant's expiry is still due).
    const metrics = await (await fetch(`${service.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/punchcard_expiry_timers_total\{[^}]*kind="EXPIRE",outcome="fired"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/punchcard_expiry_timers_due\{[^}]*\} [1-9]/);
  });
});

describe('housekeeping', () => {
  it('deletes applied event ids and idempotency keys past their retention beside cancelled timers, and keeps fresh ones', async () => {
    let pruned: Record<string, number> = {};
    const left = await spentRowsLeftAfter(service.state.database.db, async () => (pruned = await service.housekeep()));
    expect(left).toEqual({ inbox: ['fresh'], idempotency_keys: ['fresh'] });
    expect(Object.keys(pruned).sort()).toEqual(['cancelledTimers', 'idempotencyKeys', 'inbox']);
  });
});
