import type { InboxTables, OutboxTables } from '@punchcard/bus';
import type { IdempotencyTables } from '@punchcard/db';
import type { ColumnType } from 'kysely';
import type { EntitlementStatus } from '../domain/entitlement.js';
import type { ExpiryPolicy } from '../domain/policy.js';
import type { TimerKind, TimerState } from '../domain/schedule.js';

export const SCHEMA = 'expiry_scheduler';

type Timestamp = ColumnType<Date, Date, Date>;
type NullableTimestamp = ColumnType<Date | null, Date | null | undefined, Date | null>;
/** int8: createDb parses it to bigint. */
type Int8 = ColumnType<bigint, number | bigint, number | bigint>;

export interface EntitlementsTable {
  tenant_id: string;
  entitlement_id: string;
  member_id: string;
  version: Int8;
  status: EntitlementStatus;
  remaining: number;
  policy: ColumnType<ExpiryPolicy, string, string>;
  time_zone: string;
  purchase_time: Timestamp;
  first_use_time: NullableTimestamp;
  last_use_time: NullableTimestamp;
  frozen_days: number;
  freeze_from: NullableTimestamp;
  freeze_until: NullableTimestamp;
  ledger_expiry_time: NullableTimestamp;
  ledger_grace_end_time: NullableTimestamp;
  expiry_time: NullableTimestamp;
  grace_end_time: NullableTimestamp;
  update_time: Timestamp;
}

export interface TimersTable {
  timer_id: string;
  tenant_id: string;
  entitlement_id: string;
  kind: TimerKind;
  state: TimerState;
  due_time: Timestamp;
  rank: number;
  offset_days: number;
  expiry_time: NullableTimestamp;
  grace_end_time: NullableTimestamp;
  next_attempt_time: Timestamp;
  attempts: ColumnType<number, number | undefined, number>;
  last_error: ColumnType<string | null, string | null | undefined, string | null>;
  no_op: ColumnType<boolean, boolean | undefined, boolean>;
  fired_time: NullableTimestamp;
  create_time: Timestamp;
  update_time: Timestamp;
}

export interface ExpiryDb extends IdempotencyTables, OutboxTables, InboxTables {
  entitlements: EntitlementsTable;
  timers: TimersTable;
}
