import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { EnqueueInput } from '@punchcard/bus';
import { ExpiryFiredSchema, ReminderDueSchema } from '@punchcard/contracts/punchcard/events/v1/expiry_events_pb';

export const PRODUCER = 'expiry';

/** What a fired timer announces; the event id is the timer id, so consumers can tie it to the timer. */
export interface FiredTimer {
  timerId: string;
  tenantId: string;
  entitlementId: string;
  dueTime: Date;
  expiryTime?: Date;
}

/** `expiry.reminder_due`: the entitlement expires in `offsetDays` (for notification systems). */
export function reminderDue(t: FiredTimer & { memberId: string; offsetDays: number; remaining: number }, now: Date): EnqueueInput<typeof ReminderDueSchema> {
  return {
    producer: PRODUCER,
    event: 'reminder_due',
    id: t.timerId,
    tenantId: t.tenantId,
    aggregateId: t.entitlementId,
    schema: ReminderDueSchema,
    message: {
      tenantId: t.tenantId,
      entitlementId: t.entitlementId,
      memberId: t.memberId,
      ...(t.expiryTime ? { expiryTime: timestampFromDate(t.expiryTime) } : {}),
      offsetDays: t.offsetDays,
      remaining: t.remaining,
    },
    time: now,
  };
}

/** `expiry.grace_started` / `expiry.expired`: mirror a ledger call that changed the entitlement. */
export function expiryFired(event: 'grace_started' | 'expired', t: FiredTimer, now: Date): EnqueueInput<typeof ExpiryFiredSchema> {
  return {
    producer: PRODUCER,
    event,
    id: t.timerId,
    tenantId: t.tenantId,
    aggregateId: t.entitlementId,
    schema: ExpiryFiredSchema,
    message: {
      tenantId: t.tenantId,
      entitlementId: t.entitlementId,
      dueTime: timestampFromDate(t.dueTime),
      firedTime: timestampFromDate(now),
    },
    time: now,
  };
}
