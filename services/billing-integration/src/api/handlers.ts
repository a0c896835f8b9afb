import { randomBytes, randomUUID } from 'node:crypto';
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  BillingService,
  ConfigureConnectorRequestSchema,
  ConfigureConnectorResponseSchema,
  ConfigurePaymentProviderRequestSchema,
  ConfigurePaymentProviderResponseSchema,
  ConfirmManualPaymentRequestSchema,
  ConfirmManualPaymentResponseSchema,
  ConfirmManualRefundRequestSchema,
  ConfirmManualRefundResponseSchema,
  CreateCheckoutRequestSchema,
  CreateCheckoutResponseSchema,
  CreateWebhookSubscriptionRequestSchema,
  CreateWebhookSubscriptionResponseSchema,
  ExportJournalEntriesResponseSchema,
  GetPaymentResponseSchema,
  GetRefundPayoutResponseSchema,
  ListConnectorsResponseSchema,
  ListSyncFailuresResponseSchema,
  ListWebhookDeliveriesResponseSchema,
  ReplayWebhookDeliveryRequestSchema,
  ReplayWebhookDeliveryResponseSchema,
  RetrySyncRequestSchema,
  RetrySyncResponseSchema,
  WebhookDeliverySchema,
  type ConfigureConnectorRequest,
  type ConfigurePaymentProviderRequest,
  type ConfirmManualPaymentRequest,
  type ConfirmManualRefundRequest,
  type CreateCheckoutRequest,
  type CreateWebhookSubscriptionRequest,
  type ExportJournalEntriesRequest,
  type GetPaymentRequest,
  type GetRefundPayoutRequest,
  type ListConnectorsRequest,
  type ListSyncFailuresRequest,
  type ListWebhookDeliveriesRequest,
  type ReplayWebhookDeliveryRequest,
  type RetrySyncRequest,
  type WebhookDelivery,
} from '@punchcard/contracts/punchcard/billing/v1/billing_pb';
import { JournalEntrySchema } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { isUuid, inTransaction, requestHash, withIdempotency } from '@punchcard/db';
import { isKnownCurrency } from '@punchcard/money';
import type { Selectable } from 'kysely';
import type { BillingContext } from '../context.js';
import { isConnectorName } from '../connectors/connector.js';
import { connectorToProto, journalFromProto, paymentToProto, payoutToProto, syncFailureToProto } from '../convert.js';
import { journalsToCsv, journalsToJson } from '../domain/export.js';
import { validateAccountCodes } from '../domain/journal.js';
import { transition } from '../domain/payment.js';
import { confirmManualPayout } from '../domain/refund.js';
import { validateEventTypes, validateWebhookUrl } from '../domain/webhooks.js';
import { paymentCaptured, refundSettled } from '../events/builders.js';
import { MANUAL_PROVIDER } from '../providers/provider.js';
import { accessTokenPurpose, hasAccountingFeature } from '../store/connectors.js';
import { providerCredentials, saveProviderCredentials } from '../store/providers.js';
import { partOf, partsOf, saveParts } from '../store/refunds.js';
import type { PaymentsTable, Tx, WebhookDeliveriesTable } from '../store/schema.js';
import { subscriptionSecret, webhookSecretPurpose } from '../store/webhooks.js';
import { retrySync } from '../workers/syncs.js';
import { replayDelivery } from '../workers/webhooks.js';
import { denied, fromLedger, invalid, notFound, precondition } from './errors.js';
import { decodeToken, encodeToken, pageSize } from './pagination.js';

/** Who is calling, from the verified token; the only source of the tenant. */
export interface Caller {
  subject: string;
  tenantId: string;
  roles: readonly string[];
}

const FRONT_DESK = ['staff', 'manager', 'admin', 'system'];
const FINANCE = ['manager', 'admin'];
const ADMIN = ['admin'];
const ID = /^[A-Za-z0-9_.:-]{1,128}$/;

function requireRole(caller: Caller, roles: readonly string[]): void {
  if (!roles.some((r) => caller.roles.includes(r))) throw denied(`requires role ${roles.join(' or ')}; caller ${caller.subject} has ${caller.roles.join(', ') || 'no roles'}`);
}

