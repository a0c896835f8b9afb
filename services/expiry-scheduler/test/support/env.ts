import { fromBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { connectBus, declareStreams, deleteStreams, streamName, withNamespace, type Bus, type ConsumeOutcome } from '@punchcard/bus';
import { ExpiryFiredSchema, ReminderDueSchema } from '@punchcard/contracts/punchcard/events/v1/expiry_events_pb';
import { createDb, ensureSchema, migrateToLatest, type Database } from '@punchcard/db';
import { createTestDatabase, readStream, testNamespace, testNats, type TestDatabase } from '@punchcard/testing';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { Caller } from '@punchcard/platform';
import { grpcLedger } from '../../src/ledger/grpc-ledger.js';
import type { LedgerPort } from '../../src/ledger/port.js';
import { startRuntime, type Runtime, type RuntimeOptions } from '../../src/runtime.js';
import { migrations } from '../../src/store/migrations.js';
import { SCHEMA, type ExpiryDb } from '../../src/store/schema.js';
import { FakeLedger } from './fake-ledger.js';

/** Business time under the test's control. */
export class FakeClock {
  private t: number;
  constructor(start: string | Date) {
    this.t = new Date(start).getTime();
  }
  readonly now = (): Date => new Date(this.t);
  set(to: string | Date): void {
    this.t = new Date(to).getTime();
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export const DAY = 86_400_000;

/** A token as the platform mints it (unsigned here: only the fake ledger reads it). */
export function testToken(claims: { tenant_id: string; roles: string[]; sub: string }): string {
  const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`;
}

export interface Replica {
  runtime: Runtime;
  /** Its client of the (fake) ledger, as its sweep calls it. */
  ledger: LedgerPort;
  db: Database<ExpiryDb>;
  bus: Bus;
  logLines: string[];
  /** Stops this replica (work in hand completes) and closes its connections. */
  stop(): Promise<void>;
}

export interface ReceivedEvent {
  event: string;
  id: string;
  tenantId: string;
  data: MessageShape<DescMessage>;
}

export interface EnvOptions {
  /** Shown in pg_stat_activity, so a test can find (and kill) this replica's connections. */
  applicationName?: string;
  sweepIntervalMs?: number;
  batchSize?: number;
  concurrency?: number;
  progressIntervalMs?: number;
}

export class TestEnv {
  readonly replicas: Replica[] = [];
  private readonly settled = new Set<string>();
  private readonly deadLettered: string[] = [];

  private constructor(
    readonly database: TestDatabase,
    readonly natsUrl: string,
    readonly namespace: string,
    readonly clock: FakeClock,
    readonly bus: Bus,
    readonly ledger: FakeLedger,
    /** For assertions. */
    readonly db: Database<ExpiryDb>,
  ) {}

  static async start(clockStart: string): Promise<TestEnv> {
    const database = await createTestDatabase('expiry');
    const natsUrl = await testNats();
    const namespace = testNamespace('exp');
    await ensureSchema(database.url, SCHEMA);
    const db = createDb<ExpiryDb>({ url: database.url, schema: SCHEMA, poolMax: 4 });
    await migrateToLatest(db.db, SCHEMA, migrations);
    const bus = await connectBus({ url: natsUrl, name: 'expiry-test' });
    await declareStreams(bus.jsm, { namespace, streams: ['LEDGER', 'EXPIRY', 'DEADLETTER'] });
    const clock = new FakeClock(clockStart);
    const ledger = new FakeLedger(bus, namespace, clock.now);
    await ledger.listen();
    return new TestEnv(database, natsUrl, namespace, clock, bus, ledger, db);
  }

  /** A gRPC client of the fake ledger with the scheduler's system token, as a scheduler process has. */
  ledgerClient(): ReturnType<typeof grpcLedger> {
    return grpcLedger({ baseUrl: this.ledger.url, tokenFor: (tenantId) => testToken({ tenant_id: tenantId, roles: ['system'], sub: 'expiry-scheduler' }) });
  }

  /** Starts one scheduler process (own pool, bus connection and ledger client) on the shared database. */
  async startReplica(options: EnvOptions = {}): Promise<Replica> {
    const db = createDb<ExpiryDb>({
      url: this.database.url,
      schema: SCHEMA,
      poolMax: 6,
      applicationName: options.applicationName ?? `expiry-replica-${this.replicas.length}`,
      // A test may kill this replica's connections on purpose.
      onError: () => undefined,
    });
    const bus = await connectBus({ url: this.natsUrl, name: `expiry-replica-${this.replicas.length}` });
    const ledger = this.ledgerClient();
    const logLines: string[] = [];
    const logger: Logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _enc, done) {
          logLines.push(chunk.toString('utf8'));
          done();
        },
      }),
    );
    const runtimeOptions: RuntimeOptions = {
      db,
      bus,
      namespace: this.namespace,
      ledger,
      clock: this.clock.now,
      logger,
      sweepIntervalMs: options.sweepIntervalMs ?? 0,
      relayPollIntervalMs: 100,
      gapRetryMs: 50,
      // A message a stopped replica had buffered comes back after this.
      consumerAckWaitMs: 1_000,
      onConsumed: this.track,
      ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
      ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
      ...(options.progressIntervalMs !== undefined ? { progressIntervalMs: options.progressIntervalMs } : {}),
    };
    const runtime = await startRuntime(runtimeOptions);
    let stopped: Promise<void> | undefined;
    const replica: Replica = {
      runtime,
      ledger,
      db,
      bus,
      logLines,
      stop: () =>
        (stopped ??= (async () => {
          await runtime.stop();
          ledger.close();
          await bus.close();
          await db.close();
        })()),
    };
    this.replicas.push(replica);
    return replica;
  }

  /** Pass to a scheduler's consumer so {@link settle} knows what it applied. */
  readonly track = (o: ConsumeOutcome): void => {
    if ((o.outcome === 'applied' || o.outcome === 'duplicate') && o.eventId) this.settled.add(o.eventId);
    if (o.outcome === 'deadlettered') this.deadLettered.push(`${o.subject}: ${o.reason}`);
  };

  /** Waits (real time) until every ledger event published so far has been applied by some replica. */
  async settle(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.ledger.published.some((id) => !this.settled.has(id))) {
      if (this.deadLettered.length > 0) throw new Error(`dead-lettered: ${this.deadLettered.join('; ')}`);
      if (Date.now() > deadline) {
        const missing = this.ledger.published.filter((id) => !this.settled.has(id));
        throw new Error(`ledger events not applied within ${timeoutMs} ms: ${missing.length} of ${this.ledger.published.length}, e.g. ${missing.slice(0, 3).join(', ')}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Waits (real time) for an asynchronous effect, e.g. a background sweep. */
  async until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  get deadLetters(): readonly string[] {
    return this.deadLettered;
  }

  /** Every `expiry.*` event of the tenant published so far, read by a plain JetStream consumer. */
  async expiryEvents(tenantId: string): Promise<ReceivedEvent[]> {
    for (const r of this.replicas) await r.runtime.relay.flush(10_000).catch(() => undefined);
    const messages = await readStream(this.bus.nc, streamName(this.namespace, 'EXPIRY'), withNamespace(this.namespace, `punchcard.expiry.*.${tenantId}`));
    return messages.map((m) => {
      const event = m.subject.slice(this.namespace.length + 1).split('.')[2]!;
      const schema = event === 'reminder_due' ? ReminderDueSchema : ExpiryFiredSchema;
      return { event, id: m.headers?.get('ce-id') ?? '', tenantId: m.headers?.get('ce-tenantid') ?? '', data: fromBinary(schema, m.data) };
    });
  }

  /** Stops every replica started so far (a failed test must not leave sweepers behind). */
  async stopReplicas(): Promise<void> {
    for (const r of this.replicas) await r.stop();
  }

  async close(): Promise<void> {
    await this.stopReplicas();
    await this.ledger.close();
    await deleteStreams(this.bus.jsm, this.namespace).catch(() => undefined);
    await this.bus.close();
    await this.db.close();
    await this.database.drop();
  }
}

export function newTenantId(label = 't'): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

export const operator = (tenantId: string): Caller => ({ subject: 'ops', tenantId, roles: ['admin'] });
export const staff = (tenantId: string): Caller => ({ subject: 'front-desk', tenantId, roles: ['staff'] });
