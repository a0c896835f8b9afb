import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { grpcJsClient } from '@punchcard/testing';
import { describe, expect, it } from 'vitest';
import { mintToken } from '../src/index.js';
import { SampleService } from './gen/platformtest/v1/sample_pb.js';
import { SECRET } from './helpers.js';

const fixture = fileURLToPath(new URL('./fixtures/sample-main.ts', import.meta.url));

function spawnSample(env: Record<string, string>, args: string[] = []) {
  const child = spawn(process.execPath, ['--conditions=punchcard-src', '--import', 'tsx', fixture, ...args], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', OPS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ msg: string; resolve: (line: Record<string, unknown>) => void }> = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const line = JSON.parse(text) as Record<string, unknown>;
    lines.push(line);
    for (const w of waiters.filter((w) => w.msg === line.msg)) w.resolve(line);
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    logged: (msg: string) =>
      new Promise<Record<string, unknown>>((resolve) => {
        const seen = lines.find((l) => l.msg === msg);
        if (seen) resolve(seen);
        else waiters.push({ msg, resolve });
      }),
  };
}

function kill(child: ChildProcess) {
  if (child.exitCode === null) child.kill('SIGKILL');
}

describe('runService', () => {
  it('serves until SIGTERM, drains the in-flight call and exits 0', async () => {
    const sample = spawnSample({ AUTH_JWT_SECRET: SECRET, LOG_LEVEL: 'info' });
    try {
      const serving = await Promise.race([sample.logged('serving'), sample.exited.then(() => ({ api: undefined }))]);
      expect(serving.api, sample.stderr()).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const client = grpcJsClient(SampleService, serving.api as string);
      const token = await mintToken({ tenantId: 'tenant-a', roles: [] }, SECRET);
      const inFlight = client.call('echo', { text: 'hold' }, { token });
      await sample.logged('holding');
      sample.child.kill('SIGTERM');
      await expect(inFlight).resolves.toMatchObject({ text: 'hello hold' });
      client.close();
      expect(await sample.exited).toBe(0);
      const messages = sample.lines.map((l) => l.msg);
      expect(messages.slice(messages.indexOf('shutting down'))).toEqual(['shutting down', 'draining', 'stopped']);
    } finally {
      kill(sample.child);
    }
  });

  it('runs the migrations and exits 0 when called with "migrate"', async () => {
    const sample = spawnSample({ AUTH_DEV_MODE: '1' }, ['migrate']);
    try {
      expect(await sample.exited, sample.stderr()).toBe(0);
      expect(sample.lines.find((l) => l.msg === 'migrated')).toMatchObject({ schema: 'platform_sample' });
    } finally {
      kill(sample.child);
    }
  });

  it('exits 1 at start naming every invalid variable', async () => {
    const sample = spawnSample({ PORT: 'eighty' });
    try {
      expect(await sample.exited).toBe(1);
      expect(sample.stderr()).toContain('invalid configuration for platform-sample:');
      expect(sample.stderr()).toContain('PORT: must be a port number (0-65535)');
      expect(sample.stderr()).toContain('AUTH_JWT_SECRET: is required');
    } finally {
      kill(sample.child);
    }
  });
});
