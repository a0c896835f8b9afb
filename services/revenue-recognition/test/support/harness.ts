import { fromBinary, toBinary, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { connectBus, declareStreams, deleteStreams, eventHeaders, eventType, headerRecord, publishEvent, streamName, subjectFor, type Bus, type ConsumeOutcome } from '@punchcard/bus';
import { EarningRule } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import {
  BranchChangedSchema,
  DefinitionPublishedSchema,
  TenantChangedSchema,
} from '@punchcard/contracts/punchcard/events/v1/catalogue_events_pb';
import { LedgerEntryRecordedSchema } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { JournalPostedSchema, RevenueRecognizedSchema } from '@punchcard/contracts/punchcard/events/v1/revenue_events_pb';
import { VisitCancelledSchema, VisitCompletedSchema } from '@punchcard/contracts/punchcard/events/v1/visit_events_pb';
import { RevenueService } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { ConnectError } from '@connectrpc/connect';
import { migrateSchema } from '@punchcard/db';
import { loadConfig, mintToken, startService, type Caller, type RunningService } from '@punchcard/platform';
import { createTestDatabase, grpcJsClient, spentRowsLeftAfter, testNamespace, testNats, type GrpcJsClient, type TestDatabase } from '@punchcard/testing';
import { randomBytes, randomUUID } from 'node:crypto';
import { revenueService, type RevenueState } from '../../src/service.js';
import { migrations } from '../../src/store/migrations.js';
import { SCHEMA } from '../../src/store/schema.js';
import type { LedgerEvent, Terms } from './ledger-sim.js';

type Methods = (typeof RevenueService)['method'];

export interface PublishedRevenueEvent {
  subject: string;
  type: string;
  id: string;
  data: MessageShape<typeof JournalPostedSchema> | MessageShape<typeof RevenueRecognizedSchema>;
}

/**
 * The revenue-recognition service as it runs in production (startService: Connect + gRPC server with
 * auth, consumers, outbox relay) against real Postgres and NATS, with helpers that publish ledger,
 * catalogue and visit events exactly as their producers do and call the API over plain gRPC.
 */
export class Harness {
  private readonly outcomes = new Map<string, ConsumeOutcome[]>();
  private readonly secret = randomBytes(24).toString('hex');
  private running: RunningService<RevenueState> | undefined;
  private client: GrpcJsClient<typeof RevenueService> | undefined;

  private constructor(
    readonly namespace: string,
    readonly bus: Bus,
    private readonly natsUrl: string,
    private readonly testDb: TestDatabase,
  ) {}

  static async start(label: string): Promise<Harness> {
    const testDb = await createTestDatabase(`revenue_${label}`);
    await migrateSchema(testDb.url, SCHEMA, migrations);
    const natsUrl = await testNats();
    const bus = await connectBus({ url: natsUrl, name: `revenue-test-${label}` });
    const namespace = testNamespace(label);
    await declareStreams(bus.jsm, { namespace });
    const h = new Harness(namespace, bus, natsUrl, testDb);
    await h.startService();
    return h;
  }

  get db() {
    if (!this.running) throw new Error('service not running');
    return this.running.state.database.db;
  }

  async startService(): Promise<void> {
    const definition = revenueService({
      retryDelayMs: 100,
      errorRetryDelayMs: () => 100,
      maxDeliver: 3,
      relayPollMs: 100,
      onOutcome: (o) => {
        if (!o.eventId) return;
        const list = this.outcomes.get(o.eventId) ?? [];
        list.push(o);
        this.outcomes.set(o.eventId, list);
      },
    });
    const config = loadConfig(definition, {
      DATABASE_URL: this.testDb.url,
      NATS_URL: this.natsUrl,
      BUS_NAMESPACE: this.namespace,
      PORT: '0',
      OPS_PORT: '0',
      HOST: '127.0.0.1',
      AUTH_JWT_SECRET: this.secret,
      LOG_LEVEL: 'silent',
    });
    this.running = await startService(definition, config);
    this.client = grpcJsClient(RevenueService, this.running.apiUrl);
  }

  /** The service's housekeeping over spent rows of every age: what is left ({@link spentRowsLeftAfter}). */
  housekeepingLeaves(): Promise<Record<string, string[]>> {
    const running = this.running;
    if (!running) throw new Error('service not running');
    return spentRowsLeftAfter(running.state.database.db, () => running.housekeep());
  }

  async stopService(): Promise<void> {
    this.client?.close();
    await this.running?.stop();
    this.running = undefined;
  }

  /** Forgets the durable consumers so a restart replays every stream from the start. */
  async resetConsumers(): Promise<void> {
    for (const [stream, durable] of [
      ['LEDGER', 'revenue_ledger'],
      ['CATALOGUE', 'revenue_catalogue'],
      ['VISITS', 'revenue_visits'],
    ] as const) {
      await this.bus.jsm.consumers.delete(streamName(this.namespace, stream), durable);
    }
  }

  outcomesOf(id: string): ConsumeOutcome[] {
    return this.outcomes.get(id) ?? [];
  }

  /** Waits until every event id has been applied (or found a duplicate) at least `times` times in all. */
  async settled(ids: readonly string[], timeoutMs = 15_000, times = 1): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const pending = ids.filter((id) => this.outcomesOf(id).filter((o) => o.outcome === 'applied' || o.outcome === 'duplicate').length < times);
      if (pending.length === 0) return;
      const failed = ids.flatMap((id) => this.outcomesOf(id).filter((o) => o.outcome === 'deadlettered'));
      if (failed.length > 0) throw new Error(`dead-lettered: ${JSON.stringify(failed)}`);
      if (Date.now() > deadline) {
        throw new Error(`events not settled: ${pending.map((id) => `${id} ${JSON.stringify(this.outcomesOf(id).map((o) => o.outcome))}`).join('; ')}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Waits until an event has been dead-lettered. */
  async deadLettered(id: string, timeoutMs = 15_000): Promise<ConsumeOutcome> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const o = this.outcomesOf(id).find((x) => x.outcome === 'deadlettered');
      if (o) return o;
      if (Date.now() > deadline) throw new Error(`${id} was not dead-lettered: ${JSON.stringify(this.outcomesOf(id))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  // -- producers -----------------------------------------------------------------------------

  async tenant(tenantId: string, o: { currency?: string; earningRule?: 'DELIVERING_BRANCH' | 'PURCHASING_BRANCH'; at?: Date } = {}): Promise<string> {
    const at = o.at ?? new Date();
    const { id } = await publishEvent(this.bus.js, {
      namespace: this.namespace,
      source: '/punchcard/catalogue',
      producer: 'catalogue',
      event: 'tenant_changed',
      tenantId,
      aggregateId: tenantId,
      schema: TenantChangedSchema,
      message: {
        tenant: {
          tenantId,
          name: tenantId,
          defaultCurrency: o.currency ?? 'SGD',
          earningRule: o.earningRule === 'PURCHASING_BRANCH' ? EarningRule.PURCHASING_BRANCH : EarningRule.DELIVERING_BRANCH,
          updateTime: timestampFromDate(at),
        },
      },
    });
    return id;
  }

  async branch(tenantId: string, branchId: string, timeZone: string): Promise<string> {
    const { id } = await publishEvent(this.bus.js, {
      namespace: this.namespace,
      source: '/punchcard/catalogue',
      producer: 'catalogue',
      event: 'branch_changed',
      tenantId,
      aggregateId: branchId,
      schema: BranchChangedSchema,
      message: { branch: { tenantId, branchId, code: branchId.toUpperCase(), name: branchId, timeZone, active: true, updateTime: timestampFromDate(new Date()) } },
    });
    return id;
  }

  async definition(tenantId: string, definitionId: string, terms: Terms, version = 1): Promise<string> {
    const { id } = await publishEvent(this.bus.js, {
      namespace: this.namespace,
      source: '/punchcard/catalogue',
      producer: 'catalogue',
      event: 'definition_published',
      tenantId,
      aggregateId: definitionId,
      aggregateVersion: version,
      schema: DefinitionPublishedSchema,
      message: { definition: { tenantId, definitionId, version, terms } },
    });
    return id;
  }

  /** Publishes a ledger event as the ledger's relay does (event id = entry id, entitlement version). */
  async ledger(e: LedgerEvent, o: { id?: string } = {}): Promise<string> {
    const { id } = await publishEvent(this.bus.js, {
      namespace: this.namespace,
      source: '/punchcard/entitlement-ledger',
      producer: 'ledger',
      event: e.event,
      tenantId: e.tenantId,
      aggregateId: e.entitlementId,
      aggregateVersion: e.version,
      schema: LedgerEntryRecordedSchema,
      message: e.message,
      id: o.id ?? e.id,
    });
    return id;
  }

  /**
   * Delivers an event again with the same event id under a new Nats-Msg-Id, as a relay that
   * crashed before marking it published would after the stream's duplicate window.
   */
  async redeliver(e: LedgerEvent): Promise<void> {
    const subject = subjectFor(this.namespace, 'ledger', e.event, e.tenantId);
    const headers = eventHeaders({
      id: e.id,
      source: '/punchcard/entitlement-ledger',
      type: eventType('ledger', e.event),
      time: new Date(),
      tenantId: e.tenantId,
      aggregateId: e.entitlementId,
      aggregateVersion: e.version,
      dataType: LedgerEntryRecordedSchema.typeName,
    });
    await this.bus.js.publish(subject, toBinary(LedgerEntryRecordedSchema, e.message), { msgID: randomUUID(), headers });
  }

  async visit(v: { tenantId: string; visitId?: string; branchId: string; at: Date; price?: bigint; currency?: string; oneOff?: boolean }): Promise<{ id: string; visitId: string }> {
    const visitId = v.visitId ?? randomUUID();
    const { id } = await publishEvent(this.bus.js, {
      namespace: this.namespace,
      source: '/booking/test',
      producer: 'visits',
      event: 'visit_completed',
      tenantId: v.tenantId,
      aggregateId: visitId,
      schema: VisitCompletedSchema,
      message: {
        tenantId: v.tenantId,
        visitId,
        memberId: 'walk-in',
        serviceCode: 'CHIRO_ADJUST',
        branchId: v.branchId,
        occurredTime: timestampFromDate(v.at),
        ...(v.price !== undefined ? { price: { currencyCode: v.currency ?? 'SGD', amountMinor: v.price } } : {}),
        oneOff: v.oneOff ?? true,
      },
      id: visitId,
    });
    return { id, visitId };
  }

  async cancelVisit(tenantId: string, visitId: string, at: Date): Promise<string> {
    const { id } = await publishEvent(this.bus.js, {
      namespace: this.namespace,
      source: '/booking/test',
      producer: 'visits',
      event: 'visit_cancelled',
      tenantId,
      aggregateId: visitId,
      schema: VisitCancelledSchema,
      message: { tenantId, visitId, reason: 'no-show refunded', occurredTime: timestampFromDate(at) },
    });
    return id;
  }

  // -- consumers of what revenue publishes ----------------------------------------------------

  /** Every revenue event of the tenant the relay has published, in stream order. */
  async published(tenantId: string): Promise<PublishedRevenueEvent[]> {
    await this.running?.state.events?.relay.flush(10_000);
    const stream = streamName(this.namespace, 'REVENUE');
    const info = await this.bus.jsm.streams.info(stream);
    const out: PublishedRevenueEvent[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await this.bus.jsm.streams.getMessage(stream, { seq });
      if (!m || !m.subject.endsWith(`.${tenantId}`)) continue;
      const h = headerRecord(m.header);
      const type = h['ce-type'] ?? '';
      const schema = type.endsWith('journal_posted') ? JournalPostedSchema : RevenueRecognizedSchema;
      out.push({ subject: m.subject, type, id: h['ce-id'] ?? '', data: fromBinary(schema, m.data) });
    }
    return out;
  }

  // -- the API ----------------------------------------------------------------------------------

  /** Calls the API over gRPC (grpc-js) with a token carrying the caller (none for null); errors come back as ConnectError. */
  async call<K extends keyof Methods & string>(method: K, request: MessageInitShape<Methods[K]['input']>, caller: Caller | null): Promise<MessageShape<Methods[K]['output']>> {
    if (!this.client) throw new Error('service not running');
    const token = caller
      ? await mintToken({ tenantId: caller.tenantId, roles: caller.roles, subject: caller.subject, ...(caller.branchIds ? { branchIds: caller.branchIds } : {}) }, this.secret)
      : undefined;
    try {
      return (await this.client.call(method as never, request as never, token ? { token } : {})) as MessageShape<Methods[K]['output']>;
    } catch (err) {
      const e = err as { code?: number; details?: string };
      if (typeof e.code === 'number') throw new ConnectError(e.details ?? '', e.code);
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.stopService();
    await deleteStreams(this.bus.jsm, this.namespace).catch(() => undefined);
    await this.bus.close();
    await this.testDb.drop();
  }
}

export const finance = (tenantId: string, branchIds?: string[]): Caller => ({
  subject: 'finance-bot',
  tenantId,
  roles: ['finance'],
  ...(branchIds ? { branchIds } : {}),
});

export const day = (iso: string, hour = 10) => new Date(`${iso}T${String(hour).padStart(2, '0')}:00:00Z`);

export const newTenant = (label = 't') => `${label}-${randomUUID().slice(0, 8)}`;
