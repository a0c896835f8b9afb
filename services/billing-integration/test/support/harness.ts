import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { create, fromBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { ConnectError } from '@connectrpc/connect';
import { BillingService } from '@punchcard/contracts/punchcard/billing/v1/billing_pb';
import { connectBus, declareStreams, deleteStreams, publishEvent, streamName, withNamespace, type Bus, type ConsumeOutcome, type EventInput } from '@punchcard/bus';
import { createDb, ensureSchema, migrateToLatest } from '@punchcard/db';
import { createTestDatabase, testNamespace, testNats } from '@punchcard/testing';
import { pino } from 'pino';
import { expect } from 'vitest';
import { toConnectError } from '../../src/api/errors.js';
import type { Caller } from '../../src/api/handlers.js';
import { startBilling, type BillingApp, type BillingOptions } from '../../src/app.js';
import { ledgerClient } from '../../src/ledger-client.js';
import { testpayProcessor } from '../../src/providers/testpay.js';
import { REDACT_PATHS, SecretBox } from '../../src/secrets.js';
import { migrations } from '../../src/store/migrations.js';
import { SCHEMA, type BillingTables } from '../../src/store/schema.js';
import { startFakeLedger, type FakeLedger } from './fake-ledger.js';
import { startFakeTestpay } from './fake-testpay.js';
import { signJwt } from './jwt.js';
import type { Kysely } from 'kysely';
import { EVENT_SCHEMAS } from '../../src/events/schemas.js';

type Methods = typeof BillingService.method;
type MethodName = keyof Methods & string;
type In<K extends MethodName> = MessageInitShape<Methods[K]['input']>;
type Out<K extends MethodName> = MessageShape<Methods[K]['output']>;

export const LEDGER_SECRET = 'billing-test-ledger-secret-0123456789abcdef';
export const TESTPAY_API_KEY = `sk_test_${randomBytes(12).toString('hex')}`;
export const TESTPAY_WEBHOOK_SECRET = `whsec_test_${randomBytes(12).toString('hex')}`;

export interface Who {
  tenantId: string;
  roles: string[];
  subject?: string;
}
export const admin = (tenantId: string): Who => ({ tenantId, roles: ['admin'] });
export const staff = (tenantId: string): Who => ({ tenantId, roles: ['staff'] });

export function newTenantId(label = 't'): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

/** A clock tests move by hand. */
export class TestClock {
  constructor(public t = new Date()) {}
  readonly now = () => new Date(this.t);
  advance(ms: number): void {
    this.t = new Date(this.t.getTime() + ms);
  }
}

/** Consumer outcomes, to wait for an event's effect. */
export class Outcomes {
  readonly all: Array<ConsumeOutcome & { durable: string }> = [];
  private waiters: Array<() => void> = [];
  readonly record = (o: ConsumeOutcome & { durable: string }): void => {
    this.all.push(o);
    for (const w of [...this.waiters]) w();
  };
  /** Resolves once the consumer `durable` has settled the event with this id (applied, duplicate, dead-lettered). */
  settled(eventId: string, durable: string, timeoutMs = 15_000): Promise<ConsumeOutcome> {
    const find = () => this.all.find((o) => o.eventId === eventId && o.durable === durable && o.outcome !== 'retry');
    const hit = find();
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const check = () => {
        const o = find();
        if (!o) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve(o);
      };
      const timer = setTimeout(() => reject(new Error(`event ${eventId} not settled; outcomes: ${JSON.stringify(this.all.map((o) => [o.outcome, o.subject]))}`)), timeoutMs);
      this.waiters.push(check);
    });
  }
}

/** Every log line the service wrote, as text. */
export class LogCapture {
  readonly lines: string[] = [];
  readonly stream = new Writable({
    write: (chunk: Buffer, _enc, done) => {
      this.lines.push(chunk.toString('utf8'));
      done();
    },
  });
  text(): string {
    return this.lines.join('');
  }
}

export interface TestEnv {
  app: BillingApp;
  db: Kysely<BillingTables>;
  bus: Bus;
  namespace: string;
  clock: TestClock;
  ledger: FakeLedger;
  testpay: Awaited<ReturnType<typeof startFakeTestpay>>;
  logs: LogCapture;
  outcomes: Outcomes;
  secretsKey: string;
  call<K extends MethodName>(method: K, request: In<K>, who: Who): Promise<Out<K>>;
  /** Publishes an event as its producer would (same headers the outbox relay writes). */
  publish<S extends DescMessage>(input: EventInput<S> & { source?: string }): Promise<string>;
  /** Stops the billing app (as a crash or a rollout would) and starts a fresh one on the same database and bus. */
  restart(overrides?: Partial<BillingOptions>): Promise<void>;
  /** A second instance on the same database and bus, as another replica (no listener, no relay). */
  replica(): Promise<BillingApp>;
  /** billing.* events published so far, decoded. */
  billingEvents(): Promise<Array<{ type: string; subject: string; data: MessageShape<DescMessage> }>>;
  close(): Promise<void>;
}

