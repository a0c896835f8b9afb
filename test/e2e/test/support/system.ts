import { randomBytes } from 'node:crypto';
import { BillingService } from '@punchcard/contracts/punchcard/billing/v1/billing_pb';
import { CatalogueService } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { ExpiryService } from '@punchcard/contracts/punchcard/expiry/v1/expiry_pb';
import { LedgerService } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { RevenueService } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { deleteStreams, connectBus, streamName, STREAM_KEYS } from '@punchcard/bus';
import { migrateAll, startStack, type RunningStack } from '@punchcard/deploy/local';
import { mintToken } from '@punchcard/platform';
import { createTestDatabase, grpcJsClient, testNamespace, testNats, type GrpcJsClient, type TestDatabase } from '@punchcard/testing';
import { observeStreams, type EventObserver } from './events.js';
import { startOtlpReceiver, type OtlpReceiver } from './otlp.js';

export interface Clients {
  catalogue: GrpcJsClient<typeof CatalogueService>;
  ledger: GrpcJsClient<typeof LedgerService>;
  revenue: GrpcJsClient<typeof RevenueService>;
  expiry: GrpcJsClient<typeof ExpiryService>;
  billing: GrpcJsClient<typeof BillingService>;
}

export interface System {
  stack: RunningStack;
  clients: Clients;
  namespace: string;
  natsUrl: string;
  otlp: OtlpReceiver;
  events: EventObserver;
  /** Token of a tenant's admin with every role (the services verify it with the test's secret). */
  token(tenantId: string): Promise<string>;
  /** The last lines each service wrote, for failure messages. */
  recentLogs(): string;
  stop(): Promise<void>;
}

/**
 * The five services as separate processes, as `pnpm start` runs them (the same launcher), against a
 * fresh database and a fresh bus namespace, exporting their spans to a receiver in this process.
 */
export async function startSystem(o: { dataDir?: string } = {}): Promise<System> {
  const db: TestDatabase = await createTestDatabase('e2e');
  const natsUrl = await testNats();
  const namespace = testNamespace('e2e');
  const otlp = await startOtlpReceiver();
  const secret = randomBytes(32).toString('hex');
  const logs = new Map<string, string[]>();
  const options = {
    databaseUrl: db.url,
    natsUrl,
    busNamespace: namespace,
    auth: { secret },
    ports: 'any' as const,
    ...(o.dataDir ? { dataDir: o.dataDir } : {}),
    secrets: { billingSecretsKey: randomBytes(32).toString('base64') },
    env: {
      LOG_LEVEL: 'info',
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      // Spans reach the receiver within a fraction of a second rather than the default 5 s.
      OTEL_BSP_SCHEDULE_DELAY: '100',
      // The scheduler fires timers only when the test calls RunDue: expiry happens when the test says.
      EXPIRY_SWEEP_INTERVAL_MS: '0',
      BILLING_POLL_MS: '200',
    },
    onLine: (service: string, line: string) => {
      const recent = logs.get(service) ?? [];
      recent.push(line);
      if (recent.length > 40) recent.shift();
      logs.set(service, recent);
    },
  };
  let stack: RunningStack | undefined;
  let events: EventObserver | undefined;
  const stop = async () => {
    await events?.close();
    await stack?.stop();
    await otlp.close();
    const bus = await connectBus({ url: natsUrl, name: 'e2e-cleanup' });
    await deleteStreams(bus.jsm, namespace).catch(() => undefined);
    await bus.close();
    await db.drop();
  };
  try {
    await migrateAll(options);
    stack = await startStack(options);
    events = await observeStreams(
      natsUrl,
      namespace,
      STREAM_KEYS.map((k) => streamName(namespace, k)),
    );
    const url = (name: string) => {
      const s = stack!.services[name];
      if (!s) throw new Error(`${name} is not running (no src/main.ts?)`);
      return s.apiUrl;
    };
    const clients: Clients = {
      catalogue: grpcJsClient(CatalogueService, url('catalogue')),
      ledger: grpcJsClient(LedgerService, url('entitlement-ledger')),
      revenue: grpcJsClient(RevenueService, url('revenue-recognition')),
      expiry: grpcJsClient(ExpiryService, url('expiry-scheduler')),
      billing: grpcJsClient(BillingService, url('billing-integration')),
    };
    return {
      stack,
      clients,
      namespace,
      natsUrl,
      otlp,
      events,
      token: (tenantId) => mintToken({ tenantId, roles: ['admin', 'manager', 'staff', 'finance', 'system'], subject: 'e2e-admin' }, secret),
      recentLogs: () => [...logs].map(([name, lines]) => `--- ${name}\n${lines.join('\n')}`).join('\n'),
      async stop() {
        for (const c of Object.values(clients)) c.close();
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
