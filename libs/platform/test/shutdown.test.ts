import net from 'node:net';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { Health, HealthCheckResponse_ServingStatus as Status } from '@punchcard/contracts/grpc/health/v1/health_pb';
import { grpcJsClient } from '@punchcard/testing';
import { describe, expect, it } from 'vitest';
import { mintToken, startService } from '../src/index.js';
import { SampleService } from './gen/platformtest/v1/sample_pb.js';
import { captureLogs, SECRET, sampleConfig } from './helpers.js';
import { sampleDefinition } from './sample.js';

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function refused(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

describe('graceful shutdown', () => {
  it('stops being ready, refuses new connections, drains the in-flight call, then runs stop and close hooks', async () => {
    const release = deferred();
    const holding = deferred();
    const logs = captureLogs();
    const service = await startService(
      sampleDefinition({ hold: () => release.promise, holding: holding.resolve }),
      sampleConfig({ SHUTDOWN_GRACE_MS: '600000' }),
      { logDestination: logs.destination },
    );
    const token = await mintToken({ tenantId: 'tenant-a', roles: ['staff'] }, SECRET);

    const watcher = createClient(Health, createGrpcTransport({ baseUrl: service.apiUrl }));
    const watch = watcher.watch({ service: '' })[Symbol.asyncIterator]();
    expect((await watch.next()).value?.status).toBe(Status.SERVING);

    const client = grpcJsClient(SampleService, service.apiUrl);
    const inFlight = client.call('echo', { text: 'hold' }, { token });
    await holding.promise;

    const stopped = service.stop();
    // A Watch hears NOT_SERVING and ends, so watchers do not hold up the drain.
    expect((await watch.next()).value?.status).toBe(Status.NOT_SERVING);
    expect((await watch.next()).done).toBe(true);
    const readyz = await fetch(`${service.opsUrl}/readyz`);
    expect(readyz.status).toBe(503);
    expect(await readyz.json()).toMatchObject({ status: 'draining' });
    expect(await refused(service.apiUrl)).toBe(true);
    expect(service.state.lifecycle).toEqual(['setup', 'started']);

    release.resolve();
    await expect(inFlight).resolves.toMatchObject({ text: 'hello hold', tenantId: 'tenant-a' });
    await stopped;
    client.close();
    expect(service.state.lifecycle).toEqual(['setup', 'started', 'stopped', 'closed']);
    expect(logs.lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['draining', 'stopped']));
    expect(await refused(service.opsUrl)).toBe(true);
  });

  it('cancels calls still running when the grace period is over', async () => {
    const holding = deferred();
    const service = await startService(
      sampleDefinition({
        holding: holding.resolve,
        hold: (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })),
      }),
      sampleConfig({ SHUTDOWN_GRACE_MS: '0', LOG_LEVEL: 'silent' }),
    );
    const token = await mintToken({ tenantId: 'tenant-a', roles: [] }, SECRET);
    const client = createClient(SampleService, createGrpcTransport({ baseUrl: service.apiUrl }));
    const inFlight = client.echo({ text: 'hold' }, { headers: { authorization: `Bearer ${token}` } }).catch((e: unknown) => ConnectError.from(e));
    await holding.promise;
    await service.stop();
    const err = await inFlight;
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect((err as ConnectError).rawMessage).toBe('server is shutting down');
    expect(service.state.lifecycle).toEqual(['setup', 'started', 'stopped', 'closed']);
  });

  it('holds many calls at once without warning of a listener leak on its shutdown signal', async () => {
    const CALLS = 25;
    const release = deferred();
    const allHolding = deferred();
    let holding = 0;
    const warnings: Error[] = [];
    const onWarning = (w: Error) => void warnings.push(w);
    process.on('warning', onWarning);
    const service = await startService(
      sampleDefinition({ hold: () => release.promise, holding: () => ++holding === CALLS && allHolding.resolve() }),
      sampleConfig({ LOG_LEVEL: 'silent' }),
    );
    try {
      const token = await mintToken({ tenantId: 'tenant-a', roles: [] }, SECRET);
      const client = createClient(SampleService, createGrpcTransport({ baseUrl: service.apiUrl }));
      const calls = Array.from({ length: CALLS }, () => client.echo({ text: 'hold' }, { headers: { authorization: `Bearer ${token}` } }));
      await allHolding.promise;
      release.resolve();
      expect((await Promise.all(calls)).map((r) => r.text)).toEqual(Array(CALLS).fill('hello hold'));
      // Node emits the warning on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await service.stop();
    }
  });

  it('releases what setup opened when start fails', async () => {
    const definition = sampleDefinition();
    let lifecycle: string[] = [];
    const failing = {
      ...definition,
      start(ctx: Parameters<NonNullable<typeof definition.start>>[0]) {
        lifecycle = ctx.state.lifecycle;
        throw new Error('consumer could not start');
      },
    };
    await expect(startService(failing, sampleConfig({ LOG_LEVEL: 'silent' }))).rejects.toThrow('consumer could not start');
    expect(lifecycle).toEqual(['setup', 'closed']);
  });
});