export async function startTestEnv(overrides: Partial<BillingOptions> = {}): Promise<TestEnv> {
  const database = await createTestDatabase('billing');
  await ensureSchema(database.url, SCHEMA);
  const dbh = createDb<BillingTables>({ url: database.url, schema: SCHEMA, poolMax: 8 });
  await migrateToLatest(dbh.db, SCHEMA, migrations);
  const namespace = testNamespace('bill');
  const bus = await connectBus({ url: await testNats(), name: 'billing-test' });
  await declareStreams(bus.jsm, { namespace });
  const ledger = await startFakeLedger(LEDGER_SECRET);
  const testpay = await startFakeTestpay(TESTPAY_API_KEY);
  const clock = new TestClock();
  const logs = new LogCapture();
  const outcomes = new Outcomes();
  const secretsKey = randomBytes(32).toString('base64');
  const logger = pino({ level: 'trace', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, logs.stream);

  const replicas: BillingApp[] = [];
  const build = async (more: Partial<BillingOptions>) =>
    startBilling({
      db: dbh.db,
      pool: dbh.pool,
      js: bus.js,
      nc: bus.nc,
      namespace,
      logger,
      secrets: SecretBox.fromEnv(secretsKey),
      ledger: ledgerClient({ baseUrl: ledger.url, mintSystemToken: async (tenantId) => signJwt({ sub: 'billing-integration', tenant_id: tenantId, roles: ['system'] }, LEDGER_SECRET) }),
      processors: [testpayProcessor({ baseUrl: testpay.url })],
      now: clock.now,
      random: () => 0,
      autoRun: false,
      webhookListener: { host: '127.0.0.1', port: 0 },
      allowInsecureWebhookUrls: true,
      onOutcome: outcomes.record,
      ...overrides,
      ...more,
    });

  const env: TestEnv = {
    app: await build({}),
    db: dbh.db,
    bus,
    namespace,
    clock,
    ledger,
    testpay,
    logs,
    outcomes,
    secretsKey,
    async call(method, request, who) {
      const desc = BillingService.method[method];
      const caller: Caller = { subject: who.subject ?? 'test-user', tenantId: who.tenantId, roles: who.roles };
      const fn = env.app.handlers[method as keyof typeof env.app.handlers] as (c: Caller, r: unknown) => Promise<never>;
      try {
        return await fn(caller, create(desc.input, request as never));
      } catch (err) {
        throw toConnectError(err);
      }
    },
    async publish(input) {
      const ack = await publishEvent(bus.js, { ...input, namespace, source: input.source ?? `/punchcard/${input.producer}` } as never);
      return ack.id;
    },
    async restart(more = {}) {
      await env.app.stop();
      env.app = await build(more);
    },
    async replica() {
      const app = await build({ webhookListener: false, relay: false, onOutcome: () => undefined });
      replicas.push(app);
      return app;
    },
    async billingEvents() {
      await env.app.relay?.flush(10_000);
      const stream = streamName(namespace, 'BILLING');
      const info = await bus.jsm.streams.info(stream);
      if (info.state.messages === 0) return [];
      const ci = await bus.jsm.consumers.add(stream, { ack_policy: 'none' as never, deliver_policy: 'all' as never, filter_subject: withNamespace(namespace, 'punchcard.billing.>'), inactive_threshold: 30_000_000_000 });
      const consumer = await bus.js.consumers.get(stream, ci.name);
      const out: Array<{ type: string; subject: string; data: MessageShape<DescMessage> }> = [];
      while (out.length < ci.num_pending) {
        const batch = await consumer.fetch({ max_messages: ci.num_pending - out.length, expires: 2000 });
        let got = 0;
        for await (const m of batch) {
          got++;
          const typeName = (m.headers?.get('ce-dataschema') ?? '').replace('proto:', '');
          const schema = EVENT_SCHEMAS.find((s) => s.typeName === typeName)!;
          out.push({ type: m.headers?.get('ce-type') ?? '', subject: m.subject.slice(namespace.length + 1), data: fromBinary(schema, m.data) });
        }
        if (got === 0) break;
      }
      await consumer.delete();
      return out;
    },
    async close() {
      for (const r of replicas) await r.stop();
      await env.app.stop();
      await deleteStreams(bus.jsm, namespace).catch(() => undefined);
      await bus.close();
      await ledger.close();
      await testpay.close();
      await dbh.close();
      await database.drop();
    },
  };
  return env;
}

/** Asserts that a call fails with the gRPC code and a message containing `message`. */
export async function expectError(promise: Promise<unknown>, code: number, message: string | RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected the call to fail').toBeInstanceOf(ConnectError);
  const e = err as ConnectError;
  expect(e.code).toBe(code);
  if (typeof message === 'string') expect(e.rawMessage).toContain(message);
  else expect(e.rawMessage).toMatch(message);
}
