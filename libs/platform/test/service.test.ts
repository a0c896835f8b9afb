import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import { promisify } from 'node:util';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import grpc from '@grpc/grpc-js';
import { SpanKind, trace } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { Health, HealthCheckResponse_ServingStatus } from '@punchcard/contracts/grpc/health/v1/health_pb';
import { grpcJsClient } from '@punchcard/testing';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken, startService, traceContextInterceptor, type RunningService } from '../src/index.js';
import { FailRequest_Kind, SampleService } from './gen/platformtest/v1/sample_pb.js';
import { captureLogs, reflect, SECRET, sampleConfig } from './helpers.js';
import { sampleDefinition } from './sample.js';

describe('a service on the platform', () => {
  const spans = new InMemorySpanExporter();
  const logs = captureLogs();
  let dependencyUp = true;
  let service: RunningService<{ lifecycle: string[] }>;
  let token: string;
  const auth = () => ({ headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    service = await startService(sampleDefinition({ dependencyUp: () => dependencyUp }), sampleConfig({ SAMPLE_GREETING: 'hi' }), {
      spanExporter: spans,
      logDestination: logs.destination,
    });
    token = await mintToken({ tenantId: 'tenant-a', roles: ['staff'], branchIds: ['b1'], subject: 'user-1' }, SECRET);
  });
  afterAll(() => service.stop());

  describe('speaks every protocol on one port', () => {
    it('Connect over HTTP/2 (binary)', async () => {
      const client = createClient(SampleService, createConnectTransport({ baseUrl: service.apiUrl, httpVersion: '2', useBinaryFormat: true }));
      const res = await client.echo({ text: 'h2' }, auth());
      expect(res).toMatchObject({ text: 'hi h2', tenantId: 'tenant-a', subject: 'user-1', roles: ['staff'] });
    });

    it('Connect JSON over HTTP/1.1', async () => {
      const client = createClient(SampleService, createConnectTransport({ baseUrl: service.apiUrl, httpVersion: '1.1' }));
      expect((await client.echo({ text: 'h1' }, auth())).text).toBe('hi h1');
    });

    it('Connect JSON from a plain HTTP/1.1 POST, as curl sends it', async () => {
      const res = await fetch(`${service.apiUrl}/platformtest.v1.SampleService/Echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ text: 'curl' }),
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ text: 'hi curl', tenantId: 'tenant-a' });
    });

    it('gRPC from @grpc/grpc-js', async () => {
      const client = grpcJsClient(SampleService, service.apiUrl);
      try {
        expect(await client.call('echo', { text: 'grpc' }, { token })).toMatchObject({ text: 'hi grpc', tenantId: 'tenant-a' });
      } finally {
        client.close();
      }
    });

    it('gRPC-Web over HTTP/1.1 and HTTP/2', async () => {
      for (const httpVersion of ['1.1', '2'] as const) {
        const client = createClient(SampleService, createGrpcWebTransport({ baseUrl: service.apiUrl, httpVersion }));
        expect((await client.echo({ text: `web ${httpVersion}` }, auth())).text).toBe(`hi web ${httpVersion}`);
      }
    });

    it('HTTP/1.1 arriving a few bytes at a time ("POST" starts like the HTTP/2 preface)', async () => {
      const body = JSON.stringify({ text: 'slow' });
      const request = [
        'POST /platformtest.v1.SampleService/Echo HTTP/1.1',
        'host: localhost',
        'content-type: application/json',
        `authorization: Bearer ${token}`,
        `content-length: ${Buffer.byteLength(body)}`,
        'connection: close',
        '',
        body,
      ].join('\r\n');
      const { hostname, port } = new URL(service.apiUrl);
      const response = await new Promise<string>((resolve, reject) => {
        const socket = net.connect({ host: hostname, port: Number(port), noDelay: true }, async () => {
          for (const piece of [request.slice(0, 1), request.slice(1, 3), request.slice(3)]) {
            await new Promise<void>((done) => socket.write(piece, () => done()));
          }
        });
        let received = '';
        socket.on('data', (d: Buffer) => (received += d.toString()));
        socket.on('end', () => resolve(received));
        socket.on('error', reject);
      });
      expect(response).toMatch(/^HTTP\/1\.1 200 /);
      expect(response).toContain('"text":"hi slow"');
    });

    it('server streaming over gRPC', async () => {
      const client = createClient(SampleService, createGrpcTransport({ baseUrl: service.apiUrl }));
      const ticks: number[] = [];
      for await (const tick of client.ticks({ count: 3 }, auth())) ticks.push(tick.n);
      expect(ticks).toEqual([1, 2, 3]);
    });
  });

  describe('authenticates every call except health and reflection', () => {
    const callWith = async (authorization?: string) => {
      const client = createClient(SampleService, createConnectTransport({ baseUrl: service.apiUrl, httpVersion: '2' }));
      const err = await client.echo({ text: 'x' }, authorization ? { headers: { authorization } } : {}).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      return err;
    };

    it('rejects a call without a token', async () => {
      const err = await callWith();
      expect(err?.code).toBe(Code.Unauthenticated);
      expect(err?.rawMessage).toMatch(/missing bearer token/);
    });

    it('rejects a token signed with another secret, over gRPC too', async () => {
      const forged = await mintToken({ tenantId: 'tenant-a', roles: ['admin'] }, 'an-attacker-secret-0123456789abcdef');
      expect((await callWith(`Bearer ${forged}`))?.rawMessage).toMatch(/signature verification failed/);
      const client = grpcJsClient(SampleService, service.apiUrl);
      try {
        await expect(client.call('echo', { text: 'x' }, { token: forged })).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
        await expect(client.call('echo', { text: 'x' })).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
      } finally {
        client.close();
      }
    });

    it('rejects an expired token, a malformed header and a token without tenant_id', async () => {
      const expired = await mintToken({ tenantId: 'tenant-a', roles: [], expiresInSeconds: -60 }, SECRET);
      expect((await callWith(`Bearer ${expired}`))?.rawMessage).toMatch(/expired/);
      expect((await callWith(`Basic dXNlcjpwYXNz`))?.code).toBe(Code.Unauthenticated);
      const noTenant = await new SignJWT({ roles: [] })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('u')
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode(SECRET));
      const err = await callWith(`Bearer ${noTenant}`);
      expect(err?.code).toBe(Code.Unauthenticated);
      expect(err?.rawMessage).toMatch(/claim tenant_id is missing/);
    });

    it('rejects a token that picks the "none" algorithm', async () => {
      const header = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
      const body = Buffer.from(JSON.stringify({ sub: 'u', tenant_id: 'tenant-a', roles: ['admin'] })).toString('base64url');
      expect((await callWith(`Bearer ${header}.${body}.`))?.code).toBe(Code.Unauthenticated);
    });

    it('denies a method that needs a role the caller lacks', async () => {
      const client = createClient(SampleService, createConnectTransport({ baseUrl: service.apiUrl, httpVersion: '2' }));
      const err = await client.fail({ kind: FailRequest_Kind.PERMISSION }, auth()).catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.PermissionDenied);
      expect((err as ConnectError).rawMessage).toBe('requires role admin; caller user-1 has staff');
      const admin = await mintToken({ tenantId: 'tenant-a', roles: ['admin'] }, SECRET);
      await expect(client.fail({ kind: FailRequest_Kind.PERMISSION }, { headers: { authorization: `Bearer ${admin}` } })).resolves.toBeDefined();
    });
  });

  describe('errors', () => {
    const client = () => createClient(SampleService, createGrpcTransport({ baseUrl: service.apiUrl }));

    it('names the field of an invalid argument', async () => {
      const err = await client().fail({ kind: FailRequest_Kind.INVALID_ARGUMENT }, auth()).catch((e: unknown) => ConnectError.from(e));
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect((err as ConnectError).rawMessage).toBe('kind: must not be INVALID_ARGUMENT');
    });

    it('spells the message so a stock gRPC client reads it unchanged (colons, commas, non-ASCII)', async () => {
      const client = grpcJsClient(SampleService, service.apiUrl);
      try {
        const err = await client.call('fail', { kind: FailRequest_Kind.INVALID_ARGUMENT }, { token }).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'kind: must not be INVALID_ARGUMENT' });
      } finally {
        client.close();
      }
    });

    it('answers an unexpected error with Internal and its trace id, logging the details', async () => {
      const err = (await client().fail({ kind: FailRequest_Kind.UNEXPECTED }, auth()).catch((e: unknown) => ConnectError.from(e))) as ConnectError;
      expect(err.code).toBe(Code.Internal);
      expect(err.rawMessage).not.toMatch(/ECONNREFUSED|secret/);
      const traceId = /trace ([0-9a-f]{32})/.exec(err.rawMessage)?.[1];
      expect(traceId).toBeDefined();
      const logged = logs.lines.find((l) => l.msg === 'unexpected error, answered Internal');
      expect(logged).toMatchObject({ level: 'error', trace_id: traceId, service: 'platform-sample', rpc: 'platformtest.v1.SampleService/Fail' });
      expect(JSON.stringify(logged)).toMatch(/ECONNREFUSED 10\.0\.0\.7/);
    });
  });

  describe('tracing', () => {
    it('opens a server span per RPC, child of the caller’s traceparent, with rpc attributes and tenant id', async () => {
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const parentSpanId = '00f067aa0ba902b7';
      const client = createClient(SampleService, createConnectTransport({ baseUrl: service.apiUrl, httpVersion: '1.1' }));
      const res = await client.echo({ text: 'traced' }, { headers: { authorization: `Bearer ${token}`, traceparent: `00-${traceId}-${parentSpanId}-01` } });
      expect(res.traceId).toBe(traceId);
      const span = spans.getFinishedSpans().find((s) => s.spanContext().traceId === traceId);
      expect(span?.name).toBe('platformtest.v1.SampleService/Echo');
      expect(span?.kind).toBe(SpanKind.SERVER);
      expect(span?.parentSpanContext?.spanId).toBe(parentSpanId);
      expect(span?.attributes).toMatchObject({
        'rpc.system': 'connect_rpc',
        'rpc.service': 'platformtest.v1.SampleService',
        'rpc.method': 'Echo',
        'rpc.grpc.status_code': 0,
        'punchcard.tenant_id': 'tenant-a',
        'enduser.id': 'user-1',
      });
    });

    it('carries the caller’s trace into the callee through traceContextInterceptor', async () => {
      const client = createClient(SampleService, createGrpcTransport({ baseUrl: service.apiUrl, interceptors: [traceContextInterceptor()] }));
      const caller = trace.getTracer('test-caller');
      const traceId = await caller.startActiveSpan('caller work', async (parent) => {
        await client.echo({ text: 'propagated' }, auth());
        parent.end();
        return parent.spanContext().traceId;
      });
      const names = spans.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
      const server = names.find((s) => s.kind === SpanKind.SERVER);
      const clientSpan = names.find((s) => s.kind === SpanKind.CLIENT);
      expect(clientSpan?.name).toBe('platformtest.v1.SampleService/Echo');
      expect(server?.parentSpanContext?.spanId).toBe(clientSpan?.spanContext().spanId);
    });

    it('leaves health probes out of the traces', async () => {
      const health = createClient(Health, createGrpcTransport({ baseUrl: service.apiUrl }));
      await health.check({ service: '' });
      expect(spans.getFinishedSpans().map((s) => s.name)).not.toContain('grpc.health.v1.Health/Check');
    });
  });

  describe('grpc.health.v1', () => {
    it('answers Check over gRPC without a token', async () => {
      const client = grpcJsClient(Health, service.apiUrl);
      try {
        expect((await client.call('check', { service: '' })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
        expect((await client.call('check', { service: 'platformtest.v1.SampleService' })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
        await expect(client.call('check', { service: 'nope.v1.Nope' })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
        dependencyUp = false;
        expect((await client.call('check', { service: '' })).status).toBe(HealthCheckResponse_ServingStatus.NOT_SERVING);
      } finally {
        dependencyUp = true;
        client.close();
      }
    });

    it('lists every served service', async () => {
      const client = createClient(Health, createGrpcTransport({ baseUrl: service.apiUrl }));
      const { statuses } = await client.list({});
      expect(Object.keys(statuses).sort()).toEqual([
        '',
        'grpc.health.v1.Health',
        'grpc.reflection.v1.ServerReflection',
        'grpc.reflection.v1alpha.ServerReflection',
        'platformtest.v1.SampleService',
      ]);
    });
  });

  describe('server reflection', () => {
    it.each(['v1', 'v1alpha'] as const)('%s lists services and serves descriptors to @grpc/grpc-js', async (version) => {
      const [list, bySymbol, byMethod, byFile, missing] = await reflect(service.apiUrl, version, [
        { messageRequest: { case: 'listServices', value: '' } },
        { messageRequest: { case: 'fileContainingSymbol', value: 'platformtest.v1.SampleService' } },
        { messageRequest: { case: 'fileContainingSymbol', value: 'platformtest.v1.SampleService.Echo' } },
        { messageRequest: { case: 'fileByFilename', value: 'grpc/health/v1/health.proto' } },
        { messageRequest: { case: 'fileContainingSymbol', value: 'nope.v1.Nope' } },
      ]);
      expect(list?.messageResponse.case).toBe('listServicesResponse');
      const names = list?.messageResponse.case === 'listServicesResponse' ? list.messageResponse.value.service.map((s) => s.name) : [];
      expect(names).toEqual(expect.arrayContaining(['platformtest.v1.SampleService', 'grpc.health.v1.Health', `grpc.reflection.${version}.ServerReflection`]));

      const files = (res: typeof bySymbol) =>
        res?.messageResponse.case === 'fileDescriptorResponse'
          ? res.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b))
          : [];
      const sample = files(bySymbol);
      expect(sample.map((f) => f.name)).toEqual(['platformtest/v1/sample.proto', 'google/protobuf/timestamp.proto']);
      expect(sample[0]?.service[0]?.method.map((m) => m.name)).toEqual(['Echo', 'Fail', 'Ticks']);
      // Already sent on this stream: only the requested file again, not its imports.
      expect(files(byMethod).map((f) => f.name)).toEqual(['platformtest/v1/sample.proto']);
      expect(files(byFile)[0]?.package).toBe('grpc.health.v1');
      expect(missing?.messageResponse).toMatchObject({ case: 'errorResponse', value: { errorCode: Code.NotFound } });
      expect(missing?.originalRequest?.messageRequest).toEqual({ case: 'fileContainingSymbol', value: 'nope.v1.Nope' });
    });
  });

  describe('buf curl', () => {
    const buf = createRequire(import.meta.url).resolve('@bufbuild/buf/bin/buf');
    const run = async (args: string[]) => (await promisify(execFile)(buf, ['curl', ...args])).stdout;

    it('lists the methods through reflection over gRPC', async () => {
      const methods = await run(['--protocol', 'grpc', '--http2-prior-knowledge', '--list-methods', service.apiUrl]);
      expect(methods.split('\n')).toEqual(expect.arrayContaining(['platformtest.v1.SampleService/Echo', 'grpc.health.v1.Health/Check']));
    });

    it('calls a method described by reflection, with Connect over HTTP/1.1', async () => {
      const out = await run(['-H', `authorization: Bearer ${token}`, '-d', '{"text":"buf"}', `${service.apiUrl}/platformtest.v1.SampleService/Echo`]);
      expect(JSON.parse(out)).toMatchObject({ text: 'hi buf', tenantId: 'tenant-a' });
    });
  });

  describe('ops port', () => {
    it('/healthz answers while the process runs', async () => {
      const res = await fetch(`${service.opsUrl}/healthz`);
      expect(res.status).toBe(200);
    });

    it('/readyz runs the readiness checks', async () => {
      const ok = await fetch(`${service.opsUrl}/readyz`);
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ status: 'ready', checks: { sample: 'ok' } });
      dependencyUp = false;
      try {
        const down = await fetch(`${service.opsUrl}/readyz`);
        expect(down.status).toBe(503);
        expect(await down.json()).toEqual({ status: 'not ready', checks: { sample: 'sample dependency is down' } });
      } finally {
        dependencyUp = true;
      }
    });

    it('/metrics has default metrics and RPC counts by method and code', async () => {
      const client = createClient(SampleService, createGrpcTransport({ baseUrl: service.apiUrl }));
      await client.echo({ text: 'counted' }, auth());
      await client.fail({ kind: FailRequest_Kind.INVALID_ARGUMENT }, auth()).catch(() => undefined);
      const res = await fetch(`${service.opsUrl}/metrics`);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await res.text();
      expect(text).toMatch(/^process_cpu_user_seconds_total\{service="platform-sample"\} /m);
      expect(text).toMatch(
        /^grpc_server_handled_total\{grpc_type="unary",grpc_service="platformtest\.v1\.SampleService",grpc_method="Echo",grpc_code="OK",service="platform-sample"\} [1-9]/m,
      );
      expect(text).toMatch(/^grpc_server_handled_total\{[^}]*grpc_method="Fail",grpc_code="InvalidArgument"[^}]*\} [1-9]/m);
      expect(text).toMatch(/^grpc_server_handling_seconds_bucket\{[^}]*grpc_method="Echo"[^}]*\} /m);
    });
  });
});
