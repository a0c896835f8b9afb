import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { TimerKind, TimerSchema, TimerState, type Timer } from '@punchcard/contracts/punchcard/expiry/v1/expiry_pb';
import type { TimerRow } from '../store/store.js';

const KINDS: Record<TimerRow['kind'], TimerKind> = {
  REMINDER: TimerKind.REMINDER,
  ENTER_GRACE: TimerKind.ENTER_GRACE,
  EXPIRE: TimerKind.EXPIRE,
  UNFREEZE: TimerKind.UNFREEZE,
};

const STATES: Record<TimerRow['state'], TimerState> = {
  PENDING: TimerState.PENDING,
  FIRED: TimerState.FIRED,
  CANCELLED: TimerState.CANCELLED,
  FAILED: TimerState.FAILED,
};

export function timerToProto(t: TimerRow): Timer {
  return create(TimerSchema, {
    timerId: t.timer_id,
    tenantId: t.tenant_id,
    entitlementId: t.entitlement_id,
    kind: KINDS[t.kind],
    state: STATES[t.state],
    dueTime: timestampFromDate(t.due_time),
    ...(t.fired_time ? { firedTime: timestampFromDate(t.fired_time) } : {}),
    offsetDays: t.offset_days,
    attempts: t.attempts,
    lastError: t.last_error ?? '',
    noOp: t.no_op,
    ...(t.expiry_time ? { expiryTime: timestampFromDate(t.expiry_time) } : {}),
  });
}

/** ListDue page tokens: the last timer's sort key, opaque to clients. */
export interface PageCursor {
  dueTime: Date;
  rank: number;
  timerId: string;
}

export function encodePageToken(c: PageCursor): string {
  return Buffer.from(JSON.stringify({ d: c.dueTime.toISOString(), r: c.rank, i: c.timerId })).toString('base64url');
}

/** Undefined when the token was not made by {@link encodePageToken}. */
export function decodePageToken(token: string): PageCursor | undefined {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { d?: unknown; r?: unknown; i?: unknown };
    if (typeof v.d !== 'string' || typeof v.r !== 'number' || typeof v.i !== 'string') return undefined;
    const dueTime = new Date(v.d);
    if (Number.isNaN(dueTime.getTime()) || !/^[0-9a-f-]{36}$/.test(v.i)) return undefined;
    return { dueTime, rank: v.r, timerId: v.i };
  } catch {
    return undefined;
  }
}
