import type { IdempotencyTables } from '@punchcard/db';
import type { InboxTables, OutboxTables } from '@punchcard/bus';
import type { ColumnType, Generated } from 'kysely';
import type { EntryKind, Status, Terms } from '../domain/types.js';

/** The `entitlement_ledger` schema, as kysely sees it (see migrations.ts). */
export interface LedgerDb extends IdempotencyTables, OutboxTables, InboxTables {
  tenants: TenantsTable;
  branches: BranchesTable;
  definition_versions: DefinitionVersionsTable;
  entitlements: EntitlementsTable;
  entries: EntriesTable;
  visits: VisitsTable;
  households: HouseholdsTable;
  household_members: HouseholdMembersTable;
  refunds: RefundsTable;
}

type Timestamp = ColumnType<Date, Date, Date>;
type NullableTimestamp = ColumnType<Date | null, Date | null | undefined, Date | null>;
/** int8 columns read as bigint (createDb's parser), written as number or bigint. */
type Int8 = ColumnType<bigint, number | bigint, number | bigint>;

export interface TenantsTable {
  tenant_id: string;
  plan_tier: number;
  features: number[];
  default_currency: string;
  changed_at: Timestamp;
}

export interface BranchesTable {
  tenant_id: string;
  branch_id: string;
  time_zone: string;
  active: boolean;
  changed_at: Timestamp;
}

export interface DefinitionVersionsTable {
  tenant_id: string;
  definition_id: string;
  version: number;
  code: string;
  terms: Uint8Array;
  published_at: NullableTimestamp;
  retired: Generated<boolean>;
}

export interface EntitlementsTable {
  seq: ColumnType<bigint, never, never>;
  tenant_id: string;
  entitlement_id: string;
  member_id: string;
  definition_id: string;
  definition_version: number;
  terms: Uint8Array;
  rules: ColumnType<Terms, string, string>;
  time_zone: string;
  purchase_branch_id: string;
  status: Status;
  paid_sessions: number;
  bonus_sessions: number;
  paid_remaining: number;
  bonus_remaining: number;
  remaining: ColumnType<number, never, never>;
  price_currency: string;
  price_minor: Int8;
  payment_reference: string;
  purchase_time: Timestamp;
  activation_time: NullableTimestamp;
  expiry_time: NullableTimestamp;
  grace_end_time: NullableTimestamp;
  frozen_at: NullableTimestamp;
  frozen_until_time: NullableTimestamp;
  freeze_planned_days: number;
  frozen_days: number;
  last_use_time: NullableTimestamp;
  version: Int8;
  updated_at: Timestamp;
  household_id: ColumnType<string | null, string | null | undefined, string | null>;
  transfer_count: ColumnType<number, number | undefined, number>;
  origin_entitlement_id: ColumnType<string | null, string | null | undefined, string | null>;
  pending_refund_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface EntriesTable {
  seq: ColumnType<bigint, never, never>;
  tenant_id: string;
  entry_id: string;
  entitlement_id: string;
  kind: EntryKind;
  sessions_delta: number;
  paid_delta: number;
  bonus_delta: number;
  branch_id: string;
  actor_subject: string;
  actor_roles: string[];
  reason: string;
  occurred_time: Timestamp;
  record_time: Timestamp;
  request_id: string;
  balance_after: number;
  reverses_entry_id: string | null;
  in_grace: boolean;
  visit_id: string | null;
  service_code: string | null;
  member_id: string;
  entitlement_version: Int8;
  expiry_time: NullableTimestamp;
  counterpart_entitlement_id: ColumnType<string | null, string | null | undefined, never>;
  counterpart_entry_id: ColumnType<string | null, string | null | undefined, never>;
  amount_minor: ColumnType<bigint | null, bigint | null | undefined, never>;
  currency: ColumnType<string | null, string | null | undefined, never>;
  refund_id: ColumnType<string | null, string | null | undefined, never>;
  detail: ColumnType<Uint8Array | null, Uint8Array | null | undefined, never>;
}

export type HouseholdKind = 'FAMILY' | 'HOUSEHOLD' | 'MEMBER_GROUP';

export interface HouseholdsTable {
  seq: ColumnType<bigint, never, never>;
  tenant_id: string;
  household_id: string;
  name: string;
  kind: HouseholdKind;
  owner_member_id: string;
  version: Int8;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface HouseholdMembersTable {
  tenant_id: string;
  household_id: string;
  member_id: string;
  added_at: Timestamp;
}

export type RefundState = 'REQUESTED' | 'APPROVED' | 'REJECTED' | 'COMPLETED' | 'PAYOUT_FAILED';

export interface RefundsTable {
  seq: ColumnType<bigint, never, never>;
  tenant_id: string;
  refund_id: string;
  entitlement_id: string;
  member_id: string;
  state: RefundState;
  quote: Uint8Array;
  currency: string;
  amount_minor: Int8;
  reason: string;
  requested_by_subject: string;
  requested_by_roles: string[];
  request_time: Timestamp;
  decided_by_subject: string | null;
  decided_by_roles: string[] | null;
  decision_note: ColumnType<string, string | undefined, string>;
  decide_time: NullableTimestamp;
  settle_time: NullableTimestamp;
  provider_reference: ColumnType<string, string | undefined, string>;
  failure_reason: ColumnType<string, string | undefined, string>;
  refund_entry_id: string | null;
  version: Int8;
}

export type VisitState = 'CONSUMED' | 'REJECTED' | 'ONE_OFF' | 'CANCELLED' | 'REVERSED';

export interface VisitsTable {
  tenant_id: string;
  visit_id: string;
  state: VisitState;
  source: 'event' | 'api';
  member_id: string;
  service_code: string;
  branch_id: string;
  occurred_time: NullableTimestamp;
  entitlement_id: string | null;
  entry_id: string | null;
  reversal_entry_id: string | null;
  reason: string;
  error_code: string;
  created_at: Timestamp;
  updated_at: Timestamp;
}
