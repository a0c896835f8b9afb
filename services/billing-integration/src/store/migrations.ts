import { inboxMigration, outboxMigration, outboxSeqNotUniqueMigration, outboxDeletedOnPublishMigration, outboxKeyedBySeqMigration } from '@punchcard/bus';
import { idempotencyMigration, type Migration } from '@punchcard/db';
import { sql } from 'kysely';

const init: Migration = {
  async up(db) {
    await db.schema
      .createTable('tenants')
      .addColumn('tenant_id', 'text', (c) => c.primaryKey())
      .addColumn('plan_tier', 'text', (c) => c.notNull())
      .addColumn('features', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
      .addColumn('default_currency', 'text', (c) => c.notNull())
      .addColumn('update_time', 'timestamptz', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('payment_providers')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('provider', 'text', (c) => c.notNull())
      .addColumn('api_key_enc', 'bytea', (c) => c.notNull())
      .addColumn('webhook_secret_enc', 'bytea', (c) => c.notNull())
      .addColumn('update_time', 'timestamptz', (c) => c.notNull())
      .addPrimaryKeyConstraint('payment_providers_pkey', ['tenant_id', 'provider'])
      .execute();

    await db.schema
      .createTable('payments')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('payment_id', 'uuid', (c) => c.notNull())
      .addColumn('provider', 'text', (c) => c.notNull())
      .addColumn('provider_reference', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('pending', 'captured', 'failed', 'fulfilled')`))
      .addColumn('currency', 'text', (c) => c.notNull())
      .addColumn('amount_minor', 'int8', (c) => c.notNull().check(sql`amount_minor > 0`))
      .addColumn('member_id', 'text', (c) => c.notNull())
      .addColumn('definition_id', 'text', (c) => c.notNull())
      .addColumn('branch_id', 'text', (c) => c.notNull())
      .addColumn('entitlement_id', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('checkout_url', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('failure_reason', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('create_time', 'timestamptz', (c) => c.notNull())
      .addColumn('capture_time', 'timestamptz')
      .addColumn('fulfil_time', 'timestamptz')
      .addColumn('fulfilment_attempts', 'int4', (c) => c.notNull().defaultTo(0))
      .addColumn('fulfilment_error', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('next_attempt_at', 'timestamptz')
      .addPrimaryKeyConstraint('payments_pkey', ['tenant_id', 'payment_id'])
      // An entitlement exists only for a captured payment; a fulfilled one names it.
      .addCheckConstraint('payments_fulfilled_has_entitlement', sql`(status = 'fulfilled') = (entitlement_id <> '')`)
      .addCheckConstraint('payments_captured_has_time', sql`status not in ('captured', 'fulfilled') or capture_time is not null`)
      .execute();
    await sql`create unique index payments_payment_id on payments (payment_id)`.execute(db);
    await sql`create unique index payments_provider_reference on payments (tenant_id, provider, provider_reference) where provider_reference <> ''`.execute(db);
    await sql`create index payments_to_fulfil on payments (next_attempt_at) where status = 'captured'`.execute(db);
    await sql`create index payments_entitlement on payments (tenant_id, entitlement_id) where entitlement_id <> ''`.execute(db);

    await db.schema
      .createTable('provider_events')
      .addColumn('provider', 'text', (c) => c.notNull())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('payment_id', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('received_at', 'timestamptz', (c) => c.notNull())
      .addPrimaryKeyConstraint('provider_events_pkey', ['provider', 'tenant_id', 'event_id'])
      .execute();

    await db.schema
      .createTable('refund_payouts')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('refund_id', 'text', (c) => c.notNull())
      .addColumn('entitlement_id', 'text', (c) => c.notNull())
      .addColumn('payment_id', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('provider', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('currency', 'text', (c) => c.notNull())
      .addColumn('amount_minor', 'int8', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('pending', 'paid', 'failed', 'awaiting_manual')`))
      .addColumn('provider_reference', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('failure_reason', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('attempts', 'int4', (c) => c.notNull().defaultTo(0))
      .addColumn('next_attempt_at', 'timestamptz')
      .addColumn('paid_time', 'timestamptz')
      .addColumn('create_time', 'timestamptz', (c) => c.notNull())
      // One payout per refund id: the approval event may come twice, the money goes once.
      .addPrimaryKeyConstraint('refund_payouts_pkey', ['tenant_id', 'refund_id'])
      .execute();
    await sql`create index refund_payouts_due on refund_payouts (next_attempt_at) where status = 'pending'`.execute(db);

    await db.schema
      .createTable('connectors')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('connector', 'text', (c) => c.notNull())
      .addColumn('enabled', 'boolean', (c) => c.notNull())
      .addColumn('account_codes', 'jsonb', (c) => c.notNull())
      .addColumn('external_tenant_id', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('access_token_enc', 'bytea')
      .addColumn('update_time', 'timestamptz', (c) => c.notNull())
      .addPrimaryKeyConstraint('connectors_pkey', ['tenant_id', 'connector'])
      .execute();

    await db.schema
      .createTable('journal_entries')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('journal_entry_id', 'text', (c) => c.notNull())
      .addColumn('accounting_date', 'date', (c) => c.notNull())
      .addColumn('entry', 'bytea', (c) => c.notNull())
      .addColumn('received_at', 'timestamptz', (c) => c.notNull())
      .addPrimaryKeyConstraint('journal_entries_pkey', ['tenant_id', 'journal_entry_id'])
      .execute();
    await sql`create index journal_entries_date on journal_entries (tenant_id, accounting_date, journal_entry_id)`.execute(db);

    await db.schema
      .createTable('journal_syncs')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('journal_entry_id', 'text', (c) => c.notNull())
      .addColumn('connector', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('pending', 'delivered', 'failed')`))
      .addColumn('attempts', 'int4', (c) => c.notNull().defaultTo(0))
      .addColumn('last_error', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('last_attempt_at', 'timestamptz')
      .addColumn('next_attempt_at', 'timestamptz')
      .addColumn('external_id', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('delivered_at', 'timestamptz')
      // The local delivered record: one row per entry and connector.
      .addPrimaryKeyConstraint('journal_syncs_pkey', ['tenant_id', 'journal_entry_id', 'connector'])
      .execute();
    await sql`create index journal_syncs_due on journal_syncs (next_attempt_at) where status = 'pending'`.execute(db);
    await sql`create index journal_syncs_failures on journal_syncs (tenant_id, connector, journal_entry_id) where status <> 'delivered' and attempts > 0`.execute(db);

    await db.schema
      .createTable('webhook_subscriptions')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('subscription_id', 'uuid', (c) => c.primaryKey())
      .addColumn('url', 'text', (c) => c.notNull())
      .addColumn('event_types', sql`text[]`, (c) => c.notNull())
      .addColumn('active', 'boolean', (c) => c.notNull())
      .addColumn('secret_enc', 'bytea', (c) => c.notNull())
      .addColumn('create_time', 'timestamptz', (c) => c.notNull())
      .execute();
    await sql`create index webhook_subscriptions_tenant on webhook_subscriptions (tenant_id) where active`.execute(db);

    await db.schema
      .createTable('webhook_deliveries')
      .addColumn('delivery_id', 'uuid', (c) => c.primaryKey())
      .addColumn('seq', 'bigserial', (c) => c.notNull().unique())
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('subscription_id', 'uuid', (c) => c.notNull().references('webhook_subscriptions.subscription_id'))
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('event_type', 'text', (c) => c.notNull())
      .addColumn('payload', 'text', (c) => c.notNull())
      .addColumn('event_time', 'timestamptz', (c) => c.notNull())
      .addColumn('attempts', 'int4', (c) => c.notNull().defaultTo(0))
      .addColumn('last_status_code', 'int4', (c) => c.notNull().defaultTo(0))
      .addColumn('last_error', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('delivered', 'boolean', (c) => c.notNull().defaultTo(false))
      .addColumn('next_attempt_at', 'timestamptz')
      .addColumn('create_time', 'timestamptz', (c) => c.notNull())
      .addUniqueConstraint('webhook_deliveries_once', ['subscription_id', 'event_id'])
      .execute();
    await sql`create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where not delivered and next_attempt_at is not null`.execute(db);
    await sql`create index webhook_deliveries_subscription on webhook_deliveries (tenant_id, subscription_id, seq)`.execute(db);

    await db.schema
      .createTable('webhook_attempts')
      .addColumn('delivery_id', 'uuid', (c) => c.notNull().references('webhook_deliveries.delivery_id'))
      .addColumn('attempt', 'int4', (c) => c.notNull())
      .addColumn('status_code', 'int4', (c) => c.notNull())
      .addColumn('error', 'text', (c) => c.notNull())
      .addColumn('attempt_time', 'timestamptz', (c) => c.notNull())
      .addColumn('replay', 'boolean', (c) => c.notNull())
      .addPrimaryKeyConstraint('webhook_attempts_pkey', ['delivery_id', 'attempt'])
      .execute();
  },
};

/** Manual references are receipt numbers staff type, not processor ids: they need not be unique. */
const manualReferencesNotUnique: Migration = {
  async up(db) {
    await sql`drop index payments_provider_reference`.execute(db);
    await sql`create unique index payments_provider_reference on payments (tenant_id, provider, provider_reference) where provider_reference <> '' and provider <> 'manual'`.execute(db);
  },
};

/**
 * Upgrade payments, entitlement lineage (transfers, upgrades) and refunds split over several
 * payments. Payouts made before this become their refund's only part (seq 0, same state), so their
 * amounts count against the payment and an in-flight one keeps its idempotency key.
 */
const upgradesAndLineage: Migration = {
  async up(db) {
    await db.schema
      .alterTable('payments')
      .addColumn('kind', 'text', (c) => c.notNull().defaultTo('purchase').check(sql`kind in ('purchase', 'upgrade')`))
      .addColumn('upgrade_entitlement_id', 'text', (c) => c.notNull().defaultTo(''))
      .execute();
    await sql`alter table payments add constraint payments_upgrade_names_entitlement check ((kind = 'upgrade') = (upgrade_entitlement_id <> ''))`.execute(db);
    await sql`create index payments_upgrading on payments (tenant_id, upgrade_entitlement_id) where kind = 'upgrade'`.execute(db);

    await db.schema
      .createTable('entitlement_origins')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('entitlement_id', 'text', (c) => c.notNull())
      .addColumn('origin_entitlement_id', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('transfer', 'upgrade')`))
      .addColumn('payment_reference', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('recorded_at', 'timestamptz', (c) => c.notNull())
      // An entitlement arrives once, from one entitlement.
      .addPrimaryKeyConstraint('entitlement_origins_pkey', ['tenant_id', 'entitlement_id'])
      .execute();

    await db.schema
      .createTable('refund_payout_parts')
      .addColumn('tenant_id', 'text', (c) => c.notNull())
      .addColumn('refund_id', 'text', (c) => c.notNull())
      .addColumn('seq', 'int4', (c) => c.notNull())
      .addColumn('payment_id', 'text', (c) => c.notNull())
      .addColumn('provider', 'text', (c) => c.notNull())
      .addColumn('currency', 'text', (c) => c.notNull())
      .addColumn('amount_minor', 'int8', (c) => c.notNull().check(sql`amount_minor > 0`))
      .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('queued', 'pending', 'paid', 'failed', 'awaiting_manual')`))
      .addColumn('provider_reference', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('failure_reason', 'text', (c) => c.notNull().defaultTo(''))
      .addColumn('attempts', 'int4', (c) => c.notNull().defaultTo(0))
      .addColumn('next_attempt_at', 'timestamptz')
      .addColumn('paid_time', 'timestamptz')
      .addPrimaryKeyConstraint('refund_payout_parts_pkey', ['tenant_id', 'refund_id', 'seq'])
      .addForeignKeyConstraint('refund_payout_parts_refund', ['tenant_id', 'refund_id'], 'refund_payouts', ['tenant_id', 'refund_id'])
      .execute();
    await sql`create index refund_payout_parts_due on refund_payout_parts (next_attempt_at) where status = 'pending'`.execute(db);
    // What a payment has given back or promised: every part but the failed ones.
    await sql`create index refund_payout_parts_payment on refund_payout_parts (tenant_id, payment_id) where status <> 'failed'`.execute(db);
    await sql`
      insert into refund_payout_parts (tenant_id, refund_id, seq, payment_id, provider, currency, amount_minor, status, provider_reference, failure_reason, attempts, next_attempt_at, paid_time)
      select tenant_id, refund_id, 0, payment_id, provider, currency, amount_minor, status, provider_reference, failure_reason, attempts, next_attempt_at, paid_time
      from refund_payouts where payment_id <> '' and amount_minor > 0`.execute(db);
    await sql`drop index refund_payouts_due`.execute(db);
  },
};

export const migrations: Record<string, Migration> = {
  '0000_idempotency_keys': idempotencyMigration,
  '0001_outbox': outboxMigration,
  '0002_inbox': inboxMigration,
  '0003_billing': init,
  '0004_manual_references': manualReferencesNotUnique,
  '0005_upgrades_and_lineage': upgradesAndLineage,
  '0006_outbox_seq_not_unique': outboxSeqNotUniqueMigration,
  '0007_outbox_deleted_on_publish': outboxDeletedOnPublishMigration,
  '0008_outbox_keyed_by_seq': outboxKeyedBySeqMigration,
};
