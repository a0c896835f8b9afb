import { fromBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { ConnectError } from '@connectrpc/connect';
import type { JsMsg } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { CatalogueService } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import {
  BranchChangedSchema,
  DefinitionPublishedSchema,
  DefinitionRetiredSchema,
  TenantChangedSchema,
} from '@punchcard/contracts/punchcard/events/v1/catalogue_events_pb';
import { deleteStreams, streamName, withNamespace } from '@punchcard/bus';
import { migrateSchema } from '@punchcard/db';
import { loadConfig, mintToken, startService } from '@punchcard/platform';
import { createTestDatabase, grpcJsClient, readStream, spentRowsLeftAfter, testNamespace, testNats } from '@punchcard/testing';
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { catalogueService } from '../../src/service.js';
import { migrations } from '../../src/store/migrations.js';

type Methods = typeof CatalogueService.method;
type MethodName = keyof Methods & string;
type In<K extends MethodName> = MessageInitShape<Methods[K]['input']>;
type Out<K extends MethodName> = MessageShape<Methods[K]['output']>;

/** Who calls: a tenant and roles, as a token would carry them; `branchIds` limits the caller to those branches. */
export interface Who {
  tenantId: string;
  roles: string[];
  subject?: string;
  branchIds?: string[];
}

export interface CatalogueClient {
  call<K extends MethodName>(method: K, request: In<K>, who: Who): Promise<Out<K>>;
}

export interface ReceivedEvent {
  subject: string;
  type: string;
  id: string;
  tenantId: string;
  entityVersion: string | undefined;
  contentType: string | undefined;
  data: MessageShape<DescMessage>;
}

export interface TestEnv {
  client: CatalogueClient;
  namespace: string;
  apiUrl: string;
  /** A bearer token for the caller, signed with the service's test secret. */
  token(who: Who): Promise<string>;
  /** Every catalogue event of the tenant published so far, decoded by a plain JetStream consumer. */
  events(tenantId: string): Promise<ReceivedEvent[]>;
  /** The service's housekeeping over spent rows of every age: what is left ({@link spentRowsLeftAfter}). */
  housekeepingLeaves(): Promise<Record<string, string[]>>;
  close(): Promise<void>;
}

const EVENT_SCHEMAS: Record<string, DescMessage> = {
  tenant_changed: TenantChangedSchema,
  branch_changed: BranchChangedSchema,
  definition_published: DefinitionPublishedSchema,
  definition_retired: DefinitionRetiredSchema,
};

/** A fresh tenant id per test keeps tests of one file independent. */
export function newTenantId(label = 't'): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

export const admin = (tenantId: string): Who => ({ tenantId, roles: ['admin'] });
export const manager = (tenantId: string): Who => ({ tenantId, roles: ['manager'] });
export const staff = (tenantId: string): Who => ({ tenantId, roles: ['staff'] });
/** A manager whose token carries `branch_ids`. */
export const branchManager = (tenantId: string, branchIds: string[]): Who => ({ tenantId, roles: ['manager'], subject: 'branch-manager', branchIds });

const SECRET = 'catalogue-integration-tests-secret-0123456789';

export async function startTestEnv(): Promise<TestEnv> {
  const database = await createTestDatabase('catalogue');
  const natsUrl = await testNats();
  const namespace = testNamespace('cat');
  await migrateSchema(database.url, 'catalogue', migrations);
  const definition = catalogueService({ relayPollMs: 200 });
  const config = loadConfig(definition, {
    HOST: '127.0.0.1',
    PORT: '0',
    OPS_PORT: '0',
    DATABASE_URL: database.url,
    NATS_URL: natsUrl,
    BUS_NAMESPACE: namespace,
    AUTH_JWT_SECRET: SECRET,
    LOG_LEVEL: 'silent',
  });
  const service = await startService(definition, config);
  const grpc = grpcJsClient(CatalogueService, service.apiUrl);
  const tokens = new Map<string, Promise<string>>();
  const tokenFor = (who: Who) => {
    const k = JSON.stringify(who);
    let token = tokens.get(k);
    if (!token) {
      token = mintToken({ tenantId: who.tenantId, roles: who.roles, subject: who.subject ?? 'test-user', ...(who.branchIds ? { branchIds: who.branchIds } : {}) }, SECRET);
      tokens.set(k, token);
    }
    return token;
  };

  const client: CatalogueClient = {
    async call(method, request, who) {
      return grpc.call(method as never, request as never, { token: await tokenFor(who) }) as never;
    },
  };

  const subscriber = await connect({ servers: natsUrl, name: 'catalogue-test-subscriber' });
  return {
    client,
    namespace,
    apiUrl: service.apiUrl,
    token: tokenFor,
    async events(tenantId) {
      await service.state.relay!.flush(10_000);
      return readAll(subscriber, namespace, tenantId);
    },
    housekeepingLeaves: () => spentRowsLeftAfter(service.state.database.db, () => service.housekeep()),
    async close() {
      grpc.close();
      await service.stop();
      await deleteStreams(await jetstreamManager(subscriber), namespace);
      await subscriber.close();
      await database.drop();
    },
  };
}

/** Reads the tenant's catalogue events with a plain JetStream consumer, as any platform would. */
async function readAll(nc: NatsConnection, namespace: string, tenantId: string): Promise<ReceivedEvent[]> {
  const messages = await readStream(nc, streamName(namespace, 'CATALOGUE'), withNamespace(namespace, `punchcard.catalogue.*.${tenantId}`));
  return messages.map((m) => decode(m, namespace));
}

function decode(m: JsMsg, namespace: string): ReceivedEvent {
  const event = m.subject.slice(namespace.length + 1).split('.')[2]!;
  const schema = EVENT_SCHEMAS[event];
  if (!schema) throw new Error(`unexpected event subject ${m.subject}`);
  return {
    subject: m.subject.slice(namespace.length + 1),
    type: m.headers?.get('ce-type') ?? '',
    id: m.headers?.get('Nats-Msg-Id') ?? '',
    tenantId: m.headers?.get('ce-tenantid') ?? '',
    entityVersion: m.headers?.get('ce-entityversion') || undefined,
    contentType: m.headers?.get('content-type') || undefined,
    data: fromBinary(schema, m.data),
  };
}

/** Asserts that a call fails with the gRPC code and a message containing `message`. */
export async function expectError(promise: Promise<unknown>, code: number, message: string | RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected the call to fail').toBeDefined();
  const { code: actual, text } = statusOf(err);
  expect({ code: actual, text }).toMatchObject({ code });
  if (typeof message === 'string') expect(text).toContain(message);
  else expect(text).toMatch(message);
}

function statusOf(err: unknown): { code: number; text: string } {
  if (err instanceof ConnectError) return { code: err.code, text: err.rawMessage };
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  if (typeof e.code === 'number') return { code: e.code, text: String(e.details ?? e.message) };
  throw err;
}
