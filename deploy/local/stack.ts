import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { serviceNodeFlags } from '@punchcard/platform';
import { lines } from './logs.js';

/** One Punchcard service as the launcher runs it: `node <serviceNodeFlags> --import tsx services/<name>/src/main.ts`. */
export interface ServiceSpec {
  name: string;
  ports: { api: number; ops: number };
  /** Services whose API URL this one is given, so it starts once they serve. */
  needs: readonly string[];
  /** The service's own variables, from the API URLs of the services it needs. */
  env(ctx: SpecContext): Record<string, string>;
}

export interface SpecContext {
  urls: Readonly<Record<string, string>>;
  secrets: StackSecrets;
  /** Ports are picked by the OS (tests), so extra listeners must be 0 too. */
  anyPorts: boolean;
  dataDir?: string;
}

export interface StackSecrets {
  /** billing-integration's key for the provider and connector credentials it stores (32 bytes, base64). */
  billingSecretsKey: string;
}

/** Every service, in start order. */
export const SERVICES: readonly ServiceSpec[] = [
  { name: 'catalogue', ports: { api: 7101, ops: 7201 }, needs: [], env: () => ({}) },
  { name: 'entitlement-ledger', ports: { api: 7102, ops: 7202 }, needs: [], env: () => ({}) },
  { name: 'revenue-recognition', ports: { api: 7104, ops: 7204 }, needs: [], env: () => ({}) },
  {
    name: 'expiry-scheduler',
    ports: { api: 7103, ops: 7203 },
    needs: ['entitlement-ledger'],
    env: ({ urls }) => ({ LEDGER_URL: urls['entitlement-ledger']! }),
  },
  {
    name: 'billing-integration',
    ports: { api: 7105, ops: 7205 },
    needs: ['entitlement-ledger'],
    env: ({ urls, secrets, anyPorts, dataDir }) => ({
      LEDGER_URL: urls['entitlement-ledger']!,
      BILLING_SECRETS_KEY: secrets.billingSecretsKey,
      // Card processors post payment webhooks here (POST /webhooks/<provider>/<tenant>).
      WEBHOOK_PORT: anyPorts ? '0' : '7305',
      WEBHOOKS_ALLOW_INSECURE_LOOPBACK: '1',
      ...(dataDir ? { BILLING_EXPORT_DIR: path.join(dataDir, 'exports') } : {}),
    }),
  },
];

export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');

/** The services whose `src/main.ts` exists: the launcher grows with the repository. */
export function availableServices(root = REPO_ROOT): ServiceSpec[] {
  return SERVICES.filter((s) => existsSync(mainOf(root, s.name)));
}

function mainOf(root: string, name: string): string {
  return path.join(root, 'services', name, 'src', 'main.ts');
}

export interface StackOptions {
  root?: string;
  databaseUrl: string;
  natsUrl: string;
  /** Prefix of stream and subject names; '' (default) as in production, a testNamespace() in tests. */
  busNamespace?: string;
  /** `dev` = AUTH_DEV_MODE=1 (tokens signed with DEV_JWT_SECRET); else the HS256 secret. */
  auth: 'dev' | { secret: string };
  /** Fixed default ports (7101…) or 0 everywhere (tests: URLs are read from each service's start log). */
  ports: 'default' | 'any';
  secrets: StackSecrets;
  /** Extra variables for every service (LOG_LEVEL, OTEL_*). */
  env?: Record<string, string>;
  /** Only these services (default: every available one). */
  only?: readonly string[];
  /** Every output line of every service and migration, as written (JSON from pino). */
  onLine?: (service: string, line: string, stream: 'stdout' | 'stderr') => void;
  /** Where services keep local files (billing's csv/json exports); none when unset. */
  dataDir?: string;
  /** Remembers the pids of the services, so a later start can stop ones a killed launcher left behind. */
  pidFile?: string;
}

export interface RunningService {
  name: string;
  apiUrl: string;
  opsUrl: string;
  pid: number;
}

