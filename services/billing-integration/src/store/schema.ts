import type { IdempotencyTables } from '@punchcard/db';
import type { InboxTables, OutboxTables } from '@punchcard/bus';
import type { ColumnType, Generated, Kysely, Transaction } from 'kysely';

export const SCHEMA = 'billing_integration';

type Int8 = ColumnType<bigint, bigint | number, bigint | number>;
type Timestamp = ColumnType<Date, Date | undefined, Date>;
type NullableTimestamp = ColumnType<Date | null, Date | null | undefined, Date | null>;
type Json<T> = ColumnType<T, string, string>;

/** Tenant facts from catalogue.tenant_changed: what the plan allows. */
export interface TenantsTable {
  tenant_id: string;
  plan_tier: string;
  features: string[];
  default_currency: string;
  update_time: Date;
}

export interface PaymentProvidersTable {
  tenant_id: string;
  provider: string;
  api_key_enc: Buffer;
  webhook_secret_enc: Buffer;
  update_time: Date;
}

export interface PaymentsTable {
  tenant_id: string;
  payment_id: string;
  /** A package purchase, or the difference of an upgrade of `upgrade_entitlement_id` to `definition_id`. */
  kind: ColumnType<'purchase' | 'upgrade', 'purchase' | 'upgrade' | undefined, never>;
  upgrade_entitlement_id: ColumnType<string, string | undefined, never>;
  provider: string;
  provider_reference: string;
  status: 'pending' | 'captured' | 'failed' | 'fulfilled';
  currency: string;
  amount_minor: Int8;
  member_id: string;
  definition_id: string;
  branch_id: string;
  entitlement_id: string;
  checkout_url: string;
  failure_reason: string;
  created_by: string;
  create_time: Timestamp;
  capture_time: NullableTimestamp;
  fulfil_time: NullableTimestamp;
  fulfilment_attempts: Generated<number>;
  fulfilment_error: Generated<string>;
  /** When the saga next tries the ledger purchase (captured only); also its lease while a try is in flight. */
  next_attempt_at: NullableTimestamp;
}

/** Provider webhook events already applied: a duplicate delivery finds its id here. */
export interface ProviderEventsTable {
  provider: string;
  tenant_id: string;
  event_id: string;
  payment_id: string;
  kind: string;
  received_at: Date;
}

/**
 * Where an entitlement came from, learnt from the ledger's TRANSFER_IN and UPGRADE_IN entries (and
 * the upgrade saga's answer): followed back to the payments a refund is paid back through.
 */
export interface EntitlementOriginsTable {
  tenant_id: string;
  entitlement_id: string;
  origin_entitlement_id: string;
  kind: 'transfer' | 'upgrade';
  /** The upgrade's payment reference (a billing payment id when billing took it). */
  payment_reference: string;
  recorded_at: Date;
}

/** One refund's share paid back through one payment; a refund's parts are paid out in `seq` order. */
export interface RefundPayoutPartsTable {
  tenant_id: string;
  refund_id: string;
  seq: number;
  payment_id: string;
  provider: string;
  currency: string;
  amount_minor: Int8;
  status: 'queued' | 'pending' | 'paid' | 'failed' | 'awaiting_manual';
  provider_reference: string;
  failure_reason: string;
  attempts: Generated<number>;
  /** When the worker next tries a pending part; also its lease while a try is in flight. */
  next_attempt_at: NullableTimestamp;
  paid_time: NullableTimestamp;
}

/** The refund-level record: one per refund id; its status and totals follow from its parts. */
export interface RefundPayoutsTable {
  tenant_id: string;
  refund_id: string;
  entitlement_id: string;
  payment_id: string;
  provider: string;
  currency: string;
  amount_minor: Int8;
  status: 'pending' | 'paid' | 'failed' | 'awaiting_manual';
  provider_reference: string;
  failure_reason: string;
  attempts: Generated<number>;
  next_attempt_at: NullableTimestamp;
  paid_time: NullableTimestamp;
  create_time: Timestamp;
}

export interface ConnectorsTable {
  tenant_id: string;
  connector: string;
  enabled: boolean;
  account_codes: Json<Record<string, string>>;
  external_tenant_id: string;
  access_token_enc: Buffer | null;
  update_time: Date;
}

export interface JournalEntriesTable {
  tenant_id: string;
  journal_entry_id: string;
  accounting_date: string;
  /** punchcard.revenue.v1.JournalEntry bytes, as posted. */
  entry: Uint8Array;
  received_at: Date;
}

export interface JournalSyncsTable {
  tenant_id: string;
  journal_entry_id: string;
  connector: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: Generated<number>;
  last_error: Generated<string>;
  last_attempt_at: NullableTimestamp;
  next_attempt_at: NullableTimestamp;
  external_id: Generated<string>;
  delivered_at: NullableTimestamp;
}

export interface WebhookSubscriptionsTable {
  tenant_id: string;
  subscription_id: string;
  url: string;
  event_types: string[];
  active: boolean;
  secret_enc: Buffer;
  create_time: Date;
}

export interface WebhookDeliveriesTable {
  delivery_id: string;
  tenant_id: string;
  subscription_id: string;
  event_id: string;
  event_type: string;
  /** The exact JSON body sent (and signed) on every attempt. */
  payload: string;
  event_time: Date;
  attempts: Generated<number>;
  last_status_code: Generated<number>;
  last_error: Generated<string>;
  delivered: Generated<boolean>;
  next_attempt_at: NullableTimestamp;
  create_time: Date;
  /** Insertion order for stable pagination. */
  seq: ColumnType<bigint, never, never>;
}

/** The delivery log: one row per HTTP attempt. */
export interface WebhookAttemptsTable {
  delivery_id: string;
  attempt: number;
  status_code: number;
  error: string;
  attempt_time: Date;
  replay: boolean;
}

export interface BillingTables extends IdempotencyTables, OutboxTables, InboxTables {
  tenants: TenantsTable;
  payment_providers: PaymentProvidersTable;
  payments: PaymentsTable;
  provider_events: ProviderEventsTable;
  refund_payouts: RefundPayoutsTable;
  refund_payout_parts: RefundPayoutPartsTable;
  entitlement_origins: EntitlementOriginsTable;
  connectors: ConnectorsTable;
  journal_entries: JournalEntriesTable;
  journal_syncs: JournalSyncsTable;
  webhook_subscriptions: WebhookSubscriptionsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
}

export type Db = Kysely<BillingTables>;
export type Tx = Transaction<BillingTables>;
