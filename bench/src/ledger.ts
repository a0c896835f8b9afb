import { randomUUID } from 'node:crypto';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { publishEvent } from '@punchcard/bus';
import {
  DefinitionStatus,
  EarningRule,
  DefinitionTermsSchema,
  ExpiryAnchor,
  ExpiryMode,
  Feature,
  PlanTier,
  type DefinitionTerms,
} from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { BranchChangedSchema, DefinitionPublishedSchema, TenantChangedSchema } from '@punchcard/contracts/punchcard/events/v1/catalogue_events_pb';
import { LedgerService, type ConsumeResponse, type Entitlement } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { mintToken } from '@punchcard/platform';
import { grpcJsClient, type GrpcJsClient } from '@punchcard/testing';
import type { BenchEnv } from './env.js';
import type { Outcome } from './load.js';
import { AUTH_SECRET, type ServiceProcess } from './service-process.js';

export const BRANCH = 'b1';
const ALL_FEATURES = Object.values(Feature).filter((f): f is Feature => typeof f === 'number' && f !== 0);

type TermsInit = Exclude<MessageInitShape<typeof DefinitionTermsSchema>, DefinitionTerms>;

/** A 10-session physio package at 1,000.00 SGD, valid a year: the shape most clinics sell. */
export function terms(overrides: TermsInit = {}): DefinitionTerms {
  return create(DefinitionTermsSchema, {
    code: 'PHYSIO',
    name: 'physio sessions',
    price: { currencyCode: 'SGD', amountMinor: 100_000n },
    paidSessions: 10,
    serviceCodes: ['PHYSIO'],
    deliveryCostPerSession: { currencyCode: 'SGD', amountMinor: 2_000n },
    expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 365, mode: ExpiryMode.HARD },
    ...overrides,
  } as TermsInit);
}

/**
 * Publishes catalogue.* events as the catalogue service would (its event contract, not its code):
 * the ledger and revenue-recognition build their read models from them.
 */
export class CatalogueFeed {
  constructor(private readonly env: BenchEnv) {}

  private async send<S extends Parameters<typeof publishEvent>[1]['schema']>(event: string, tenantId: string, aggregateId: string, schema: S, message: MessageInitShape<S>) {
    await publishEvent(this.env.bus.js, {
      namespace: this.env.namespace,
      source: '/punchcard/catalogue',
      producer: 'catalogue',
      event,
      tenantId,
      aggregateId,
      schema,
      message,
    });
  }

  async tenant(tenantId: string, branches: string[] = [BRANCH]): Promise<void> {
    const now = timestampFromDate(new Date());
    await this.send('tenant_changed', tenantId, tenantId, TenantChangedSchema, {
      tenant: {
        tenantId,
        name: `bench ${tenantId.slice(0, 8)}`,
        planTier: PlanTier.ENTERPRISE,
        defaultCurrency: 'SGD',
        features: ALL_FEATURES,
        earningRule: EarningRule.DELIVERING_BRANCH,
        updateTime: now,
      },
    });
    for (const branchId of branches) {
      await this.send('branch_changed', tenantId, branchId, BranchChangedSchema, {
        branch: { tenantId, branchId, code: branchId.toUpperCase(), name: branchId, timeZone: 'Asia/Singapore', active: true, updateTime: now },
      });
    }
  }

  async definition(tenantId: string, definitionId: string, t: DefinitionTerms): Promise<void> {
    await this.send('definition_published', tenantId, definitionId, DefinitionPublishedSchema, {
      definition: { tenantId, definitionId, version: 1, status: DefinitionStatus.ACTIVE, terms: t, publishTime: timestampFromDate(new Date()) },
    });
  }
}

/** A tenant's view of the ledger over stock gRPC (grpc-js), as a POS integration calls it. */
export class LedgerClient {
  private constructor(
    readonly tenantId: string,
    readonly grpc: GrpcJsClient<typeof LedgerService>,
    private readonly token: string,
  ) {}

