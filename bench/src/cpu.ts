import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { testPostgres } from '@punchcard/testing';
import pg from 'pg';
import type { BenchEnv } from './env.js';

const TICKS_PER_SECOND = 100;

/** utime + stime of a process in seconds, or 0 once it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

export interface CpuGroups {
  [group: string]: () => Promise<number[]> | number[];
}

/**
 * CPU time spent by groups of processes over a step (the service, this database's Postgres backends
 * and the WAL writer, the bench client), to say where a consume's CPU goes on a machine whose cores
 * they all share. Sampled every half second, so processes that end during the step (pgbench's
 * backends) still count up to their last sample.
 */
export class CpuMeter {
  private base = new Map<string, Map<number, number>>();
  private last = new Map<string, Map<number, number>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly groups: CpuGroups) {}

  async start(): Promise<void> {
    this.base.clear();
    this.last.clear();
    for (const [name, pids] of Object.entries(this.groups)) {
      const now = new Map((await pids()).map((pid) => [pid, cpuSeconds(pid)]));
      this.base.set(name, now);
      this.last.set(name, new Map(now));
    }
    this.timer = setInterval(() => void this.sample(), 500);
  }

  private async sample(): Promise<void> {
    for (const [name, pids] of Object.entries(this.groups)) {
      const seen = this.last.get(name);
      if (!seen) continue;
      for (const pid of await pids()) {
        const t = cpuSeconds(pid);
        if (t > 0) seen.set(pid, t);
      }
    }
  }

  /** CPU seconds per group since `start()`. */
  async stop(): Promise<Record<string, number>> {
    clearInterval(this.timer);
    await this.sample();
    const out: Record<string, number> = {};
    for (const name of Object.keys(this.groups)) {
      const base = this.base.get(name) ?? new Map<number, number>();
      let sum = 0;
      for (const [pid, t] of this.last.get(name) ?? []) sum += t - (base.get(pid) ?? 0);
      out[name] = Math.round(sum * 100) / 100;
    }
    return out;
  }
}

/** Which of a database's backends: all, the services' own, or the bench's stand-in for autovacuum. */
export type BackendKind = 'all' | 'services' | 'vacuum';

export interface PostgresBackends {
  /**
   * Backends connected to the database, plus the WAL writer every commit waits on (`all`, the
   * default); without the autovacuum stand-in's connections (`services`); only those (`vacuum`).
   */
  pids(kind?: BackendKind): Promise<number[]>;
  close(): Promise<void>;
}

/** The application names of the autovacuum stand-in's connections (see standInForAutovacuum). */
const VACUUM_APPLICATIONS = 'bench-autovacuum%';

const BACKENDS_OF: Record<BackendKind, string> = {
  all: `(datname = $1 or backend_type = 'walwriter')`,
  services: `(datname = $1 or backend_type = 'walwriter') and application_name not like $2`,
  vacuum: `datname = $1 and application_name like $2`,
};

/**
 * Lists a database's Postgres backends over one connection kept open until `close()`. A connection
 * per listing would start a backend twice a second while the meter samples (about 14 ms of CPU
 * each on a 2-vCPU VM), on the cores the benchmark measures.
 */
export async function postgresBackends(adminUrl: string, database: string): Promise<PostgresBackends> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'bench-cpu-meter' });
  await client.connect();
  return {
    async pids(kind = 'all') {
      const { rows } = await client.query<{ pid: number }>({
        name: `bench-cpu-meter-pids-${kind}`,
        text: `select pid from pg_stat_activity where ${BACKENDS_OF[kind]} and pid <> pg_backend_pid()`,
        values: kind === 'all' ? [database] : [database, VACUUM_APPLICATIONS],
      });
      return rows.map((r) => r.pid);
    },
    close: () => client.end(),
  };
}

/** The benchmark database's backends, listed over one connection until the benchmark's environment closes. */
export async function benchBackends(env: BenchEnv): Promise<PostgresBackends> {
  const backends = await postgresBackends(await testPostgres(), env.database.name);
  env.defer(() => backends.close());
  return backends;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/**
 * The process of this machine that listens on the port of a loopback URL (`nats://127.0.0.1:4222`),
 * found through the kernel's socket table and the processes' open files; undefined for another host
 * or when none is visible (a server in a container shows only its port forwarder).
 */
export function listeningProcess(url: string): { pid: number; command: string } | undefined {
  const { hostname, port } = new URL(url);
  if (!LOOPBACK.has(hostname) || port === '') return undefined;
  const portHex = Number(port).toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl, local address:port, remote address:port, state (0A: listening), …, inode (field 10)
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === '0A' && f[1]!.endsWith(`:${portHex}`)) inodes.add(f[9]!);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${entry}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode && inodes.has(inode)) return { pid: Number(entry), command: readFileSync(`/proc/${entry}/comm`, 'utf8').trim() };
    }
  }
  return undefined;
}

/**
 * The NATS server's process when it runs on this machine, to meter beside the services: the events
 * they publish and consume cost it CPU on the same cores. Nothing else uses it during a bench run
 * here, so all it spends is theirs; elsewhere (a remote or containerised server) it is not counted.
 */
export function localNatsServer(natsUrl: string): number | undefined {
  const found = listeningProcess(natsUrl);
  return found?.command === 'nats-server' ? found.pid : undefined;
}

/**
 * A meter of everything a run's work spends CPU in: each service's process (by name), this
 * database's Postgres backends with the vacuum stand-in's apart, the local NATS server if there is
 * one, and the bench client; with a note saying what each group is.
 */
export async function systemCpuMeter(env: BenchEnv, services: Record<string, { pid: number }>): Promise<{ meter: CpuMeter; note: string }> {
  const backends = await benchBackends(env);
  const nats = localNatsServer(env.natsUrl);
  const meter = new CpuMeter({
    ...Object.fromEntries(Object.entries(services).map(([name, s]) => [name, () => [s.pid]])),
    postgres: () => backends.pids('services'),
    'postgres: vacuum stand-in': () => backends.pids('vacuum'),
    ...(nats ? { 'nats-server': () => [nats] } : {}),
    'bench client': () => [process.pid],
  });
  const natsNote = nats ? 'nats-server: the local NATS server, all of it (nothing else uses it during a run here)' : 'the NATS server is not on this machine (or not visible), so it is not counted';
  const note = `CPU groups: each service's process; postgres: this database's backends and the WAL writer; postgres: vacuum stand-in: the bench's vacuum and analyze in autovacuum's place (its connections); ${natsNote}; bench client: this process.`;
  return { meter, note };
}
