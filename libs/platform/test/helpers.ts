import grpc from '@grpc/grpc-js';
import { createHandlerContext } from '@connectrpc/connect';
import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import {
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  type ServerReflectionResponse,
} from '@punchcard/contracts/grpc/reflection/v1/reflection_pb';
import * as v1alpha from '@punchcard/contracts/grpc/reflection/v1alpha/reflection_pb';
import { connectBus, deleteStreams } from '@punchcard/bus';
import { createTestDatabase, testNamespace, testNats, type TestDatabase } from '@punchcard/testing';
import { loadConfig } from '../src/index.js';
import { SampleService } from './gen/platformtest/v1/sample_pb.js';
import { sampleDefinition } from './sample.js';

export const SECRET = 'platform-test-secret-0123456789abcdef';

/** The handler context connect makes for a gRPC call of the sample service, with a deadline if given. */
export function sampleHandlerContext(timeoutMs?: number): ReturnType<typeof createHandlerContext> {
  const method = SampleService.methods[0]!;
  return createHandlerContext({ service: SampleService, method, protocolName: 'grpc', requestMethod: 'POST', url: 'http://localhost/x', timeoutMs } as never);
}

export function sampleConfig(env: Record<string, string> = {}) {
  return loadConfig(sampleDefinition(), {
    HOST: '127.0.0.1',
    PORT: '0',
    OPS_PORT: '0',
    AUTH_JWT_SECRET: SECRET,
    LOG_LEVEL: 'debug',
    ...env,
  });
}

/** A fresh database and bus namespace for a sample service with stores. */
export interface StoresSandbox {
  database: TestDatabase;
  namespace: string;
  /** The environment of a service on free local ports against them, plus `extra`. */
  env(extra?: Record<string, string>): Record<string, string>;
  /** Removes the namespace's streams and the database. */
  drop(): Promise<void>;
}

export async function storesSandbox(label: string): Promise<StoresSandbox> {
  const database = await createTestDatabase(`platform_${label}`);
  const natsUrl = await testNats();
  const namespace = testNamespace(label);
  return {
    database,
    namespace,
    env: (extra = {}) => ({
      HOST: '127.0.0.1',
      PORT: '0',
      OPS_PORT: '0',
      AUTH_JWT_SECRET: SECRET,
      DATABASE_URL: database.url,
      NATS_URL: natsUrl,
      BUS_NAMESPACE: namespace,
      ...extra,
    }),
    async drop() {
      const bus = await connectBus({ url: natsUrl, name: `${label}-test-cleanup` });
      await deleteStreams(bus.jsm, namespace);
      await bus.close();
      await database.drop();
    },
  };
}

/** A pino destination keeping parsed JSON lines. */
export function captureLogs() {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) } };
}

/**
 * Sends reflection requests on one ServerReflectionInfo stream with @grpc/grpc-js, as grpcurl
 * does, and collects the responses. v1alpha messages are encoded with their own schemas.
 */
export function reflect(
  apiUrl: string,
  version: 'v1' | 'v1alpha',
  requests: MessageInitShape<typeof ServerReflectionRequestSchema>[],
): Promise<ServerReflectionResponse[]> {
  const reqSchema = version === 'v1' ? ServerReflectionRequestSchema : v1alpha.ServerReflectionRequestSchema;
  const resSchema = version === 'v1' ? ServerReflectionResponseSchema : v1alpha.ServerReflectionResponseSchema;
  const client = new grpc.Client(apiUrl.replace(/^http:\/\//, ''), grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(
    `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
    (req: MessageInitShape<typeof ServerReflectionRequestSchema>) =>
      Buffer.from(toBinary(reqSchema, create(reqSchema, req as never))),
    // Decode v1alpha bytes with the v1 schema too: identical wire format, one type for assertions.
    (bytes: Buffer) => fromBinary(ServerReflectionResponseSchema, toBinary(resSchema, fromBinary(resSchema, bytes))),
  );
  const responses: ServerReflectionResponse[] = [];
  return new Promise((resolve, reject) => {
    call.on('data', (res: ServerReflectionResponse) => responses.push(res));
    call.on('error', (err) => {
      client.close();
      reject(err);
    });
    call.on('end', () => {
      client.close();
      resolve(responses);
    });
    for (const req of requests) call.write(req);
    call.end();
  });
}
