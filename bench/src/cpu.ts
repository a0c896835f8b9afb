import { readFileSync } from 'node:fs';
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

export interface PostgresBackends {
  /** Backends connected to the database, plus the WAL writer every commit waits on. */
  pids(): Promise<number[]>;
  close(): Promise<void>;
}

/**
 * Lists a database's Postgres backends over one connection kept open until `close()`. A connection
 * per listing would start a backend twice a second while the meter samples (about 14 ms of CPU
 * each on a 2-vCPU VM), on the cores the benchmark measures.
 */
export async function postgresBackends(adminUrl: string, database: string): Promise<PostgresBackends> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'bench-cpu-meter' });
  await client.connect();
  return {
    async pids() {
      const { rows } = await client.query<{ pid: number }>({
        name: 'bench-cpu-meter-pids',
        text: `select pid from pg_stat_activity where (datname = $1 or backend_type = 'walwriter') and pid <> pg_backend_pid()`,
        values: [database],
      });
      return rows.map((r) => r.pid);
    },
    close: () => client.end(),
  };
}

/** The benchmark database's backends, listed over one connection until the benchmark's environment closes. */
export async function benchBackends(env: BenchEnv): Promise<() => Promise<number[]>> {
  const backends = await postgresBackends(await testPostgres(), env.database.name);
  env.defer(() => backends.close());
  return () => backends.pids();
}
