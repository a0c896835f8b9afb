import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serviceNodeFlags } from '@punchcard/platform';
import type { BenchEnv } from './env.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const AUTH_SECRET = 'punchcard-bench-secret-0123456789abcdef0123';

export interface ServiceProcessOptions {
  /** Directory under services/. */
  service: string;
  env: BenchEnv;
  logLevel?: string;
  /** Write a V8 CPU profile of the service into this directory when it exits. */
  cpuProfileDir?: string;
  extraEnv?: Record<string, string>;
  /** Run the service from this copy of its package instead of services/<service> (before/after comparisons). */
  sourceDir?: string;
}

export interface ServiceProcess {
  name: string;
  pid: number;
  apiUrl: string;
  opsUrl: string;
  /** Peak resident set size since start or the last `resetPeakRss()`, in MiB. */
  peakRssMb(): number;
  resetPeakRss(): void;
  stop(): Promise<void>;
}

/**
 * Runs a service binary the way it runs in production (its own process, configured by environment)
 * against the bench's database and namespace: `migrate` first, then serve until ready.
 */
export async function startServiceProcess(o: ServiceProcessOptions): Promise<ServiceProcess> {
  const port = await freePort();
  const opsPort = await freePort();
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    OPS_PORT: String(opsPort),
    HOST: '127.0.0.1',
    DATABASE_URL: o.env.database.url,
    NATS_URL: o.env.natsUrl,
    BUS_NAMESPACE: o.env.namespace,
    AUTH_JWT_SECRET: AUTH_SECRET,
    LOG_LEVEL: o.logLevel ?? 'info',
    SHUTDOWN_GRACE_MS: '2000',
    ...o.extraEnv,
  };
  const main = path.join(o.sourceDir ?? path.join('services', o.service), 'src', 'main.ts');
  const nodeArgs = [...serviceNodeFlags, '--conditions=punchcard-src', '--import', 'tsx'];

  const migrate = await runToEnd(nodeArgs.concat(main, 'migrate'), childEnv);
  if (migrate.code !== 0) throw new Error(`${o.service} migrate exited ${migrate.code}:\n${migrate.stderr.slice(-4000)}`);

  // One file per thread (the tsx loader runs in a worker); the main thread's is the larger.
  const profArgs = o.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(o.cpuProfileDir, o.service)}`] : [];
  const child = spawn(process.execPath, [...nodeArgs, ...profArgs, main], { cwd: REPO_ROOT, env: childEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-8000);
  });
  let stopping = false;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then((code) => {
    if (!stopping) process.stderr.write(`\n${o.service} exited unexpectedly (${code ?? child.signalCode}):\n${stderr.slice(-4000)}\n`);
  });
  const opsUrl = `http://127.0.0.1:${opsPort}`;
  const stop = async () => {
    stopping = true;
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    // Generous: a process writing a CPU profile on exit takes a while.
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  };
  o.env.defer(stop);
  await waitReady(o.service, opsUrl, child, () => stderr);
  const pid = child.pid!;
  return {
    name: o.service,
    pid,
    apiUrl: `http://127.0.0.1:${port}`,
    opsUrl,
    peakRssMb: () => peakRssMb(pid),
    resetPeakRss: () => resetPeakRss(pid),
    stop,
  };
}

async function waitReady(name: string, opsUrl: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited ${child.exitCode} before it was ready:\n${stderr()}`);
    try {
      const res = await fetch(`${opsUrl}/readyz`);
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} was not ready within 60 s:\n${stderr()}`);
}

function runToEnd(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stderr: out }));
  });
}

/** VmHWM: the kernel's high-water mark of the process's resident set. */
export function peakRssMb(pid: number | 'self'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
  return Math.round((kb / 1024) * 10) / 10;
}

/** Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0), so each phase gets its own peak. */
export function resetPeakRss(pid: number | 'self'): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // Not permitted (another user's process): the peak then covers the whole run.
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.once('error', reject);
  });
}
