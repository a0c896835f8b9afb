import { fromBinary } from '@bufbuild/protobuf';
import { publishEvent, streamName, withNamespace, type Bus } from '@punchcard/bus';
import {
  PlanTier,
  type Feature,
} from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import {
  BranchChangedSchema,
  DefinitionPublishedSchema,
  DefinitionRetiredSchema,
  TenantChangedSchema,
} from '@punchcard/contracts/punchcard/events/v1/catalogue_events_pb';
import { LedgerEntryRecordedSchema, type LedgerEntryRecorded } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { VisitCancelledSchema, VisitCompletedSchema } from '@punchcard/contracts/punchcard/events/v1/visit_events_pb';
import { DefinitionStatus, type DefinitionTerms } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { readStream } from '@punchcard/testing';
import type { MessageInitShape } from '@bufbuild/protobuf';

/** Polls until `check` returns a value (not undefined/false); for effects of asynchronous consumers. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Publishes catalogue.* events as the catalogue service would (its contract, not its code). */
export class CatalogueFeed {
  private published: string[] = [];
  constructor(
    private readonly bus: Bus,
    private readonly namespace: string,
  ) {}

  private async send<S extends Parameters<typeof publishEvent>[1]['schema']>(
    event: string,
    tenantId: string,
    aggregateId: string,
    schema: S,
    message: MessageInitShape<S>,
  ): Promise<string> {
    const { id } = await publishEvent(this.bus.js, {
      namespace: this.namespace,
      source: '/punchcard/catalogue',
      producer: 'catalogue',
      event,
      tenantId,
      aggregateId,
      schema,
      message,
    });
    this.published.push(id);
    return id;
  }

  tenant(tenantId: string, features: Feature[], planTier = PlanTier.ENTERPRISE, updateTime = new Date()) {
    return this.send('tenant_changed', tenantId, tenantId, TenantChangedSchema, {
      tenant: { tenantId, name: tenantId, planTier, defaultCurrency: 'SGD', features, updateTime: timestampFromDate(updateTime) },
    });
  }

  branch(tenantId: string, branchId: string, timeZone = 'Asia/Singapore') {
    return this.send('branch_changed', tenantId, branchId, BranchChangedSchema, {
      branch: { tenantId, branchId, code: branchId.toUpperCase(), name: branchId, timeZone, active: true, updateTime: timestampFromDate(new Date()) },
    });
  }

  definition(tenantId: string, definitionId: string, version: number, terms: DefinitionTerms) {
    return this.send('definition_published', tenantId, definitionId, DefinitionPublishedSchema, {
      definition: { tenantId, definitionId, version, status: DefinitionStatus.ACTIVE, terms, publishTime: timestampFromDate(new Date()) },
    });
  }

  retire(tenantId: string, definitionId: string, version: number, terms: DefinitionTerms) {
    return this.send('definition_retired', tenantId, definitionId, DefinitionRetiredSchema, {
      definition: { tenantId, definitionId, version, status: DefinitionStatus.RETIRED, terms },
    });
  }

  /** Ids of everything published so far. */
  ids(): string[] {
    return [...this.published];
  }
}

export interface VisitInit {
  tenantId: string;
  visitId: string;
  memberId?: string;
  serviceCode?: string;
  branchId?: string;
  occurredTime?: Date;
  entitlementId?: string;
  oneOff?: boolean;
  /** The event id; a booking system retrying with a new id still consumes once. */
  eventId?: string;
}

/** Publishes visits.* as a booking system would: subject punchcard.visits.<event>.<tenant>. */
export async function publishVisitCompleted(bus: Bus, namespace: string, v: VisitInit): Promise<string> {
  const { id } = await publishEvent(bus.js, {
    namespace,
    source: '/booking/test-clinic',
    producer: 'visits',
    event: 'visit_completed',
    tenantId: v.tenantId,
    aggregateId: v.visitId,
    schema: VisitCompletedSchema,
    message: {
      tenantId: v.tenantId,
      visitId: v.visitId,
      memberId: v.memberId ?? '',
      serviceCode: v.serviceCode ?? 'PHYSIO',
      branchId: v.branchId ?? 'b1',
      occurredTime: timestampFromDate(v.occurredTime ?? new Date()),
      entitlementId: v.entitlementId ?? '',
      oneOff: v.oneOff ?? false,
    },
    ...(v.eventId ? { id: v.eventId } : {}),
  });
  return id;
}

export async function publishVisitCancelled(bus: Bus, namespace: string, tenantId: string, visitId: string, reason = 'no-show'): Promise<string> {
  const { id } = await publishEvent(bus.js, {
    namespace,
    source: '/booking/test-clinic',
    producer: 'visits',
    event: 'visit_cancelled',
    tenantId,
    aggregateId: visitId,
    schema: VisitCancelledSchema,
    message: { tenantId, visitId, reason, occurredTime: timestampFromDate(new Date()) },
  });
  return id;
}

export interface ReceivedLedgerEvent {
  subject: string;
  type: string;
  id: string;
  entityVersion: number;
  contentType: string | undefined;
  data: LedgerEntryRecorded;
}

/** Reads the tenant's ledger.* events with a plain JetStream consumer and decodes them, as any consumer would. */
export async function readLedgerEvents(bus: Bus, namespace: string, tenantId: string): Promise<ReceivedLedgerEvent[]> {
  const messages = await readStream(bus.nc, streamName(namespace, 'LEDGER'), withNamespace(namespace, `punchcard.ledger.*.${tenantId}`));
  return messages.map((m) => ({
    subject: m.subject.slice(namespace.length + 1),
    type: m.headers?.get('ce-type') ?? '',
    id: m.headers?.get('Nats-Msg-Id') ?? '',
    entityVersion: Number(m.headers?.get('ce-entityversion')),
    contentType: m.headers?.get('content-type') || undefined,
    data: fromBinary(LedgerEntryRecordedSchema, m.data),
  }));
}
