import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dockerEngineAnswers } from './docker.js';

const LOCAL = { host: '127.0.0.1', port: 4222 };
let natsUrl: Promise<string> | undefined;
let spawned: ChildProcess | undefined;

/**
 * A NATS server with JetStream, in this order: TEST_NATS_URL, a testcontainers NATS when a Docker
 * engine answers, the local server on 127.0.0.1:4222, else `nats-server -js` from PATH in a temp dir.
 */
export function testNats(): Promise<string> {
  natsUrl ??= resolveNatsUrl();
  return natsUrl;
}

/** A unique prefix for stream and subject names, so test files never share JetStream state. */
export function testNamespace(label = 't'): string {
  return `${label.replace(/[^a-z0-9]/gi, '').toLowerCase()}${randomBytes(4).toString('hex')}`;
}

async function resolveNatsUrl(): Promise<string> {
  const fromEnv = process.env.TEST_NATS_URL;
  if (fromEnv) return fromEnv;
  if (dockerEngineAnswers()) {
    const { GenericContainer, Wait } = await import('testcontainers');
    const container = await new GenericContainer('nats:2.10-alpine')
      .withCommand(['-js'])
      .withExposedPorts(4222)
      .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
      .start();
    return `nats://${container.getHost()}:${container.getMappedPort(4222)}`;
  }
  if (await listening(LOCAL.host, LOCAL.port)) return `nats://${LOCAL.host}:${LOCAL.port}`;
  return startLocalNatsServer();
}

async function startLocalNatsServer(): Promise<string> {
  if (spawnSync('nats-server', ['--version']).status !== 0) {
    throw new Error('No NATS for tests: set TEST_NATS_URL, run a Docker engine, or install nats-server (apt-get install nats-server)');
  }
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'punchcard-nats-'));
  spawned = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir], { stdio: 'ignore' });
  process.once('exit', () => spawned?.kill());
  for (let i = 0; i < 100; i++) {
    if (await listening('127.0.0.1', port)) return `nats://127.0.0.1:${port}`;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nats-server did not start listening on port ${port}`);
}

function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 1000 });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
  });
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
