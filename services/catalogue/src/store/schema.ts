import type { OutboxTables } from '@punchcard/bus';
import type { IdempotencyTables } from '@punchcard/db';
import type { ColumnType, JSONColumnType } from 'kysely';

type Time = ColumnType<Date, Date, Date>;

export interface TenantsTable {
  tenant_id: string;
  name: string;
  plan_tier: string;
  default_currency: string;
  earning_rule: string;
  revision: number;
  create_time: Time;
  update_time: Time;
}

export interface BranchesTable {
  tenant_id: string;
  branch_id: string;
  code: string;
  name: string;
  time_zone: string;
  active: boolean;
  revision: number;
  create_time: Time;
  update_time: Time;
}

export interface DefinitionsTable {
  tenant_id: string;
  definition_id: string;
  code: string;
  latest_version: number;
  status: string;
  revision: number;
  create_time: Time;
  update_time: Time;
}

export interface DefinitionVersionsTable {
  tenant_id: string;
  definition_id: string;
  version: number;
  status: string;
  terms: JSONColumnType<object, string, string>;
  all_branches: boolean;
  branch_ids: string[];
  service_codes: string[];
  create_time: Time;
  publish_time: ColumnType<Date | null, Date | null | undefined, Date | null>;
  retire_time: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export interface CatalogueTables extends IdempotencyTables, OutboxTables {
  tenants: TenantsTable;
  branches: BranchesTable;
  definitions: DefinitionsTable;
  definition_versions: DefinitionVersionsTable;
}