function requireId(field: string, value: string): string {
  if (!value) throw invalid(field, 'required');
  if (!ID.test(value)) throw invalid(field, 'must be 1-128 letters, digits, _ . : or -');
  return value;
}

function requireUuid(field: string, value: string): string {
  if (!value) throw invalid(field, 'required');
  if (!isUuid(value)) throw invalid(field, 'must be a UUID');
  return value.toLowerCase();
}

/** The BillingService methods as plain functions of (caller, request). */
export function billingHandlers(ctx: BillingContext) {
  const { db } = ctx;

  /** Runs `run` once per idempotency key in one transaction with its effects; a repeat replays the stored response. */
  async function once<I extends DescMessage, O extends DescMessage>(
    caller: Caller,
    method: string,
    input: I,
    request: MessageShape<I> & { idempotencyKey: string },
    output: O,
    run: (tx: Tx, at: Date) => Promise<MessageShape<O>>,
  ): Promise<{ response: MessageShape<O>; replayed: boolean }> {
    if (!request.idempotencyKey) throw invalid('idempotency_key', 'required');
    const hash = requestHash(toBinary(input, { ...request, idempotencyKey: '' }));
    const { response, replayed } = await inTransaction(db, (tx) =>
      withIdempotency(tx, { tenantId: caller.tenantId, key: request.idempotencyKey, method: `${BillingService.typeName}/${method}`, requestHash: hash }, async () =>
        toBinary(output, await run(tx, ctx.now())),
      ),
    );
    return { response: fromBinary(output, response), replayed };
  }

  async function paymentRow(tenantId: string, paymentId: string) {
    const row = await db.selectFrom('payments').selectAll().where('tenant_id', '=', tenantId).where('payment_id', '=', paymentId).executeTakeFirst();
    if (!row) throw notFound('payment', paymentId);
    return row;
  }

  /** Creates the processor checkout of a card payment if it has none yet (idempotent at the processor by payment id). */
  async function ensureProcessorCheckout(row: Selectable<PaymentsTable>) {
    if (row.provider === MANUAL_PROVIDER || row.provider_reference || row.status !== 'pending') return row;
    const processor = ctx.processors.get(row.provider)!;
    const credentials = await providerCredentials(db, ctx.secrets, row.tenant_id, row.provider);
    if (!credentials) throw precondition(`provider ${row.provider} is not configured for this tenant; call ConfigurePaymentProvider`);
    const { providerReference, checkoutUrl } = await processor.createCheckout(credentials, {
      paymentId: row.payment_id,
      currency: row.currency,
      amountMinor: BigInt(row.amount_minor),
      description: row.kind === 'upgrade' ? `Upgrade of package ${row.upgrade_entitlement_id} to ${row.definition_id} for member ${row.member_id}` : `Package ${row.definition_id} for member ${row.member_id}`,
      idempotencyKey: `checkout-${row.payment_id}`,
    });
    return (
      (await db
        .updateTable('payments')
        .set({ provider_reference: providerReference, checkout_url: checkoutUrl })
        .where('tenant_id', '=', row.tenant_id)
        .where('payment_id', '=', row.payment_id)
        .where('provider_reference', '=', '')
        .returningAll()
        .executeTakeFirst()) ?? (await paymentRow(row.tenant_id, row.payment_id))
    );
  }

  /**
   * What an upgrade checkout charges: the ledger's amount due now (new price minus the credit for the
   * unused sessions), for the entitlement's holder, sold at the given branch or where it was bought.
   * One upgrade is paid once: a second checkout after a captured one is refused.
   */
  async function upgradeSale(tx: Tx, caller: Caller, req: CreateCheckoutRequest, upgrade: { entitlementId: string; targetDefinitionId: string }) {
    const paid = await tx
      .selectFrom('payments')
      .select('payment_id')
      .where('tenant_id', '=', caller.tenantId)
      .where('kind', '=', 'upgrade')
      .where('upgrade_entitlement_id', '=', upgrade.entitlementId)
      .where('status', 'in', ['captured', 'fulfilled'])
      .executeTakeFirst();
    if (paid) throw precondition(`the upgrade of entitlement ${upgrade.entitlementId} is paid already (payment ${paid.payment_id})`);
    const [held, quote] = await Promise.all([
      ctx.ledger.getEntitlement(caller.tenantId, upgrade.entitlementId),
      ctx.ledger.quoteUpgrade({ tenantId: caller.tenantId, ...upgrade }),
    ]).catch((err: unknown) => {
      throw fromLedger(err);
    });
    if (req.memberId && req.memberId !== held.memberId) throw invalid('member_id', `must be empty or the entitlement's holder ${held.memberId}`);
    if (quote.amountDueMinor <= 0n) throw precondition(`the credit of entitlement ${upgrade.entitlementId} covers ${upgrade.targetDefinitionId}'s price: nothing to pay, upgrade it with the ledger's Upgrade`);
    if (req.amount && (req.amount.currencyCode !== quote.currency || req.amount.amountMinor !== quote.amountDueMinor)) {
      throw precondition(`amount: the upgrade costs ${quote.amountDueMinor} ${quote.currency} now (the ledger's amount due), not ${req.amount.amountMinor} ${req.amount.currencyCode}`);
    }
    return { memberId: held.memberId, branchId: req.branchId || held.purchaseBranchId, currency: quote.currency, amountMinor: quote.amountDueMinor };
  }

  return {
    async createCheckout(caller: Caller, req: CreateCheckoutRequest) {
      requireRole(caller, FRONT_DESK);
      const upgrade = req.upgrade && {
        entitlementId: requireUuid('upgrade.entitlement_id', req.upgrade.entitlementId),
        targetDefinitionId: requireId('upgrade.target_definition_id', req.upgrade.targetDefinitionId),
      };
      if (upgrade) {
        if (req.memberId) requireId('member_id', req.memberId);
        if (req.definitionId && req.definitionId !== upgrade.targetDefinitionId) throw invalid('definition_id', 'must be empty or the upgrade\'s target_definition_id');
        if (req.branchId) requireId('branch_id', req.branchId);
      } else {
        requireId('member_id', req.memberId);
        requireId('definition_id', req.definitionId);
        requireId('branch_id', req.branchId);
      }
      if (!req.provider) throw invalid('provider', `required: "${MANUAL_PROVIDER}" or one of ${[...ctx.processors.keys()].join(', ') || 'no card processors'}`);
      if (req.provider !== MANUAL_PROVIDER && !ctx.processors.has(req.provider)) throw invalid('provider', `unknown provider "${req.provider}"`);
      if (!req.amount && !upgrade) throw invalid('amount', 'required');
      if (req.amount) {
        if (!isKnownCurrency(req.amount.currencyCode)) throw invalid('amount.currency_code', `unknown currency "${req.amount.currencyCode}"`);
        if (req.amount.amountMinor <= 0n) throw invalid('amount.amount_minor', 'must be positive');
      }
      const tenant = await db.selectFrom('tenants').select('default_currency').where('tenant_id', '=', caller.tenantId).executeTakeFirst();
      if (req.amount && tenant?.default_currency && tenant.default_currency !== req.amount.currencyCode) {
        throw invalid('amount.currency_code', `the tenant's prices are in ${tenant.default_currency}`);
      }
      if (req.provider !== MANUAL_PROVIDER && !(await providerCredentials(db, ctx.secrets, caller.tenantId, req.provider))) {
        throw precondition(`provider ${req.provider} is not configured for this tenant; call ConfigurePaymentProvider`);
      }
      const { response } = await once(caller, 'CreateCheckout', CreateCheckoutRequestSchema, req, CreateCheckoutResponseSchema, async (tx, at) => {
        // Asked only on the first request: a repeat replays the checkout even after the upgrade is made.
        const sale = upgrade ? await upgradeSale(tx, caller, req, upgrade) : { memberId: req.memberId, branchId: req.branchId, currency: req.amount!.currencyCode, amountMinor: req.amount!.amountMinor };
        const row = await tx
          .insertInto('payments')
          .values({
            tenant_id: caller.tenantId,
            payment_id: randomUUID(),
            kind: upgrade ? 'upgrade' : 'purchase',
            upgrade_entitlement_id: upgrade?.entitlementId ?? '',
            provider: req.provider,
            provider_reference: '',
            status: 'pending',
            currency: sale.currency,
            amount_minor: sale.amountMinor,
            member_id: sale.memberId,
            definition_id: upgrade?.targetDefinitionId ?? req.definitionId,
            branch_id: sale.branchId,
            entitlement_id: '',
            checkout_url: '',
            failure_reason: '',
            created_by: caller.subject,
            create_time: at,
            capture_time: null,
            fulfil_time: null,
            next_attempt_at: null,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        return create(CreateCheckoutResponseSchema, { payment: paymentToProto(row) });
      });
      // The processor call happens outside the transaction; a repeat of the request finishes it.
      const row = await ensureProcessorCheckout(await paymentRow(caller.tenantId, response.payment!.paymentId));
      return create(CreateCheckoutResponseSchema, { payment: paymentToProto(row) });
    },

    async getPayment(caller: Caller, req: GetPaymentRequest) {
      requireRole(caller, FRONT_DESK);
      return create(GetPaymentResponseSchema, { payment: paymentToProto(await paymentRow(caller.tenantId, requireUuid('payment_id', req.paymentId))) });
    },

    async confirmManualPayment(caller: Caller, req: ConfirmManualPaymentRequest) {
      requireRole(caller, ['staff', 'manager', 'admin']);
      const paymentId = requireUuid('payment_id', req.paymentId);
      if (!req.reference.trim()) throw invalid('reference', 'required: the receipt or terminal reference');
      if (req.reference.length > 200) throw invalid('reference', 'at most 200 characters');
      const { response } = await once(caller, 'ConfirmManualPayment', ConfirmManualPaymentRequestSchema, req, ConfirmManualPaymentResponseSchema, async (tx, at) => {
        const row = await tx.selectFrom('payments').selectAll().where('tenant_id', '=', caller.tenantId).where('payment_id', '=', paymentId).forUpdate().executeTakeFirst();
        if (!row) throw notFound('payment', paymentId);
        if (row.provider !== MANUAL_PROVIDER) throw precondition(`payment ${paymentId} is paid through ${row.provider}; only manual payments are confirmed by staff`);
        const t = transition(row.status, { kind: 'capture', providerReference: req.reference });
        if (t.anomaly) throw precondition(`payment ${paymentId} is failed; take a new checkout`);
        if (!t.changed) return create(ConfirmManualPaymentResponseSchema, { payment: paymentToProto(row) });
        const captured = await tx
          .updateTable('payments')
          .set({ status: 'captured', provider_reference: req.reference, capture_time: at, next_attempt_at: at })
          .where('tenant_id', '=', caller.tenantId)
          .where('payment_id', '=', paymentId)
          .returningAll()
          .executeTakeFirstOrThrow();
        await paymentCaptured(tx, captured, at);
        return create(ConfirmManualPaymentResponseSchema, { payment: paymentToProto(captured) });
      });
      ctx.kick('fulfilment');
      return response;
    },

    async listSyncFailures(caller: Caller, req: ListSyncFailuresRequest) {
      requireRole(caller, FINANCE);
      const size = pageSize(req.pageSize);
      const after = decodeToken(req.pageToken, 2);
      let q = db
        .selectFrom('journal_syncs')
        .selectAll()
        .where('tenant_id', '=', caller.tenantId)
        .where('status', '<>', 'delivered')
        .where('attempts', '>', 0);
      if (req.connector) q = q.where('connector', '=', req.connector);
      if (after) q = q.where((eb) => eb.or([eb('connector', '>', after[0]!), eb.and([eb('connector', '=', after[0]!), eb('journal_entry_id', '>', after[1]!)])]));
      const rows = await q.orderBy('connector').orderBy('journal_entry_id').limit(size + 1).execute();
      const page = rows.slice(0, size);
      const last = page.at(-1);
      return create(ListSyncFailuresResponseSchema, {
        failures: page.map(syncFailureToProto),
        nextPageToken: rows.length > size && last ? encodeToken([last.connector, last.journal_entry_id]) : '',
      });
    },

    async retrySync(caller: Caller, req: RetrySyncRequest) {
      requireRole(caller, FINANCE);
      requireId('journal_entry_id', req.journalEntryId);
      if (!isConnectorName(req.connector)) throw invalid('connector', 'must be xero, qbo, csv or json');
      // The key guards the reset; the delivery itself is idempotent per journal entry and connector.
      await once(caller, 'RetrySync', RetrySyncRequestSchema, req, RetrySyncResponseSchema, async () => create(RetrySyncResponseSchema, {}));
      const outcome = await retrySync(ctx, { tenantId: caller.tenantId, journalEntryId: req.journalEntryId, connector: req.connector });
      if (!outcome) throw notFound('journal sync', `${req.connector}/${req.journalEntryId}`);
      return create(RetrySyncResponseSchema, outcome.delivered ? { delivered: true } : { delivered: false, error: outcome.error });
    },

    async createWebhookSubscription(caller: Caller, req: CreateWebhookSubscriptionRequest) {
      requireRole(caller, ADMIN);
      const url = validateWebhookUrl(req.url, ctx.allowInsecureWebhookUrls);
      const eventTypes = validateEventTypes(req.eventTypes);
      // The stored idempotent response has no secret (it would sit unencrypted); it is added from the sealed copy.
      const { response } = await once(caller, 'CreateWebhookSubscription', CreateWebhookSubscriptionRequestSchema, req, CreateWebhookSubscriptionResponseSchema, async (tx, at) => {
        const subscriptionId = randomUUID();
        const secret = `whsec_${randomBytes(32).toString('base64')}`;
        await tx
          .insertInto('webhook_subscriptions')
          .values({
            tenant_id: caller.tenantId,
            subscription_id: subscriptionId,
            url,
            event_types: eventTypes,
            active: true,
            secret_enc: ctx.secrets.encrypt(secret, { tenantId: caller.tenantId, purpose: webhookSecretPurpose(subscriptionId) }),
            create_time: at,
          })
          .execute();
        return create(CreateWebhookSubscriptionResponseSchema, { subscription: { subscriptionId, url, eventTypes, active: true } });
      });
      const sub = response.subscription!;
      sub.signingSecret = (await subscriptionSecret(db, ctx.secrets, caller.tenantId, sub.subscriptionId)) ?? '';
      return response;
    },

    async listWebhookDeliveries(caller: Caller, req: ListWebhookDeliveriesRequest) {
      requireRole(caller, ADMIN);
      const size = pageSize(req.pageSize);
      const after = decodeToken(req.pageToken, 1, /^\d{1,18}$/);
      let q = db.selectFrom('webhook_deliveries').selectAll().where('tenant_id', '=', caller.tenantId);
      if (req.subscriptionId) q = q.where('subscription_id', '=', requireUuid('subscription_id', req.subscriptionId));
      if (after) q = q.where('seq', '>', BigInt(after[0]!));
      const rows = await q.orderBy('seq').limit(size + 1).execute();
      const page = rows.slice(0, size);
      const last = page.at(-1);
      return create(ListWebhookDeliveriesResponseSchema, {
        deliveries: page.map(deliveryToProto),
        nextPageToken: rows.length > size && last ? encodeToken([String(last.seq)]) : '',
      });
    },

    async replayWebhookDelivery(caller: Caller, req: ReplayWebhookDeliveryRequest) {
      requireRole(caller, ADMIN);
      const deliveryId = requireUuid('delivery_id', req.deliveryId);
      const exists = await db.selectFrom('webhook_deliveries').select('delivery_id').where('tenant_id', '=', caller.tenantId).where('delivery_id', '=', deliveryId).executeTakeFirst();
      if (!exists) throw notFound('webhook delivery', deliveryId);
      const { replayed } = await once(caller, 'ReplayWebhookDelivery', ReplayWebhookDeliveryRequestSchema, req, ReplayWebhookDeliveryResponseSchema, async () =>
        create(ReplayWebhookDeliveryResponseSchema, {}),
      );
      const row = replayed
        ? await db.selectFrom('webhook_deliveries').selectAll().where('delivery_id', '=', deliveryId).executeTakeFirstOrThrow()
        : await replayDelivery(ctx, deliveryId);
      if (!row) throw precondition(`webhook delivery ${deliveryId} is being sent right now; try again shortly`);
      return create(ReplayWebhookDeliveryResponseSchema, { delivery: deliveryToProto(row) });
    },

    async configurePaymentProvider(caller: Caller, req: ConfigurePaymentProviderRequest) {
      requireRole(caller, ADMIN);
      if (req.provider === MANUAL_PROVIDER) throw invalid('provider', 'the manual provider needs no configuration');
      if (!ctx.processors.has(req.provider)) throw invalid('provider', `unknown card processor "${req.provider}"; available: ${[...ctx.processors.keys()].join(', ') || 'none'}`);
      if (!req.apiKey) throw invalid('api_key', 'required');
      if (!req.webhookSecret) throw invalid('webhook_secret', 'required');
      const { response } = await once(caller, 'ConfigurePaymentProvider', ConfigurePaymentProviderRequestSchema, req, ConfigurePaymentProviderResponseSchema, async (tx, at) => {
        await saveProviderCredentials(tx, ctx.secrets, caller.tenantId, req.provider, { apiKey: req.apiKey, webhookSecret: req.webhookSecret }, at);
        return create(ConfigurePaymentProviderResponseSchema, {
          config: { provider: req.provider, webhookPath: `/webhooks/${req.provider}/${caller.tenantId}`, updateTime: timestampFromDate(at) },
        });
      });
      return response;
    },

    async configureConnector(caller: Caller, req: ConfigureConnectorRequest) {
      requireRole(caller, ADMIN);
      const config = req.config;
      if (!config) throw invalid('config', 'required');
      if (!isConnectorName(config.connector)) throw invalid('config.connector', 'must be xero, qbo, csv or json');
      validateAccountCodes(config.accountCodes);
      if (config.externalTenantId.length > 200) throw invalid('config.external_tenant_id', 'at most 200 characters');
      if (!(await hasAccountingFeature(db, caller.tenantId))) {
        throw precondition('accounting integration is not in this tenant\'s plan (ENTERPRISE: FEATURE_ACCOUNTING_INTEGRATION)');
      }
      const { response } = await once(caller, 'ConfigureConnector', ConfigureConnectorRequestSchema, req, ConfigureConnectorResponseSchema, async (tx, at) => {
        const existing = await tx.selectFrom('connectors').select('access_token_enc').where('tenant_id', '=', caller.tenantId).where('connector', '=', config.connector).forUpdate().executeTakeFirst();
        const token = req.accessToken ? ctx.secrets.encrypt(req.accessToken, { tenantId: caller.tenantId, purpose: accessTokenPurpose(config.connector) }) : (existing?.access_token_enc ?? null);
        const remote = config.connector === 'xero' || config.connector === 'qbo';
        if (remote && config.enabled && !token) throw invalid('access_token', `required to enable ${config.connector}`);
        if (remote && config.enabled && !config.externalTenantId) throw invalid('config.external_tenant_id', `required to enable ${config.connector} (${config.connector === 'xero' ? 'the Xero tenant id' : 'the QuickBooks realm id'})`);
        const row = {
          tenant_id: caller.tenantId,
          connector: config.connector,
          enabled: config.enabled,
          account_codes: JSON.stringify(config.accountCodes),
          external_tenant_id: config.externalTenantId,
          access_token_enc: token,
          update_time: at,
        };
        const saved = await tx
          .insertInto('connectors')
          .values(row)
          .onConflict((oc) => oc.columns(['tenant_id', 'connector']).doUpdateSet({ enabled: row.enabled, account_codes: row.account_codes, external_tenant_id: row.external_tenant_id, access_token_enc: row.access_token_enc, update_time: at }))
          .returningAll()
          .executeTakeFirstOrThrow();
        return create(ConfigureConnectorResponseSchema, { config: connectorToProto(saved) });
      });
      return response;
    },

    async listConnectors(caller: Caller, _req: ListConnectorsRequest) {
      requireRole(caller, FINANCE);
      const rows = await db.selectFrom('connectors').selectAll().where('tenant_id', '=', caller.tenantId).orderBy('connector').execute();
      return create(ListConnectorsResponseSchema, { connectors: rows.map(connectorToProto) });
    },

    async getRefundPayout(caller: Caller, req: GetRefundPayoutRequest) {
      requireRole(caller, FRONT_DESK);
      requireId('refund_id', req.refundId);
      const { row, parts } = await inTransaction(db, async (tx) => ({
        row: await tx.selectFrom('refund_payouts').selectAll().where('tenant_id', '=', caller.tenantId).where('refund_id', '=', req.refundId).executeTakeFirst(),
        parts: await partsOf(tx, caller.tenantId, req.refundId),
      }));
      if (!row) throw notFound('refund payout', req.refundId);
      return create(GetRefundPayoutResponseSchema, { payout: payoutToProto(row, parts) });
    },

    async confirmManualRefund(caller: Caller, req: ConfirmManualRefundRequest) {
      requireRole(caller, FINANCE);
      requireId('refund_id', req.refundId);
      if (!req.reference.trim()) throw invalid('reference', 'required: the receipt or transfer reference');
      let due = false;
      const { response } = await once(caller, 'ConfirmManualRefund', ConfirmManualRefundRequestSchema, req, ConfirmManualRefundResponseSchema, async (tx, at) => {
        const row = await tx.selectFrom('refund_payouts').selectAll().where('tenant_id', '=', caller.tenantId).where('refund_id', '=', req.refundId).forUpdate().executeTakeFirst();
        if (!row) throw notFound('refund payout', req.refundId);
        const before = await partsOf(tx, caller.tenantId, req.refundId, true);
        const confirmed = confirmManualPayout(before.map(partOf), req.reference);
        if (!confirmed.changed) return create(ConfirmManualRefundResponseSchema, { payout: payoutToProto(row, before) });
        const saved = await saveParts(tx, { tenantId: caller.tenantId, refundId: req.refundId }, before, confirmed.parts, at);
        if (saved.settled) await refundSettled(tx, saved.row, at);
        due = saved.due;
        return create(ConfirmManualRefundResponseSchema, { payout: payoutToProto(saved.row, await partsOf(tx, caller.tenantId, req.refundId)) });
      });
      // A processor part after the manual ones starts now.
      if (due) ctx.kick('payouts');
      return response;
    },

    async exportJournalEntries(caller: Caller, req: ExportJournalEntriesRequest) {
      requireRole(caller, FINANCE);
      if (req.format !== 'csv' && req.format !== 'json') throw invalid('format', 'must be csv or json');
      for (const [field, value] of [['start_date', req.startDate], ['end_date', req.endDate]] as const) {
        if (value && !/^\d{4}-\d{2}-\d{2}$/.test(value)) throw invalid(field, 'must be YYYY-MM-DD');
      }
      if (!(await hasAccountingFeature(db, caller.tenantId))) {
        throw precondition('accounting integration is not in this tenant\'s plan (ENTERPRISE: FEATURE_ACCOUNTING_INTEGRATION)');
      }
      let q = db.selectFrom('journal_entries').select('entry').where('tenant_id', '=', caller.tenantId);
      if (req.startDate) q = q.where('accounting_date', '>=', req.startDate);
      if (req.endDate) q = q.where('accounting_date', '<', req.endDate);
      const rows = await q.orderBy('accounting_date').orderBy('journal_entry_id').limit(50_000).execute();
      const journals = rows.map((r) => journalFromProto(fromBinary(JournalEntrySchema, r.entry)));
      const content = req.format === 'csv' ? journalsToCsv(journals) : journalsToJson(journals);
      return create(ExportJournalEntriesResponseSchema, {
        contentType: req.format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json',
        content: Buffer.from(content, 'utf8'),
        entries: journals.length,
      });
    },
  };
}

export type BillingHandlers = ReturnType<typeof billingHandlers>;

function deliveryToProto(d: Selectable<WebhookDeliveriesTable>): WebhookDelivery {
  return create(WebhookDeliverySchema, {
    deliveryId: d.delivery_id,
    subscriptionId: d.subscription_id,
    eventId: d.event_id,
    eventType: d.event_type,
    attempts: d.attempts,
    lastStatusCode: d.last_status_code,
    delivered: d.delivered,
    nextAttemptTime: d.next_attempt_at ? timestampFromDate(d.next_attempt_at) : undefined,
  });
}
