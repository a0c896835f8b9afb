import { inboxMigration, outboxMigration, outboxSeqNotUniqueMigration, outboxDeletedOnPublishMigration, outboxKeyedBySeqMigration } from '@punchcard/bus';
import { idempotencyMigration, roomForUpdatesMigration, type Migrations } from '@punchcard/db';
import { sql } from 'kysely';

/** Forward-only migrations of the `expiry_scheduler` schema; append new ones, never edit applied ones. */
export const migrations: Migrations = {
  '0001_idempotency_keys': idempotencyMigration,
  '0002_outbox': outboxMigration,
  '0003_inbox': inboxMigration,
  '0004_expiry': {
    async up(db) {
      // What the scheduler knows of each entitlement, from the ledger's events, applied in version order.
      await sql`
        create table entitlements (
          tenant_id text not null,
          entitlement_id text not null,
          member_id text not null,
          -- The ledger version last applied.
          version bigint not null check (version > 0),
          status text not null check (status in ('ACTIVE', 'FROZEN', 'IN_GRACE', 'EXPIRED', 'EXHAUSTED', 'REFUNDED', 'TRANSFERRED', 'UPGRADED')),
          remaining integer not null,
          -- The definition version's expiry terms, snapshotted by the ledger (the scheduler's own JSON shape).
          policy jsonb not null,
          time_zone text not null,
          purchase_time timestamptz not null,
          first_use_time timestamptz,
          last_use_time timestamptz,
          frozen_days integer not null default 0,
          freeze_from timestamptz,
          freeze_until timestamptz,
          ledger_expiry_time timestamptz,
          ledger_grace_end_time timestamptz,
          -- The schedule in force (derived).
          expiry_time timestamptz,
          grace_end_time timestamptz,
          update_time timestamptz not null,
          primary key (tenant_id, entitlement_id)
        )`.execute(db);
      await sql`
        create table timers (
          timer_id uuid primary key,
          tenant_id text not null,
          entitlement_id text not null,
          kind text not null check (kind in ('REMINDER', 'ENTER_GRACE', 'EXPIRE', 'UNFREEZE')),
          state text not null check (state in ('PENDING', 'FIRED', 'CANCELLED', 'FAILED')),
          due_time timestamptz not null,
          -- Order among timers due at the same instant: reminder, unfreeze, grace, expire.
          rank smallint not null,
          offset_days integer not null default 0,
          expiry_time timestamptz,
          grace_end_time timestamptz,
          -- Due time, or later while backing off after a transient failure.
          next_attempt_time timestamptz not null,
          attempts integer not null default 0,
          last_error text,
          no_op boolean not null default false,
          fired_time timestamptz,
          create_time timestamptz not null,
          update_time timestamptz not null,
          foreign key (tenant_id, entitlement_id) references entitlements (tenant_id, entitlement_id)
        )`.execute(db);
      // The sweep's and ListDue's order.
      await sql`create index timers_pending_due on timers (due_time, rank, timer_id) where state = 'PENDING'`.execute(db);
      // Per-entitlement queue: only its earliest pending timer may fire (keeps grace before expiry across replicas).
      await sql`create index timers_pending_entitlement on timers (tenant_id, entitlement_id, due_time, rank, timer_id) where state = 'PENDING'`.execute(db);
      await sql`create index timers_entitlement on timers (tenant_id, entitlement_id)`.execute(db);
      // A planned timer exists once (pending, fired or failed): re-planning never duplicates a firing.
      await sql`
        create unique index timers_live_identity on timers (tenant_id, entitlement_id, kind, due_time, offset_days)
        where state <> 'CANCELLED'`.execute(db);
    },
  },
  '0005_outbox_seq_not_unique': outboxSeqNotUniqueMigration,
  // An entitlement's live timers are read through timers_live_identity (its leading columns, the same
  // predicate); a key on every timer took an entry on each insert and on each firing (no HOT update:
  // the state is in the partial indexes' predicates). Only the schedule's listing reads cancelled ones.
  '0006_timers_by_entitlement_cancelled_only': {
    async up(db) {
      await sql`create index timers_cancelled_entitlement on timers (tenant_id, entitlement_id) where state = 'CANCELLED'`.execute(db);
      await sql`drop index timers_entitlement`.execute(db);
    },
  },
  '0007_outbox_deleted_on_publish': outboxDeletedOnPublishMigration,
  '0008_outbox_keyed_by_seq': outboxKeyedBySeqMigration,
  // Every ledger event (a consume, an expiry) updates its entitlement's row here; only the key indexes it.
  '0009_entitlements_room_for_updates': roomForUpdatesMigration('entitlements'),
};
