import { ConnectError, createClient, type Client, type Interceptor } from '@connectrpc/connect';
import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import { connectBus, deleteStreams, type Bus, type ConsumeOutcome } from '@punchcard/bus';
import { LedgerService } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { migrateSchema } from '@punchcard/db';
import { mintToken, startService, type RunningService, type ServiceConfig } from '@punchcard/platform';
import { createTestDatabase, grpcJsClient, testNamespace, testNats, type GrpcJsClient } from '@punchcard/testing';
import { ledgerEnv, ledgerService, type LedgerState } from '../../src/service.js';
import { migrations, SCHEMA } from '../../src/store/index.js';
import { CatalogueFeed, waitFor } from './bus.js';

export const SECRET = 'entitlement-ledger-test-secret-0123456789abcdef';

export interface Who {
  tenantId: string;
  roles: string[];
  subject?: string;
  branchIds?: string[];
}

export interface LedgerHarness {
  running: RunningService<LedgerState>;
  namespace: string;
  bus: Bus;
  feed: CatalogueFeed;
  /** The service's clock: tests move it; nothing sleeps. */
  clock: { now: Date };
  outcomes: ConsumeOutcome[];
  /** A Connect client acting as `who` (binary; `json`: Connect or gRPC-Web with JSON, as a browser might). */
  client(who: Who, json?: 'connect' | 'grpc-web'): Promise<Client<typeof LedgerService>>;
  /** A stock gRPC (grpc-js) client and the token to call it with. */
  grpc(who: Who): Promise<{ client: GrpcJsClient<typeof LedgerService>; token: string }>;
  /** Waits until the service's consumers applied (or skipped as duplicate) these event ids. */
  settled(...eventIds: string[]): Promise<void>;
  close(): Promise<void>;
}

/** The real service, started in-process on free ports against real Postgres and NATS. */
export async function startLedger(
  prefix: string,
  start = new Date('2025-03-01T02:00:00Z'),
  /** The ledger's own variables (ledgerEnv), as in the environment; the defaults otherwise. */
  env: Record<string, string> = {},
): Promise<LedgerHarness> {
  const database = await createTestDatabase(prefix);
  await migrateSchema(database.url, SCHEMA, migrations);
  const natsUrl = await testNats();
  const namespace = testNamespace(prefix);
  const clock = { now: start };
  const outcomes: ConsumeOutcome[] = [];
  const config: ServiceConfig = {
    serviceName: 'entitlement-ledger',
    host: '127.0.0.1',
    port: 0,
    opsPort: 0,
    databaseUrl: database.url,
    databaseSchema: SCHEMA,
    databasePreparedStatements: true,
    natsUrl,
    busNamespace: namespace,
    auth: { mode: 'secret', secret: SECRET },
    logLevel: 'silent',
    shutdownGraceMs: 2000,
    // Tests run housekeeping when they want it: running.housekeep().
    housekeepingIntervalMs: 0,
    env: ledgerEnv.parse(env),
  };
  const running = await startService(ledgerService({ clock: () => clock.now, relayPollMs: 100, onOutcome: (o) => outcomes.push(o) }), config);
  const bus = await connectBus({ url: natsUrl, name: `${prefix}-test` });
  const grpcClients: GrpcJsClient<typeof LedgerService>[] = [];
  const token = (who: Who) =>
    mintToken({ tenantId: who.tenantId, roles: who.roles, subject: who.subject ?? 'test-user', ...(who.branchIds ? { branchIds: who.branchIds } : {}) }, SECRET);

  return {
    running,
    namespace,
    bus,
    feed: new CatalogueFeed(bus, namespace),
    clock,
    outcomes,
    async client(who, json) {
      const t = await token(who);
      const bearer: Interceptor = (next) => (req) => {
        req.header.set('authorization', `Bearer ${t}`);
        return next(req);
      };
      const options = { baseUrl: running.apiUrl, httpVersion: '2' as const, useBinaryFormat: json === undefined, interceptors: [bearer] };
      return createClient(LedgerService, json === 'grpc-web' ? createGrpcWebTransport(options) : createConnectTransport(options));
    },
    async grpc(who) {
      const client = grpcJsClient(LedgerService, running.apiUrl);
      grpcClients.push(client);
      return { client, token: await token(who) };
    },
    async settled(...ids) {
      await waitFor(`events ${ids.join(', ')} settled`, async () =>
        ids.every((id) => outcomes.some((o) => o.eventId === id && (o.outcome === 'applied' || o.outcome === 'duplicate'))),
      );
    },
    async close() {
      for (const c of grpcClients) c.close();
      await running.stop();
      await deleteStreams(bus.jsm, namespace);
      await bus.close();
      await database.drop();
    },
  };
}

/** The error a call fails with; throws if it succeeds. */
export async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error('expected the call to fail');
}
