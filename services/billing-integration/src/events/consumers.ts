import { toBinary, toJson, type DescMessage, type Message } from '@bufbuild/protobuf';
import { trace } from '@opentelemetry/api';
import { startConsumer, type ConsumeOutcome, type RunningConsumer, type StreamKey } from '@punchcard/bus';
import type { Bus } from '@punchcard/bus';
import { isUuid, uuidv7 } from '@punchcard/db';
type JetStreamClient = Bus['js'];
import { TenantChangedSchema, type TenantChanged } from '@punchcard/contracts/punchcard/events/v1/catalogue_events_pb';
import { LedgerEntryRecordedSchema, type LedgerEntryRecorded } from '@punchcard/contracts/punchcard/events/v1/ledger_events_pb';
import { EntryKind } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { RefundApprovedSchema } from '@punchcard/contracts/punchcard/events/v1/refund_events_pb';
import { JournalPostedSchema } from '@punchcard/contracts/punchcard/events/v1/revenue_events_pb';
import { JournalEntrySchema, type JournalEntry } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { Feature, PlanTier } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { planRefund } from '../domain/refund.js';
import { subscriptionMatches, webhookEventType, webhookPayload } from '../domain/webhooks.js';
import type { BillingContext } from '../context.js';
import { journalFromProto } from '../convert.js';
import { refundSettled } from './builders.js';
import { recordFulfilment } from '../workers/fulfilment.js';
import { hasAccountingFeature } from '../store/connectors.js';
import { recordOrigin, sourcePayments, syncPayout } from '../store/refunds.js';
import type { Tx } from '../store/schema.js';
import { EVENT_SCHEMAS } from './schemas.js';

export interface ConsumerWiring {
  js: JetStreamClient;
  namespace: string;
  /** Called after each message settles, with the consumer's durable name (metrics, tests). */
  onOutcome?: (o: ConsumeOutcome & { durable: string }) => void;
  /** Streams whose events are offered to webhook subscriptions. */
  webhookStreams?: readonly StreamKey[];
}

export const DEFAULT_WEBHOOK_STREAMS: readonly StreamKey[] = ['LEDGER', 'REVENUE', 'BILLING', 'EXPIRY'];

/** Starts every consumer billing runs; each applies an event exactly once (inbox) in its own transaction. */
export async function startConsumers(ctx: BillingContext, wiring: ConsumerWiring): Promise<RunningConsumer[]> {
  const report = wiring.onOutcome;
  const common = { db: ctx.db, js: wiring.js, namespace: wiring.namespace, logger: ctx.logger };
  const outcomeOf = (durable: string) => (report ? { onOutcome: (o: ConsumeOutcome) => report({ ...o, durable }) } : {});
  const started: RunningConsumer[] = [];
  try {
    started.push(
      await startConsumer({
        ...common,
        stream: 'CATALOGUE',
        durable: 'billing_tenants',
        ...outcomeOf('billing_tenants'),
        filterSubjects: ['punchcard.catalogue.tenant_changed.*'],
        schema: TenantChangedSchema,
        handler: (tx, e) => applyTenantChanged(tx, e.data),
      }),
    );
    started.push(
      await startConsumer({
        ...common,
        stream: 'REVENUE',
        durable: 'billing_journal',
        ...outcomeOf('billing_journal'),
        filterSubjects: ['punchcard.revenue.journal_posted.*'],
        schema: JournalPostedSchema,
        handler: async (tx, e) => {
          if (e.data.entry && e.data.entry.tenantId !== e.tenantId) throw new Error(`journal entry tenant ${e.data.entry.tenantId} differs from the event's ${e.tenantId}`);
          // Every branch the entry's lines name: a cross-branch session touches the selling and the delivering one.
          trace.getActiveSpan()?.setAttributes({
            'tenant.id': e.tenantId,
            'entitlement.id': e.data.entry?.entitlementId ?? '',
            'branch.id': [...new Set(e.data.entry?.lines.map((l) => l.branchId) ?? [])],
          });
          if (await applyJournalPosted(tx, e.data.entry, ctx.now())) ctx.kick('syncs');
        },
      }),
    );
    // Lineage and approvals on one durable: it handles the stream in order, so a package's transfer or
    // upgrade is known before a refund of it is approved.
    started.push(
      await startConsumer({
        ...common,
        stream: 'LEDGER',
        durable: 'billing_refunds',
        ...outcomeOf('billing_refunds'),
        filterSubjects: REFUND_SUBJECTS,
        schema: [RefundApprovedSchema, LedgerEntryRecordedSchema],
        handler: async (tx, e) => {
          if (e.data.$typeName === LedgerEntryRecordedSchema.typeName) {
            await applyEntitlementArrived(tx, e.tenantId, e.data as LedgerEntryRecorded, ctx.now());
            return;
          }
          const approved = e.data as { refundId: string; entitlementId: string; amount?: { currencyCode: string; amountMinor: bigint } };
          if (await applyRefundApproved(tx, { ...approved, tenantId: e.tenantId }, ctx.now())) ctx.kick('payouts');
        },
      }),
    );
    started.push(
      await startConsumer({
        ...common,
        stream: 'LEDGER',
        durable: 'billing_purchases',
        ...outcomeOf('billing_purchases'),
        filterSubjects: ['punchcard.ledger.entitlement_purchased.*'],
        schema: LedgerEntryRecordedSchema,
        handler: async (tx, e) => {
          const ent = e.data.entitlement;
          if (!ent?.paymentReference) return;
          // The saga's own answer usually comes first; this covers a Purchase whose response was lost.
          const payment = await tx.selectFrom('payments').select('payment_id').where('tenant_id', '=', e.tenantId).where('payment_id', '=', uuidOrNil(ent.paymentReference)).executeTakeFirst();
          if (payment) await recordFulfilment(tx, e.tenantId, payment.payment_id, ent.entitlementId, ctx.now(), 'purchase');
        },
      }),
    );
    for (const stream of wiring.webhookStreams ?? DEFAULT_WEBHOOK_STREAMS) {
      started.push(
        await startConsumer({
          ...common,
          stream,
          durable: `billing_webhooks_${stream.toLowerCase()}`,
          ...outcomeOf(`billing_webhooks_${stream.toLowerCase()}`),
          schema: EVENT_SCHEMAS,
          handler: async (tx, e) => {
            if (await fanOut(tx, { id: e.id, type: e.type, tenantId: e.tenantId, time: e.time, data: e.data, schemaName: e.headers['ce-dataschema'] ?? '' }, ctx.now())) ctx.kick('webhooks');
          },
        }),
      );
    }
  } catch (err) {
    await Promise.all(started.map((c) => c.stop()));
    throw err;
  }
  return started;
}