  static async connect(ledger: ServiceProcess, tenantId: string): Promise<LedgerClient> {
    const token = await mintToken({ tenantId, roles: ['staff'], subject: 'bench-pos', expiresInSeconds: 86_400 }, AUTH_SECRET);
    const client = new LedgerClient(tenantId, grpcJsClient(LedgerService, ledger.apiUrl), token);
    return client;
  }

  close(): void {
    this.grpc.close();
  }

  async purchase(definitionId: string, memberId = randomUUID(), purchaseTime?: Date): Promise<Entitlement> {
    const r = await this.grpc.call(
      'purchase',
      {
        idempotencyKey: randomUUID(),
        memberId,
        definitionId,
        branchId: BRANCH,
        paymentReference: `bench-${memberId}`,
        ...(purchaseTime ? { purchaseTime: timestampFromDate(purchaseTime) } : {}),
      },
      { token: this.token },
    );
    return r.entitlement!;
  }

  /**
   * The first purchase after publishing the catalogue: the ledger learns it asynchronously and
   * refuses (FailedPrecondition) until then.
   */
  async purchaseWhenKnown(definitionId: string, purchaseTime?: Date, timeoutMs = 30_000): Promise<Entitlement> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await this.purchase(definitionId, randomUUID(), purchaseTime);
      } catch (err) {
        if ((err as { code?: number }).code !== GrpcStatus.FAILED_PRECONDITION || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Purchases `n` entitlements, a few at a time. */
  async purchaseMany(definitionId: string, n: number): Promise<Entitlement[]> {
    const out: Entitlement[] = [];
    for (let i = 0; i < n; i += 16) {
      out.push(...(await Promise.all(Array.from({ length: Math.min(16, n - i) }, () => this.purchase(definitionId)))));
    }
    return out;
  }

  consume(entitlementId: string, branchId = BRANCH): Promise<ConsumeResponse> {
    return this.grpc.call('consume', { idempotencyKey: randomUUID(), entitlementId, branchId, reason: 'bench' }, { token: this.token });
  }

  /** The first message seen for each failure, so a report can say what went wrong. */
  readonly errorSamples = new Map<string, string>();

  /** A consume as a load operation: 'ok' or the gRPC status name. */
  async consumeOutcome(entitlementId: string): Promise<Outcome> {
    try {
      await this.consume(entitlementId);
      return 'ok';
    } catch (err) {
      const name = grpcCodeName(err);
      if (!this.errorSamples.has(name)) this.errorSamples.set(name, (err as Error).message);
      return name;
    }
  }

  async entitlement(entitlementId: string): Promise<Entitlement> {
    return (await this.grpc.call('getEntitlement', { entitlementId }, { token: this.token })).entitlement!;
  }

  /** Every entry of the entitlement, in version order. */
  async entries(entitlementId: string) {
    const all = [];
    let pageToken = '';
    do {
      const page = await this.grpc.call('listEntries', { entitlementId, pageSize: 500, pageToken }, { token: this.token });
      all.push(...page.entries);
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    return all;
  }
}

export function grpcCodeName(err: unknown): string {
  const code = (err as { code?: number }).code;
  if (typeof code !== 'number') return `error: ${(err as Error).message}`;
  return (GrpcStatus as unknown as Record<number, string>)[code] ?? `code ${code}`;
}

export async function seedTenant(env: BenchEnv, ledger: ServiceProcess, definitions: Record<string, DefinitionTerms>): Promise<LedgerClient> {
  const tenantId = randomUUID();
  const feed = new CatalogueFeed(env);
  await feed.tenant(tenantId);
  for (const [id, t] of Object.entries(definitions)) await feed.definition(tenantId, id, t);
  const client = await LedgerClient.connect(ledger, tenantId);
  env.defer(() => client.close());
  return client;
}
