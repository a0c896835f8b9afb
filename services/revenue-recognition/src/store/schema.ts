import type { InboxTables, OutboxTables } from '@punchcard/bus';
import type { ColumnType, Generated } from 'kysely';

/** int8 columns read back as bigint (see @punchcard/db) and accept bigint or number on write. */
type Int8 = ColumnType<bigint, bigint | number, bigint | number>;
/** date columns read back as 'YYYY-MM-DD'. */
type DateText = ColumnType<string, string, string>;
type Json<T> = ColumnType<T, string, string>;

export interface TenantTable {
  tenant_id: string;
  currency: string;
  earning_rule: string;
  updated_at: Date;
}

export interface BranchTable {
  tenant_id: string;
  branch_id: string;
  time_zone: string;
  updated_at: Date;
}

export interface DefinitionTable {
  tenant_id: string;
  definition_id: string;
  version: number;
  code: string;
  name: string;
  terms: Uint8Array;
}

export interface EntitlementProgressTable {
  tenant_id: string;
  entitlement_id: string;
  applied_version: Int8;
}

/** bigint amounts inside JSON are decimal strings. */
export interface SessionJson {
  number: number;
  bonus: boolean;
  value: string;
  line: number;
  removed: boolean;
  consumedBy: { entryId: string; earningBranchId: string; deliveringBranchId: string; deliveryCost: string } | null;
}

export interface LineJson {
  line: number;
  kind: string;
  sourceId: string;
  amount: string;
  sessions: number;
}

export interface CostsJson {
  perSession: string;
  byBranch: Record<string, string>;
}

export interface ContractTable {
  tenant_id: string;
  entitlement_id: string;
  definition_id: string;
  definition_version: number;
  member_id: string;
  currency: string;
  liability_branch_id: string;
  breakage_bps: number;
  session_order: string;
  standalone_price_minor: Int8;
  costs: Json<CostsJson>;
  status: string;
  lines: Json<LineJson[]>;
  sessions: Json<SessionJson[]>;
  package_recognised_minor: Int8;
  breakage_recognised_minor: Int8;
  updated_at: Date;
}

export interface JournalEntryTable {
  journal_entry_id: string;
  seq: Generated<bigint>;
  tenant_id: string;
  cause: string;
  source_id: string;
  entitlement_id: string;
  definition_id: string;
  currency: string;
  accounting_date: DateText;
  posted_at: Date;
  description: string;
}

export interface JournalLineTable {
  journal_entry_id: string;
  line_no: number;
  tenant_id: string;
  accounting_date: DateText;
  definition_id: string;
  currency: string;
  entitlement_id: string;
  account: string;
  branch_id: string;
  counterparty_branch_id: string;
  debit_minor: Int8;
  credit_minor: Int8;
  movement: string | null;
  sessions: number;
  delivery_cost_minor: Int8;
}

/** Deferred revenue (credit − debit) per day and movement, kept by a trigger on journal_line. */
export interface DeferredRevenueDayTable {
  tenant_id: string;
  currency: string;
  accounting_date: DateText;
  branch_id: string;
  definition_id: string;
  movement: string;
  net_credit_minor: Int8;
}

/** The same per calendar month (`month` is its first day), all movements together. */
export interface DeferredRevenueMonthTable {
  tenant_id: string;
  currency: string;
  branch_id: string;
  definition_id: string;
  month: DateText;
  net_credit_minor: Int8;
}

export interface RevenueDb extends OutboxTables, InboxTables {
  tenant: TenantTable;
  branch: BranchTable;
  definition: DefinitionTable;
  entitlement_progress: EntitlementProgressTable;
  contract: ContractTable;
  journal_entry: JournalEntryTable;
  journal_line: JournalLineTable;
  deferred_revenue_day: DeferredRevenueDayTable;
  deferred_revenue_month: DeferredRevenueMonthTable;
}

/** The service's schema name in production. */
export const SCHEMA = 'revenue_recognition';