export interface RunningStack {
  services: Record<string, RunningService>;
  /** Resolves with the first service that exits on its own (a crash), never if none does. */
  exited: Promise<{ name: string; code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM to every service, then SIGKILL for those still running after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** The environment a service process gets: the caller's, minus what would make every service clash. */
function baseEnv(o: StackOptions): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    if (/^(PORT|OPS_PORT|SERVICE_NAME|DATABASE_SCHEMA|AUTH_.*|NODE_ENV)$/.test(k)) continue;
    env[k] = v;
  }
  Object.assign(env, {
    DATABASE_URL: o.databaseUrl,
    NATS_URL: o.natsUrl,
    BUS_NAMESPACE: o.busNamespace ?? '',
    NODE_ENV: 'development',
    ...(o.auth === 'dev' ? { AUTH_DEV_MODE: '1' } : { AUTH_JWT_SECRET: o.auth.secret }),
    ...o.env,
  });
  return env;
}

function nodeArgs(root: string, name: string, extra: string[] = []): string[] {
  return [...serviceNodeFlags, '--conditions=punchcard-src', '--import', 'tsx', path.relative(root, mainOf(root, name)), ...extra];
}

function selected(o: StackOptions): ServiceSpec[] {
  const available = availableServices(o.root ?? REPO_ROOT);
  return o.only ? available.filter((s) => o.only!.includes(s.name)) : available;
}

