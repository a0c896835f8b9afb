import { outboxMigration, outboxSeqNotUniqueMigration, outboxDeletedOnPublishMigration, outboxKeyedBySeqMigration } from '@punchcard/bus';
import { idempotencyMigration, type Migrations } from '@punchcard/db';
import { sql } from 'kysely';

/** Forward-only migrations of the `catalogue` schema; append new ones, never edit applied ones. */
export const migrations: Migrations = {
  '0001_idempotency_keys': idempotencyMigration,
  '0002_outbox': outboxMigration,
  '0003_catalogue': {
    async up(db) {
      await sql`
        create table tenants (
          tenant_id text primary key,
          name text not null,
          plan_tier text not null check (plan_tier in ('BASIC', 'ADVANCED', 'EXPERT', 'ENTERPRISE')),
          default_currency text not null check (default_currency ~ '^[A-Z]{3}$'),
          earning_rule text not null check (earning_rule in ('DELIVERING_BRANCH', 'PURCHASING_BRANCH')),
          -- Bumped on every change; the aggregate version of catalogue.tenant_changed.
          revision integer not null,
          create_time timestamptz not null,
          update_time timestamptz not null
        )`.execute(db);
      await sql`
        create table branches (
          tenant_id text not null references tenants (tenant_id),
          branch_id uuid not null,
          code text not null,
          name text not null,
          time_zone text not null,
          active boolean not null,
          revision integer not null,
          create_time timestamptz not null,
          update_time timestamptz not null,
          primary key (tenant_id, branch_id),
          constraint branches_code_unique unique (tenant_id, code)
        )`.execute(db);
      await sql`
        create table definitions (
          tenant_id text not null references tenants (tenant_id),
          definition_id uuid not null,
          code text not null,
          latest_version integer not null,
          -- Status of the latest version, the definition's status.
          status text not null check (status in ('DRAFT', 'ACTIVE', 'RETIRED')),
          -- Bumped on every published / retired event; their aggregate version.
          revision integer not null,
          create_time timestamptz not null,
          update_time timestamptz not null,
          primary key (tenant_id, definition_id),
          constraint definitions_code_unique unique (tenant_id, code)
        )`.execute(db);
      // Versions are immutable once ACTIVE: only status and its times change afterwards.
      await sql`
        create table definition_versions (
          tenant_id text not null,
          definition_id uuid not null,
          version integer not null check (version > 0),
          status text not null check (status in ('DRAFT', 'ACTIVE', 'RETIRED', 'SUPERSEDED')),
          -- punchcard.catalogue.v1.DefinitionTerms in protobuf JSON.
          terms jsonb not null,
          -- Copied out of terms for the list filters.
          all_branches boolean not null,
          branch_ids text[] not null,
          service_codes text[] not null,
          create_time timestamptz not null,
          publish_time timestamptz,
          retire_time timestamptz,
          primary key (tenant_id, definition_id, version),
          foreign key (tenant_id, definition_id) references definitions (tenant_id, definition_id)
        )`.execute(db);
      await sql`create index definition_versions_service_codes on definition_versions using gin (service_codes)`.execute(db);
      await sql`create index definition_versions_branch_ids on definition_versions using gin (branch_ids)`.execute(db);
      await sql`create index definitions_status on definitions (tenant_id, status, code)`.execute(db);
    },
  },
  '0004_outbox_seq_not_unique': outboxSeqNotUniqueMigration,
  '0005_outbox_deleted_on_publish': outboxDeletedOnPublishMigration,
  '0006_outbox_keyed_by_seq': outboxKeyedBySeqMigration,
};
