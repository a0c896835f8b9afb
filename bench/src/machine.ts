import { spawnSync } from 'node:child_process';
import os from 'node:os';
import pg from 'pg';
import type { Bus } from '@punchcard/bus';
import { idlePenalty, type IdlePenalty } from './idle-penalty.js';
import { REPO_ROOT } from './service-process.js';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  postgres: string;
  postgresSettings: Record<string, string>;
  nats: string;
  git: { commit: string; dirty: boolean };
  /** What a wake-up costs here, measured before the benchmarks start (see idle-penalty.ts). */
  idlePenalty: IdlePenalty;
  /** Whether the bench's gRPC client ran with the lean `AsyncResource#bind` (lean-bind.ts); false where Node needs none. */
  clientLeanBind: boolean;
}

/** What a figure needs beside it to mean anything: the hardware, the versions, the code. */
export async function machineInfo(adminUrl: string, bus: Bus, clientLeanBind: boolean): Promise<MachineInfo> {
  const cpus = os.cpus();
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  let postgres = '';
  const postgresSettings: Record<string, string> = {};
  try {
    postgres = (await client.query<{ v: string }>("select current_setting('server_version') as v")).rows[0]?.v ?? '';
    const { rows } = await client.query<{ name: string; setting: string; unit: string | null }>(
      `select name, setting, unit from pg_settings
        where name in ('shared_buffers', 'synchronous_commit', 'fsync', 'max_connections', 'wal_level', 'work_mem', 'autovacuum')`,
    );
    for (const r of rows) postgresSettings[r.name] = r.unit ? `${r.setting} ${r.unit}` : r.setting;
  } finally {
    await client.end();
  }
  const git = (args: string[]) => spawnSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8' }).stdout.trim();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    postgres,
    postgresSettings,
    nats: bus.nc.info?.version ?? 'unknown',
    git: { commit: git(['rev-parse', 'HEAD']), dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '' },
    idlePenalty: await idlePenalty(),
    clientLeanBind,
  };
}