/** billing_refunds: approved refunds, and the entries that start an entitlement from another one. */
export const REFUND_SUBJECTS = ['punchcard.ledger.refund_approved.*', 'punchcard.ledger.transferred_in.*', 'punchcard.ledger.upgraded_in.*'];

/** Payment references from other systems are not our uuids; compare them as a uuid that matches nothing. */
function uuidOrNil(ref: string): string {
  return isUuid(ref) ? ref : '00000000-0000-0000-0000-000000000000';
}

/** Keeps the newest tenant facts (plan tier, features, currency); an older event changes nothing. */
export async function applyTenantChanged(tx: Tx, data: TenantChanged): Promise<void> {
  const t = data.tenant;
  if (!t) return;
  const updateTime = t.updateTime ? timestampDate(t.updateTime) : new Date(0);
  const row = {
    tenant_id: t.tenantId,
    plan_tier: `PLAN_TIER_${PlanTier[t.planTier] ?? 'UNSPECIFIED'}`,
    features: t.features.map((f) => `FEATURE_${Feature[f] ?? f}`),
    default_currency: t.defaultCurrency,
    update_time: updateTime,
  };
  await tx
    .insertInto('tenants')
    .values(row)
    .onConflict((oc) =>
      oc
        .column('tenant_id')
        .doUpdateSet({ plan_tier: row.plan_tier, features: row.features, default_currency: row.default_currency, update_time: row.update_time })
        .where('tenants.update_time', '<=', row.update_time),
    )
    .execute();
}

/**
 * Stores a posted journal entry and queues it for every enabled connector of a tenant whose plan
 * includes accounting integration. Returns whether anything was queued.
 */
export async function applyJournalPosted(tx: Tx, entry: JournalEntry | undefined, now: Date): Promise<boolean> {
  if (!entry) return false;
  if (!(await hasAccountingFeature(tx, entry.tenantId))) return false;
  const connectors = await tx.selectFrom('connectors').select('connector').where('tenant_id', '=', entry.tenantId).where('enabled', '=', true).execute();
  if (connectors.length === 0) return false;
  const journal = journalFromProto(entry);
  await tx
    .insertInto('journal_entries')
    .values({ tenant_id: entry.tenantId, journal_entry_id: journal.journalEntryId, accounting_date: journal.accountingDate, entry: toBinary(JournalEntrySchema, entry), received_at: now })
    .onConflict((oc) => oc.columns(['tenant_id', 'journal_entry_id']).doNothing())
    .execute();
  await tx
    .insertInto('journal_syncs')
    .values(connectors.map((c) => ({ tenant_id: entry.tenantId, journal_entry_id: journal.journalEntryId, connector: c.connector, status: 'pending' as const, next_attempt_at: now })))
    .onConflict((oc) => oc.columns(['tenant_id', 'journal_entry_id', 'connector']).doNothing())
    .execute();
  return true;
}

/**
 * A TRANSFER_IN or UPGRADE_IN entry: the new entitlement came from its counterpart, so a refund of
 * it is paid back through the payments behind that one. An upgrade paid through billing (our payment
 * id as its payment reference) is fulfilled by it too, should the saga's answer have been lost.
 */