/** Runs every service's `main.ts migrate` (in parallel: each owns its schema); throws with the output of any that fail. */
export async function migrateAll(o: StackOptions): Promise<string[]> {
  const root = o.root ?? REPO_ROOT;
  const services = selected(o);
  const env = baseEnv(o);
  const results = await Promise.all(
    services.map(
      (s) =>
        new Promise<{ name: string; code: number | null; output: string[] }>((resolve) => {
          const output: string[] = [];
          const child = spawn(process.execPath, nodeArgs(root, s.name, ['migrate']), {
            cwd: root,
            env: { ...env, ...s.env(specContext(o, placeholderUrls())) },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          for (const stream of ['stdout', 'stderr'] as const) {
            const split = lines((line) => {
              output.push(line);
              o.onLine?.(s.name, line, stream);
            });
            child[stream].on('data', (c: Buffer) => split.push(c));
            child[stream].on('end', () => split.end());
          }
          child.on('close', (code) => resolve({ name: s.name, code, output }));
        }),
    ),
  );
  const failed = results.filter((r) => r.code !== 0);
  if (failed.length > 0) {
    throw new Error(failed.map((f) => `${f.name} migrate exited ${f.code}:\n  ${f.output.slice(-15).join('\n  ')}`).join('\n'));
  }
  return results.map((r) => r.name);
}

function specContext(o: StackOptions, urls: Record<string, string>): SpecContext {
  return { urls, secrets: o.secrets, anyPorts: o.ports === 'any', ...(o.dataDir ? { dataDir: o.dataDir } : {}) };
}

// Migrations need no other service, but a service's env schema may require the URLs to be set.
function placeholderUrls(): Record<string, string> {
  return Object.fromEntries(SERVICES.map((s) => [s.name, `http://127.0.0.1:${s.ports.api}`]));
}

/**
 * Starts the services as child processes (each in its own process group, so a terminal Ctrl-C
 * reaches only the launcher, which stops them in order), each once the services it needs serve,
 * and resolves when every one answers /readyz.
 */
export async function startStack(o: StackOptions): Promise<RunningStack> {
  const root = o.root ?? REPO_ROOT;
  if (o.ports === 'any' && /^(warn|error|fatal|silent)$/.test(o.env?.LOG_LEVEL ?? '')) {
    throw new Error(`ports: 'any' needs LOG_LEVEL info or lower: the launcher learns each service's ports from its "serving" log line`);
  }
  const services = selected(o);
  const env = baseEnv(o);
  if (o.pidFile) await stopLeftovers(o.pidFile);

  const children = new Map<string, ChildProcess>();
  const running: Record<string, RunningService> = {};
  const urls: Record<string, string> = {};
  let stopping = false;
  let onExit: (e: { name: string; code: number | null; signal: NodeJS.Signals | null }) => void = () => undefined;
  const exited = new Promise<{ name: string; code: number | null; signal: NodeJS.Signals | null }>((resolve) => (onExit = resolve));

  const savePids = () => {
    if (o.pidFile) writeFileSync(o.pidFile, JSON.stringify(Object.fromEntries([...children].map(([n, c]) => [n, c.pid]))));
  };

  const stop = async (graceMs = 20_000) => {
    stopping = true;
    await Promise.all(
      [...children.values()].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
    if (o.pidFile) rmSync(o.pidFile, { force: true });
  };

  const launch = (spec: ServiceSpec) =>
    new Promise<RunningService>((resolve, reject) => {
      const ports = o.ports === 'default' ? spec.ports : { api: 0, ops: 0 };
      const child = spawn(process.execPath, nodeArgs(root, spec.name), {
        cwd: root,
        env: {
          ...env,
          PORT: String(ports.api),
          OPS_PORT: String(ports.ops),
          HOST: '127.0.0.1',
          ...spec.env(specContext(o, urls)),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      children.set(spec.name, child);
      savePids();
      const recent: string[] = [];
      // Fixed ports are known; ports the OS picks are read from the service's `serving` log line.
      let served: { apiUrl: string; opsUrl: string } | undefined =
        o.ports === 'default' ? { apiUrl: `http://127.0.0.1:${ports.api}`, opsUrl: `http://127.0.0.1:${ports.ops}` } : undefined;
      for (const stream of ['stdout', 'stderr'] as const) {
        const split = lines((line) => {
          recent.push(line);
          if (recent.length > 30) recent.shift();
          if (!served) served = servingUrls(line);
          o.onLine?.(spec.name, line, stream);
        });
        child[stream].on('data', (c: Buffer) => split.push(c));
        child[stream].on('end', () => split.end());
      }
      let ready = false;
      child.once('exit', (code, signal) => {
        if (!ready) reject(new Error(`${spec.name} exited (${code ?? signal}) before it was ready:\n  ${recent.join('\n  ')}`));
        else if (!stopping) onExit({ name: spec.name, code, signal });
      });
      void (async () => {
        const deadline = Date.now() + 90_000;
        while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
          if (served && (await isReady(served.opsUrl))) {
            ready = true;
            return resolve({ name: spec.name, pid: child.pid!, ...served });
          }
          await new Promise((r) => setTimeout(r, 150));
        }
        if (child.exitCode === null) reject(new Error(`${spec.name} was not ready within 90 s:\n  ${recent.join('\n  ')}`));
      })();
    });

  try {
    const pending = new Map(services.map((s) => [s.name, s]));
    while (pending.size > 0) {
      const wave = [...pending.values()].filter((s) => s.needs.every((n) => urls[n] || !pending.has(n)));
      if (wave.length === 0) throw new Error(`cannot start ${[...pending.keys()].join(', ')}: they need services that are not available`);
      const missing = wave.flatMap((s) => s.needs.filter((n) => !urls[n]).map((n) => `${s.name} needs ${n}`));
      if (missing.length > 0) throw new Error(`${missing.join('; ')}, which has no src/main.ts or was not selected`);
      for (const s of wave) pending.delete(s.name);
      const started = await Promise.all(wave.map(launch));
      for (const s of started) {
        running[s.name] = s;
        urls[s.name] = s.apiUrl;
      }
    }
  } catch (err) {
    await stop(5_000);
    throw err;
  }
  return { services: running, exited, stop };
}

/** The platform logs `serving` with the API and ops URLs once both listen (ports may have been 0). */
function servingUrls(line: string): { apiUrl: string; opsUrl: string } | undefined {
  if (!line.includes('"serving"')) return undefined;
  try {
    const parsed = JSON.parse(line) as { msg?: string; api?: string; ops?: string };
    if (parsed.msg === 'serving' && parsed.api && parsed.ops) return { apiUrl: parsed.api, opsUrl: parsed.ops };
  } catch {
    // not a log line of ours
  }
  return undefined;
}

async function isReady(opsUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${opsUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/** Services a killed launcher left running (they are detached): stop them, checking each pid is still one of ours. */
async function stopLeftovers(pidFile: string): Promise<void> {
  if (!existsSync(pidFile)) return;
  let pids: Record<string, number> = {};
  try {
    pids = JSON.parse(readFileSync(pidFile, 'utf8')) as Record<string, number>;
  } catch {
    // unreadable: nothing to stop
  }
  const ours = Object.entries(pids).filter(([name, pid]) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(path.join('services', name, 'src', 'main.ts'));
    } catch {
      return false;
    }
  });
  for (const [, pid] of ours) process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 200 && ours.some(([, pid]) => alive(pid)); i++) await new Promise((r) => setTimeout(r, 100));
  for (const [, pid] of ours) if (alive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(pidFile, { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
