import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { CONSUME_METHOD, LEDGER_SCHEMA } from './raw-sql.js';
import { round, summarise } from './stats.js';
import type { LoadResult } from './load.js';

/** pgbench on PATH (Debian: postgresql-client), or undefined. */
export function pgbenchVersion(): string | undefined {
  const r = spawnSync('pgbench', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/**
 * The raw transaction of raw-sql.ts as a pgbench script: each pgbench client consumes from its own
 * entitlement (looked up by `client_id` inside the decrement), ids and times are made by the server.
 */
const SCRIPT = `
begin;
update entitlements
   set paid_remaining = paid_remaining - 1,
       status = case when paid_remaining - 1 + bonus_remaining = 0 then 'EXHAUSTED' else status end,
       last_use_time = now(), version = version + 1, updated_at = now()
 where tenant_id = :tenant::text
   and entitlement_id = (select entitlement_id from bench_raw.clients where client_id = :client_id)
   and status = 'ACTIVE' and paid_remaining >= 1
returning version as v, remaining as r, member_id as m, entitlement_id as ent, expiry_time as x
\\gset
with ids as (select gen_random_uuid() as id, gen_random_uuid()::text as k, now() as t),
e as (
  insert into entries (tenant_id, entry_id, entitlement_id, kind, sessions_delta, paid_delta, bonus_delta, branch_id,
                       actor_subject, actor_roles, reason, occurred_time, record_time, request_id, balance_after,
                       in_grace, member_id, entitlement_version, expiry_time)
  select :tenant::text, ids.id, :ent::uuid, 'CONSUME', -1, -1, 0, 'b1', 'bench-pgbench', '{staff}', 'bench', ids.t, ids.t, ids.k,
         :r::int, false, :m::text, :v::bigint, :x::timestamptz from ids
), k as (
  insert into idempotency_keys (tenant_id, key, method, request_hash, response)
  select :tenant::text, ids.k, '${CONSUME_METHOD}', 'pgbench', decode(:payload::text, 'hex') from ids
), o as (
  insert into outbox (id, producer, event_type, subject, tenant_id, aggregate_id, aggregate_version, data_type, payload, headers, created_at)
  select ids.id, 'ledger', 'punchcard.ledger.session_consumed', :subject::text, :tenant::text, :ent::text, :v::bigint,
         'punchcard.events.v1.LedgerEntryRecorded', decode(:payload::text, 'hex'), '{}', ids.t from ids
)
select pg_notify('punchcard_outbox', current_schema());
commit;
`;

export interface PgbenchSetup {
  url: string;
  tenantId: string;
  /** One entitlement per pgbench client (client_id 0…n-1). */
  entitlementIds: string[];
  payload: Buffer;
}

/** Maps pgbench client ids to entitlements, in a schema of the bench's own. */
export async function preparePgbench(s: PgbenchSetup): Promise<void> {
  const client = new pg.Client({ connectionString: s.url });
  await client.connect();
  try {
    await client.query('create schema if not exists bench_raw');
    await client.query('create table if not exists bench_raw.clients (client_id int primary key, entitlement_id uuid not null)');
    await client.query('truncate bench_raw.clients');
    await client.query('insert into bench_raw.clients select i - 1, e from unnest($1::uuid[]) with ordinality as t(e, i)', [s.entitlementIds]);
  } finally {
    await client.end();
  }
}

export interface PgbenchRun {
  concurrency: number;
  durationMs: number;
  warmupMs: number;
}

export async function runPgbench(s: PgbenchSetup, run: PgbenchRun): Promise<LoadResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'punchcard-pgbench-'));
  try {
    const script = path.join(dir, 'consume.sql');
    writeFileSync(script, SCRIPT);
    const url = new URL(s.url);
    const common = [
      '-h', url.hostname, '-p', url.port || '5432', '-U', decodeURIComponent(url.username || 'postgres'),
      '-n', '-M', 'prepared', '-c', String(run.concurrency), '-j', String(Math.min(run.concurrency, 2)), '-f', script,
      '-D', `tenant=${s.tenantId}`, '-D', `payload=${s.payload.toString('hex')}`, '-D', `subject=punchcard.ledger.session_consumed.${s.tenantId}`,
    ];
    const env = { ...process.env, PGOPTIONS: `-c search_path=${LEDGER_SCHEMA}`, ...(url.password ? { PGPASSWORD: decodeURIComponent(url.password) } : {}) };
    const db = url.pathname.slice(1);
    if (run.warmupMs > 0) await pgbench([...common, '-T', String(Math.max(1, Math.round(run.warmupMs / 1000))), db], env);
    const prefix = path.join(dir, 'tx');
    const out = await pgbench([...common, '-T', String(Math.max(1, Math.round(run.durationMs / 1000))), '-l', `--log-prefix=${prefix}`, db], env);
    const latencies: number[] = [];
    let failed = 0;
    for (const f of readdirSync(dir).filter((n) => n.startsWith('tx.'))) {
      for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
        const us = line.split(' ')[2];
        if (us === undefined || us === '') continue;
        if (/^\d+$/.test(us)) latencies.push(Number(us) / 1000);
        else failed++;
      }
    }
    const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1] ?? Number.NaN);
    const seconds = run.durationMs / 1000;
    return {
      throughput: round(tps, 1),
      ok: latencies.length,
      failures: failed > 0 ? { failed } : {},
      seconds,
      latency: summarise(latencies),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function pgbench(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('pgbench', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`pgbench exited ${code}:\n${out.slice(-3000)}`))));
  });
}
