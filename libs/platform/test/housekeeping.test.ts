import { inboxMigration } from '@punchcard/bus';
import { idempotencyMigration, type Migrations } from '@punchcard/db';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectStores, createLogger, defineService, loadConfig, migrateDatabase, pruneSpentRows, startService, type Pruned, type Stores } from '../src/index.js';
import { startHousekeeping } from '../src/housekeeping.js';
import { captureLogs, sampleConfig, storesSandbox, type StoresSandbox } from './helpers.js';

const DAY_MS = 86_400_000;
const daysAgo = (days: number) => new Date(Date.now() - days * DAY_MS);

const migrations: Migrations = { '0001_inbox': inboxMigration, '0002_idempotency_keys': idempotencyMigration };

const definition = defineService<Stores<any>>({
  name: 'housekeeping-sample',
  defaultPorts: { api: 7197, ops: 7297 },
  requires: ['database', 'nats'],
  setup: (ctx) => connectStores(ctx, { poolMax: 2 }),
  register() {},
  housekeep: (ctx) => pruneSpentRows(ctx.state.database.db, ['inbox', 'idempotencyKeys']),
  migrate: (ctx) => migrateDatabase(ctx, migrations),
});

const waitFor = async (condition: () => boolean) => {
  while (!condition()) await new Promise((r) => setTimeout(r, 10));
};

describe('housekeeping of a service', () => {
  let sandbox: StoresSandbox;

  beforeAll(async () => {
    sandbox = await storesSandbox('housekeeping');
  });
  afterAll(async () => {
    await sandbox?.drop();
  });

  it('deletes applied event ids and idempotency keys past their retention, every interval, and counts them', async () => {
    const config = loadConfig(definition, sandbox.env({ HOUSEKEEPING_INTERVAL_MS: '50' }));
    await definition.migrate!({ config, logger: createLogger({ serviceName: config.serviceName, level: 'silent' }) });
    const logs = captureLogs();
    const service = await startService(definition, config, { logDestination: logs.destination });
    const { db } = service.state.database;
    try {
      await db
        .insertInto('inbox')
        .values([
          { consumer: 'c', event_id: 'applied_31_days_ago', subject: 's', applied_at: daysAgo(31) },
          { consumer: 'c', event_id: 'applied_29_days_ago', subject: 's', applied_at: daysAgo(29) },
        ])
        .execute();
      await db
        .insertInto('idempotency_keys')
        .values([
          { tenant_id: 't1', method: 'm', key: 'created_8_days_ago', request_hash: 'h', response: new Uint8Array([1]), created_at: daysAgo(8) },
          { tenant_id: 't1', method: 'm', key: 'created_6_days_ago', request_hash: 'h', response: new Uint8Array([1]), created_at: daysAgo(6) },
        ])
        .execute();

      await waitFor(() => logs.lines.some((l) => l.msg === 'housekeeping done'));
      expect(logs.lines.find((l) => l.msg === 'housekeeping done')?.pruned).toEqual({ inbox: 1, idempotencyKeys: 1 });
      const left = async (table: string, column: string) =>
        (await service.state.database.pool.query<{ v: string }>(`select ${column} as v from ${table} order by 1`)).rows.map((r) => r.v);
      expect(await left('inbox', 'event_id')).toEqual(['applied_29_days_ago']);
      expect(await left('idempotency_keys', 'key')).toEqual(['created_6_days_ago']);

      const metrics = await (await fetch(`${service.opsUrl}/metrics`)).text();
      for (const rows of ['inbox', 'idempotencyKeys']) {
        expect(metrics).toContain(`punchcard_housekeeping_deleted_rows_total{rows="${rows}",service="housekeeping-sample"} 1`);
      }
    } finally {
      await service.stop();
    }
  });
});

describe('housekeeping rounds', () => {
  const sample = (housekeep: () => Promise<Pruned>) =>
    defineService({ name: 'rounds-sample', defaultPorts: { api: 7196, ops: 7296 }, register() {}, housekeep });

  it('a failed round is logged and the next one runs', async () => {
    let rounds = 0;
    const logs = captureLogs();
    const service = await startService(
      sample(async () => {
        rounds += 1;
        if (rounds === 1) throw new Error('database away');
        return { things: 2 };
      }),
      sampleConfig({ HOUSEKEEPING_INTERVAL_MS: '20' }),
      { logDestination: logs.destination },
    );
    try {
      await waitFor(() => logs.lines.some((l) => l.msg === 'housekeeping done'));
      const failed = logs.lines.find((l) => l.level === 'warn');
      expect(failed?.msg).toBe('housekeeping failed; the next round tries again');
      expect((failed?.err as { message: string }).message).toBe('database away');
      expect(logs.lines.find((l) => l.msg === 'housekeeping done')?.pruned).toEqual({ things: 2 });
    } finally {
      await service.stop();
    }
  });

  it('rounds never overlap, and stopping waits for the one in progress', async () => {
    let inProgress = 0;
    let most = 0;
    let started = 0;
    let finish!: () => void;
    const service = await startService(
      sample(async () => {
        started += 1;
        inProgress += 1;
        most = Math.max(most, inProgress);
        await new Promise<void>((r) => (finish = r));
        inProgress -= 1;
        return {};
      }),
      sampleConfig({ HOUSEKEEPING_INTERVAL_MS: '5' }),
      { logDestination: captureLogs().destination },
    );
    await waitFor(() => started === 1);
    // Several intervals pass while the first round runs.
    await new Promise((r) => setTimeout(r, 50));
    expect(started).toBe(1);
    let stopped = false;
    const stopping = service.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(stopped).toBe(false);
    finish();
    await stopping;
    expect(stopped).toBe(true);
    expect(most).toBe(1);
  });

  it('HOUSEKEEPING_INTERVAL_MS=0 runs none', async () => {
    let started = 0;
    const service = await startService(
      sample(async () => {
        started += 1;
        return {};
      }),
      sampleConfig({ HOUSEKEEPING_INTERVAL_MS: '0' }),
      { logDestination: captureLogs().destination },
    );
    // Against a 5 ms interval, as above: with housekeeping on, rounds would have run by now.
    await new Promise((r) => setTimeout(r, 50));
    await service.stop();
    expect(started).toBe(0);
  });
});

describe('housekeeping schedule', () => {
  afterEach(() => void vi.useRealTimers());

  it('runs the first round a minute after the start, then every interval', async () => {
    vi.useFakeTimers();
    let rounds = 0;
    const hourly = startHousekeeping(
      async () => {
        rounds += 1;
        return {};
      },
      3_600_000,
      { logger: createLogger({ serviceName: 'schedule', level: 'silent' }), registry: new Registry() },
    );
    await vi.advanceTimersByTimeAsync(59_999);
    expect(rounds).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(rounds).toBe(1);
    await vi.advanceTimersByTimeAsync(3_599_999);
    expect(rounds).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(rounds).toBe(2);
    await hourly.stop();
    await vi.advanceTimersByTimeAsync(7_200_000);
    expect(rounds).toBe(2);
  });
});
