import { addDays, endOfLocalDay, lastDayBefore } from './calendar.js';
import { CLOSED, type EntitlementState } from './entitlement.js';
import { effectiveExpiry, graceEnd } from './expiry.js';
import { reminderOffsets } from './policy.js';

export type TimerKind = 'REMINDER' | 'ENTER_GRACE' | 'EXPIRE' | 'UNFREEZE';
export type TimerState = 'PENDING' | 'FIRED' | 'CANCELLED' | 'FAILED';

/** Among timers due at the same instant: reminders, then unfreeze, then grace, then expiry. */
export const KIND_RANK: Readonly<Record<TimerKind, number>> = { REMINDER: 0, UNFREEZE: 1, ENTER_GRACE: 2, EXPIRE: 3 };

export interface PlannedTimer {
  readonly kind: TimerKind;
  readonly dueTime: Date;
  /** Reminders: days before expiry; 0 otherwise. */
  readonly offsetDays: number;
  /** The expiry this timer was planned from (what a reminder announces, what EnterGrace acts on). */
  readonly expiryTime?: Date;
  readonly graceEndTime?: Date;
}

export interface Schedule {
  readonly expiryTime?: Date;
  readonly graceEndTime?: Date;
  /** In firing order. */
  readonly timers: readonly PlannedTimer[];
}

/**
 * What should happen to an entitlement and when, given its state:
 * ACTIVE / FROZEN: reminders before expiry; HARD expires at expiry; SOFT enters grace at expiry and
 * expires at the grace end; a freeze with an end also unfreezes then. IN_GRACE: expires at the grace
 * end. Closed entitlements (expired, exhausted, refunded, transferred, upgraded): nothing.
 */
export function planSchedule(s: EntitlementState): Schedule {
  if (CLOSED.has(s.status)) return { timers: [] };
  const expiryTime = effectiveExpiry(s);
  const graceEndTime = graceEnd(s, expiryTime);
  const timers: PlannedTimer[] = [];
  if (s.status === 'FROZEN' && s.freeze?.until) {
    timers.push({ kind: 'UNFREEZE', dueTime: s.freeze.until, offsetDays: 0 });
  }
  if (expiryTime && s.status !== 'IN_GRACE') {
    const lastDay = lastDayBefore(expiryTime, s.timeZone);
    for (const offset of reminderOffsets(s.policy)) {
      // The local midnight `offset` days before the expiry midnight.
      const dueTime = endOfLocalDay(addDays(lastDay, -offset), s.timeZone);
      timers.push({ kind: 'REMINDER', dueTime, offsetDays: offset, expiryTime, graceEndTime });
    }
    if (graceEndTime) {
      timers.push({ kind: 'ENTER_GRACE', dueTime: expiryTime, offsetDays: 0, expiryTime, graceEndTime });
      timers.push({ kind: 'EXPIRE', dueTime: graceEndTime, offsetDays: 0, expiryTime, graceEndTime });
    } else {
      timers.push({ kind: 'EXPIRE', dueTime: expiryTime, offsetDays: 0, expiryTime });
    }
  }
  if (s.status === 'IN_GRACE') {
    const end = graceEndTime ?? s.ledgerGraceEndTime ?? expiryTime;
    if (end) timers.push({ kind: 'EXPIRE', dueTime: end, offsetDays: 0, expiryTime, graceEndTime: end });
  }
  return { expiryTime, graceEndTime, timers: timers.sort(firingOrder) };
}

/** A timer's place in due order: the key of the due index (due time, the kind's rank, timer id). */
export interface DueCursor {
  dueTime: Date;
  rank: number;
  timerId: string;
}

/** Orders as Postgres orders the due index (a uuid compares as its lowercase hex). */
export function compareDue(a: DueCursor, b: DueCursor): number {
  return a.dueTime.getTime() - b.dueTime.getTime() || a.rank - b.rank || (a.timerId < b.timerId ? -1 : a.timerId > b.timerId ? 1 : 0);
}

/** The later of two places in due order; `undefined` is before every place. */
export function laterDue(a: DueCursor | undefined, b: DueCursor): DueCursor {
  return a !== undefined && compareDue(a, b) >= 0 ? a : b;
}

export function firingOrder(a: Pick<PlannedTimer, 'kind' | 'dueTime'>, b: Pick<PlannedTimer, 'kind' | 'dueTime'>): number {
  return a.dueTime.getTime() - b.dueTime.getTime() || KIND_RANK[a.kind] - KIND_RANK[b.kind];
}

export interface ExistingTimer {
  readonly timerId: string;
  readonly kind: TimerKind;
  readonly state: TimerState;
  readonly dueTime: Date;
  readonly offsetDays: number;
}

export interface Reconciliation {
  /** Pending timers no longer planned. */
  readonly cancel: readonly string[];
  /** Planned timers not yet stored. */
  readonly create: readonly PlannedTimer[];
}

function identity(t: Pick<PlannedTimer, 'kind' | 'dueTime' | 'offsetDays'>): string {
  return `${t.kind}|${t.dueTime.getTime()}|${t.offsetDays}`;
}

/**
 * Turns a new plan into changes: a planned timer that already exists (pending, fired or failed) is
 * kept as it is, so nothing fires twice and a timer keeps its id (and so its idempotency key);
 * pending timers that left the plan are cancelled. A reminder already past at `now` is not created:
 * announcing "14 days left" when fewer remain would mislead. `firedBy`: the timer whose own ledger
 * call made the change being applied stays pending even if it left the plan, so a sweep records it
 * fired and announces it (its call repeated answers the same), also when the sweep that made the call
 * died before recording it.
 */
export function reconcile(existing: readonly ExistingTimer[], planned: readonly PlannedTimer[], now: Date, firedBy?: string): Reconciliation {
  const live = new Map(existing.filter((t) => t.state !== 'CANCELLED').map((t) => [identity(t), t]));
  const wanted = new Set(planned.map(identity));
  const cancel = existing.filter((t) => t.state === 'PENDING' && !wanted.has(identity(t)) && t.timerId !== firedBy).map((t) => t.timerId);
  const create = planned.filter((t) => !live.has(identity(t)) && !(t.kind === 'REMINDER' && t.dueTime <= now));
  return { cancel, create };
}
