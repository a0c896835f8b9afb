import { invalid, precondition } from './errors.js';
import { finalEnd } from './expiry.js';
import { assertNotHeld, assertOpen } from './lifecycle.js';
import type { Policies } from './policies.js';
import { addLocalDays } from './time.js';
import { remaining, type Entitlement, type Transition } from './types.js';

export const MAX_TOP_UP_SESSIONS = 1000;

export interface TopUpInput {
  sessions: number;
  branchId: string;
  paymentReference: string;
  reason: string;
  now: Date;
}

/**
 * Adds paid sessions at the definition's top-up price: a contract line of its own (revenue allocates
 * the amount over exactly these sessions). The policy may push the expiry out; a package in grace
 * whose expiry moves ahead, or an exhausted one, becomes usable again.
 */
export function topUp(e: Entitlement, p: Policies, input: TopUpInput): Transition {
  if (!Number.isInteger(input.sessions) || input.sessions < 1 || input.sessions > MAX_TOP_UP_SESSIONS) {
    throw invalid('sessions', `must be between 1 and ${MAX_TOP_UP_SESSIONS}`);
  }
  assertOpen(e, 'top up');
  assertNotHeld(e, 'top up');
  if (!p.topUp.enabled) throw precondition(`definition ${e.definitionId} does not allow top-ups`);
  if (p.topUp.pricePerSession <= 0n) throw precondition(`definition ${e.definitionId} has no top-up price per session in ${p.currency}`);
  const days = p.topUp.extendExpiryDays;
  const expiryTime = days > 0 && e.expiryTime !== null ? addLocalDays(e.expiryTime, days, e.timeZone) : e.expiryTime;
  const extended: Entitlement = { ...e, expiryTime, graceEndTime: expiryTime !== e.expiryTime ? null : e.graceEndTime };
  const end = finalEnd(extended);
  if (!e.terms.expiry.customRule && end !== null && input.now >= end) {
    throw precondition(`entitlement ${e.entitlementId} expired at ${end.toISOString()}; extend it before topping up`);
  }
  let status = e.status;
  let graceEndTime = e.graceEndTime;
  if (status === 'IN_GRACE' && expiryTime !== null && expiryTime > input.now) {
    status = 'ACTIVE';
    graceEndTime = null;
  }
  if (status === 'EXHAUSTED') status = graceEndTime !== null ? 'IN_GRACE' : 'ACTIVE';
  const amountPaid = p.topUp.pricePerSession * BigInt(input.sessions);
  const next: Entitlement = {
    ...e,
    status,
    graceEndTime,
    expiryTime,
    paidSessions: e.paidSessions + input.sessions,
    paidRemaining: e.paidRemaining + input.sessions,
    version: e.version + 1,
  };
  return {
    next,
    entry: {
      kind: 'TOP_UP',
      sessionsDelta: input.sessions,
      paidDelta: input.sessions,
      bonusDelta: 0,
      branchId: input.branchId,
      reason: input.reason,
      occurredTime: input.now,
      balanceAfter: remaining(next),
      entitlementVersion: next.version,
      inGrace: false,
      expiryTime,
      memberId: e.memberId,
      amountMinor: amountPaid,
      detail: {
        kind: 'top_up',
        sessions: input.sessions,
        pricePerSession: p.topUp.pricePerSession,
        amountPaid,
        extendExpiryDays: expiryTime !== e.expiryTime ? days : 0,
        paymentReference: input.paymentReference,
      },
    },
  };
}