export async function applyEntitlementArrived(tx: Tx, tenantId: string, data: LedgerEntryRecorded, now: Date): Promise<void> {
  const ent = data.entitlement;
  const entry = data.entry;
  if (!ent || !entry) throw new Error('ledger entry event without entitlement or entry');
  if (ent.tenantId !== tenantId) throw new Error(`entitlement tenant ${ent.tenantId} differs from the event's ${tenantId}`);
  if (entry.kind !== EntryKind.TRANSFER_IN && entry.kind !== EntryKind.UPGRADE_IN) return;
  const origin = entry.counterpartEntitlementId || ent.originEntitlementId;
  if (!origin) throw new Error(`${EntryKind[entry.kind]} entry ${entry.entryId} names no entitlement it came from`);
  const kind = entry.kind === EntryKind.UPGRADE_IN ? 'upgrade' : 'transfer';
  const paymentReference = kind === 'upgrade' ? ent.paymentReference : '';
  await recordOrigin(tx, { tenantId, entitlementId: ent.entitlementId, originEntitlementId: origin, kind, paymentReference }, now);
  if (kind === 'upgrade' && paymentReference) await recordFulfilment(tx, tenantId, uuidOrNil(paymentReference), ent.entitlementId, now, 'upgrade');
}

/**
 * Records an approved refund's payout, once per refund id, split over the payments behind the
 * entitlement (newest first, see planRefund), or failed at once (billing.refund_failed) when there is
 * nothing to pay back through. Returns whether a processor payout is now due.
 */
export async function applyRefundApproved(
  tx: Tx,
  data: { tenantId: string; refundId: string; entitlementId: string; amount?: { currencyCode: string; amountMinor: bigint } | undefined },
  now: Date,
): Promise<boolean> {
  if (!data.refundId) throw new Error('refund_approved without refund_id');
  const existing = await tx.selectFrom('refund_payouts').select('status').where('tenant_id', '=', data.tenantId).where('refund_id', '=', data.refundId).executeTakeFirst();
  if (existing) return false;
  const currency = data.amount?.currencyCode ?? '';
  const amountMinor = data.amount?.amountMinor ?? 0n;
  const payments = await sourcePayments(tx, data.tenantId, data.entitlementId);
  const plan = planRefund({ refundId: data.refundId, currency, amountMinor }, payments);
  await tx
    .insertInto('refund_payouts')
    .values({
      tenant_id: data.tenantId,
      refund_id: data.refundId,
      entitlement_id: data.entitlementId,
      payment_id: payments[0]?.paymentId ?? '',
      provider: payments[0]?.provider ?? '',
      currency,
      amount_minor: amountMinor,
      status: 'failed' in plan ? 'failed' : 'pending',
      provider_reference: '',
      failure_reason: 'failed' in plan ? plan.failed : '',
      next_attempt_at: null,
      create_time: now,
    })
    .execute();
  if ('failed' in plan) {
    const row = await tx.selectFrom('refund_payouts').selectAll().where('tenant_id', '=', data.tenantId).where('refund_id', '=', data.refundId).executeTakeFirstOrThrow();
    await refundSettled(tx, row, now);
    return false;
  }
  await tx
    .insertInto('refund_payout_parts')
    .values(
      plan.parts.map((p, seq) => ({
        tenant_id: data.tenantId,
        refund_id: data.refundId,
        seq,
        payment_id: p.paymentId,
        provider: p.provider,
        currency,
        amount_minor: p.amountMinor,
        status: p.status,
        provider_reference: '',
        failure_reason: '',
        next_attempt_at: p.status === 'pending' ? now : null,
        paid_time: null,
      })),
    )
    .execute();
  const row = await syncPayout(tx, data.tenantId, data.refundId, plan.parts, now);
  return row.status === 'pending';
}

/** Queues a delivery of the event to each of the tenant's active subscriptions that wants it. */
export async function fanOut(tx: Tx, event: { id: string; type: string; tenantId: string; time: Date; data: unknown; schemaName: string }, now: Date): Promise<boolean> {
  const eventType = webhookEventType(event.type);
  const subs = await tx.selectFrom('webhook_subscriptions').select(['subscription_id', 'event_types']).where('tenant_id', '=', event.tenantId).where('active', '=', true).execute();
  const wanted = subs.filter((s) => subscriptionMatches(s.event_types, eventType));
  if (wanted.length === 0) return false;
  const schema = EVENT_SCHEMAS.find((s) => `proto:${s.typeName}` === event.schemaName);
  const data = schema ? toJson(schema as DescMessage, event.data as Message) : null;
  const payload = webhookPayload(eventType, event.time, data);
  await tx
    .insertInto('webhook_deliveries')
    .values(
      wanted.map((s) => ({
        delivery_id: uuidv7(),
        tenant_id: event.tenantId,
        subscription_id: s.subscription_id,
        event_id: event.id,
        event_type: eventType,
        payload,
        event_time: event.time,
        next_attempt_at: now,
        create_time: now,
      })),
    )
    .onConflict((oc) => oc.columns(['subscription_id', 'event_id']).doNothing())
    .execute();
  return true;
}

