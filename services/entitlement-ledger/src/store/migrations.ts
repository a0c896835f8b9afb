import { idempotencyMigration, roomForUpdatesMigration, type Migrations } from '@punchcard/db';
import { inboxMigration, outboxMigration, outboxSeqNotUniqueMigration, outboxDeletedOnPublishMigration, outboxKeyedBySeqMigration } from '@punchcard/bus';
import { sql } from 'kysely';

/** Forward-only migrations of the `entitlement_ledger` schema; add new ones at the end. */
export const migrations: Migrations = {
  '0000_idempotency_keys': idempotencyMigration,
  '0001_outbox': outboxMigration,
  '0002_inbox': inboxMigration,
  '0003_catalogue_read_model': {
    async up(db) {
      // What the ledger knows of the catalogue, from catalogue.* events; never read from its schema.
      await sql`
        create table tenants (
          tenant_id text primary key,
          plan_tier int not null,
          features int[] not null,
          default_currency text not null,
          -- The catalogue's update_time: an older event never overwrites a newer one.
          changed_at timestamptz not null
        )`.execute(db);
      await sql`
        create table branches (
          tenant_id text not null,
          branch_id text not null,
          time_zone text not null,
          active boolean not null,
          changed_at timestamptz not null,
          primary key (tenant_id, branch_id)
        )`.execute(db);
      await sql`
        create table definition_versions (
          tenant_id text not null,
          definition_id text not null,
          version int not null,
          code text not null,
          -- punchcard.catalogue.v1.DefinitionTerms, as published (immutable once active).
          terms bytea not null,
          published_at timestamptz,
          retired boolean not null default false,
          primary key (tenant_id, definition_id, version)
        )`.execute(db);
    },
  },
  '0004_entitlements_and_entries': {
    async up(db) {
      await sql`
        create table entitlements (
          seq bigserial not null unique,
          tenant_id text not null,
          entitlement_id uuid not null,
          member_id text not null,
          definition_id text not null,
          definition_version int not null,
          -- Snapshot of the definition version: the full protobuf terms for readers, and the rules
          -- the ledger applies (domain Terms as JSON), so the hot path never asks the catalogue.
          terms bytea not null,
          rules jsonb not null,
          time_zone text not null,
          purchase_branch_id text not null,
          status text not null check (status in
            ('ACTIVE', 'FROZEN', 'IN_GRACE', 'EXPIRED', 'EXHAUSTED', 'REFUNDED', 'TRANSFERRED', 'UPGRADED')),
          paid_sessions int not null check (paid_sessions >= 0),
          bonus_sessions int not null check (bonus_sessions >= 0),
          -- Invariant 1 (no overdraft), enforced by the database as the last line of defence.
          paid_remaining int not null check (paid_remaining >= 0),
          bonus_remaining int not null check (bonus_remaining >= 0),
          remaining int generated always as (paid_remaining + bonus_remaining) stored,
          price_currency text not null,
          price_minor bigint not null,
          payment_reference text not null,
          purchase_time timestamptz not null,
          activation_time timestamptz,
          expiry_time timestamptz,
          grace_end_time timestamptz,
          frozen_at timestamptz,
          frozen_until_time timestamptz,
          freeze_planned_days int not null default 0,
          frozen_days int not null default 0,
          last_use_time timestamptz,
          version bigint not null check (version >= 1),
          updated_at timestamptz not null default now(),
          primary key (tenant_id, entitlement_id)
        )`.execute(db);
      await sql`create index entitlements_member on entitlements (tenant_id, member_id, entitlement_id)`.execute(db);
      await sql`create index entitlements_tenant_seq on entitlements (tenant_id, seq)`.execute(db);
      await sql`create index entitlements_expiry on entitlements (tenant_id, expiry_time) where expiry_time is not null`.execute(db);

      await sql`
        create table entries (
          seq bigserial not null unique,
          tenant_id text not null,
          entry_id uuid not null,
          entitlement_id uuid not null,
          kind text not null check (kind in ('PURCHASE', 'CONSUME', 'REVERSAL', 'EXPIRE', 'EXTEND', 'FREEZE', 'UNFREEZE',
            'GRACE', 'TRANSFER_OUT', 'TRANSFER_IN', 'TOP_UP', 'UPGRADE_OUT', 'UPGRADE_IN', 'REFUND')),
          sessions_delta int not null,
          paid_delta int not null,
          bonus_delta int not null,
          branch_id text not null,
          actor_subject text not null,
          actor_roles text[] not null,
          reason text not null,
          occurred_time timestamptz not null,
          record_time timestamptz not null,
          request_id text not null,
          balance_after int not null check (balance_after >= 0),
          reverses_entry_id uuid,
          in_grace boolean not null,
          visit_id text,
          service_code text,
          member_id text not null,
          entitlement_version bigint not null,
          expiry_time timestamptz,
          primary key (tenant_id, entry_id),
          foreign key (tenant_id, entitlement_id) references entitlements (tenant_id, entitlement_id),
          -- One entry per entitlement version: the history is a gapless, ordered sequence.
          unique (tenant_id, entitlement_id, entitlement_version),
          check (sessions_delta = paid_delta + bonus_delta),
          check ((kind = 'REVERSAL') = (reverses_entry_id is not null))
        )`.execute(db);
      // A consume is reversed at most once, whatever races.
      await sql`create unique index entries_one_reversal on entries (tenant_id, reverses_entry_id) where reverses_entry_id is not null`.execute(db);

      // Invariant 2: entries are never updated or deleted; a correction is a new (reversal) entry.
      await sql`
        create function entries_append_only() returns trigger language plpgsql as $$
        begin
          raise exception 'ledger entries are append-only: % on entries is not allowed', tg_op
            using errcode = 'insufficient_privilege', hint = 'record a reversal entry instead';
        end $$`.execute(db);
      await sql`
        create trigger entries_no_update_delete before update or delete on entries
        for each row execute function entries_append_only()`.execute(db);
      await sql`
        create trigger entries_no_truncate before truncate on entries
        for each statement execute function entries_append_only()`.execute(db);

      // Every entry must agree with the entitlement it is written with: same version, same balance.
      // The entitlement row is updated first in the same transaction, so this reads the new state
      // (since 0007 the check runs after the entry's statement, which may make that update).
      await sql`
        create function entries_match_entitlement() returns trigger language plpgsql as $$
        declare
          e record;
        begin
          select remaining, version into e from entitlements
            where tenant_id = new.tenant_id and entitlement_id = new.entitlement_id;
          if e.version is distinct from new.entitlement_version or e.remaining is distinct from new.balance_after then
            raise exception 'entry % (version %, balance %) does not match entitlement % (version %, remaining %)',
              new.entry_id, new.entitlement_version, new.balance_after, new.entitlement_id, e.version, e.remaining
              using errcode = 'check_violation';
          end if;
          return new;
        end $$`.execute(db);
      await sql`
        create trigger entries_match_entitlement before insert on entries
        for each row execute function entries_match_entitlement()`.execute(db);
    },
  },
  '0005_visits': {
    async up(db) {
      // One row per (tenant, visit id): exactly one consume per visit, however often it is delivered
      // or whichever path (event or API) reports it.
      await sql`
        create table visits (
          tenant_id text not null,
          visit_id text not null,
          state text not null check (state in ('CONSUMED', 'REJECTED', 'ONE_OFF', 'CANCELLED', 'REVERSED')),
          source text not null check (source in ('event', 'api')),
          member_id text not null,
          service_code text not null,
          branch_id text not null,
          occurred_time timestamptz,
          entitlement_id uuid,
          entry_id uuid,
          reversal_entry_id uuid,
          -- Why it was rejected, or why a cancellation could not restore the session.
          reason text not null default '',
          error_code text not null default '',
          created_at timestamptz not null,
          updated_at timestamptz not null,
          primary key (tenant_id, visit_id)
        )`.execute(db);
      await sql`create index visits_state on visits (tenant_id, state, created_at)`.execute(db);
    },
  },
  '0006_households_transfers_refunds': {
    async up(db) {
      // Issue 7: sharing, transfer chains and refund holds live on the entitlement row (changed under
      // its lock); only session movements are entries.
      await sql`
        alter table entitlements
          add column household_id uuid,
          add column transfer_count int not null default 0 check (transfer_count >= 0),
          add column origin_entitlement_id uuid,
          add column pending_refund_id uuid`.execute(db);
      await sql`create index entitlements_household on entitlements (tenant_id, household_id, entitlement_id) where household_id is not null`.execute(db);

      // What revenue needs to book the movement: the other side of a transfer or upgrade, the money
      // moved, and the operation's numbers (protobuf punchcard.ledger.v1.LedgerEntry holding only
      // its transfer / top_up / upgrade / refund fields), all immutable like the rest of the entry.
      await sql`
        alter table entries
          add column counterpart_entitlement_id uuid,
          add column counterpart_entry_id uuid,
          add column amount_minor bigint,
          add column currency text,
          add column refund_id uuid,
          add column detail bytea`.execute(db);
      // A refund settles at most once, whatever redelivers the payout.
      await sql`create unique index entries_one_refund on entries (tenant_id, refund_id) where refund_id is not null`.execute(db);

      await sql`
        create table households (
          seq bigserial not null unique,
          tenant_id text not null,
          household_id uuid not null,
          name text not null,
          kind text not null check (kind in ('FAMILY', 'HOUSEHOLD', 'MEMBER_GROUP')),
          owner_member_id text not null,
          version bigint not null check (version >= 1),
          created_at timestamptz not null,
          updated_at timestamptz not null,
          primary key (tenant_id, household_id)
        )`.execute(db);
      await sql`
        create table household_members (
          tenant_id text not null,
          household_id uuid not null,
          member_id text not null,
          added_at timestamptz not null,
          primary key (tenant_id, household_id, member_id),
          foreign key (tenant_id, household_id) references households (tenant_id, household_id)
        )`.execute(db);
      await sql`create index household_members_member on household_members (tenant_id, member_id)`.execute(db);

      await sql`
        create table refunds (
          seq bigserial not null unique,
          tenant_id text not null,
          refund_id uuid not null,
          entitlement_id uuid not null,
          member_id text not null,
          state text not null check (state in ('REQUESTED', 'APPROVED', 'REJECTED', 'COMPLETED', 'PAYOUT_FAILED')),
          -- protobuf punchcard.ledger.v1.RefundQuote, as computed at the request.
          quote bytea not null,
          currency text not null,
          amount_minor bigint not null check (amount_minor >= 0),
          reason text not null,
          requested_by_subject text not null,
          requested_by_roles text[] not null,
          request_time timestamptz not null,
          decided_by_subject text,
          decided_by_roles text[],
          decision_note text not null default '',
          decide_time timestamptz,
          settle_time timestamptz,
          provider_reference text not null default '',
          failure_reason text not null default '',
          refund_entry_id uuid,
          version bigint not null check (version >= 1),
          primary key (tenant_id, refund_id),
          foreign key (tenant_id, entitlement_id) references entitlements (tenant_id, entitlement_id)
        )`.execute(db);
      // One open refund per entitlement, whatever races.
      await sql`create unique index refunds_one_open on refunds (tenant_id, entitlement_id) where state in ('REQUESTED', 'APPROVED')`.execute(db);
      await sql`create index refunds_entitlement on refunds (tenant_id, entitlement_id, seq)`.execute(db);
    },
  },
  '0007_entry_check_after_statement': {
    async up(db) {
      // The entry is checked once its statement is done, so the entitlement update and the entry can
      // be one statement (one round trip per movement). The check still runs for every entry.
      await sql`drop trigger entries_match_entitlement on entries`.execute(db);
      await sql`
        create trigger entries_match_entitlement after insert on entries
        for each row execute function entries_match_entitlement()`.execute(db);
    },
  },
  '0008_outbox_seq_not_unique': outboxSeqNotUniqueMigration,
  '0009_seq_not_unique': {
    async up(db) {
      // seq comes from its sequence; pages of entitlements read it through (tenant_id, seq) and no read
      // orders entries by it. The unique indexes took an entry at every entry written (every consume,
      // every expiry) and at every entitlement update that is not HOT.
      await sql`alter table entitlements drop constraint entitlements_seq_key`.execute(db);
      await sql`alter table entries drop constraint entries_seq_key`.execute(db);
    },
  },
  '0010_outbox_deleted_on_publish': outboxDeletedOnPublishMigration,
  '0011_entries_checked_per_statement': {
    async up(db) {
      // The same check as before (0004, 0007), once per statement over all its entries instead of a
      // call and a lookup per entry: an ExpireBatch writes 500 entries in one statement.
      await sql`
        create function entries_match_entitlements() returns trigger language plpgsql as $$
        declare
          bad record;
        begin
          select n.entry_id, n.entitlement_version, n.balance_after, n.entitlement_id, e.version, e.remaining into bad
            from inserted n
            left join entitlements e on e.tenant_id = n.tenant_id and e.entitlement_id = n.entitlement_id
           where e.version is distinct from n.entitlement_version or e.remaining is distinct from n.balance_after
           limit 1;
          if found then
            raise exception 'entry % (version %, balance %) does not match entitlement % (version %, remaining %)',
              bad.entry_id, bad.entitlement_version, bad.balance_after, bad.entitlement_id, bad.version, bad.remaining
              using errcode = 'check_violation';
          end if;
          return null;
        end $$`.execute(db);
      await sql`drop trigger entries_match_entitlement on entries`.execute(db);
      await sql`drop function entries_match_entitlement()`.execute(db);
      await sql`
        create trigger entries_match_entitlement after insert on entries
        referencing new table as inserted for each statement execute function entries_match_entitlements()`.execute(db);
    },
  },
  '0012_outbox_keyed_by_seq': outboxKeyedBySeqMigration,
  // Every movement (a consume, an expiry) updates its entitlement's row and changes no indexed column.
  '0013_entitlements_room_for_updates': roomForUpdatesMigration('entitlements'),
};
