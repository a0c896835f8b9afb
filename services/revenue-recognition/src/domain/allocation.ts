import { allocate } from '@punchcard/money';
import { RevenueRuleError } from './errors.js';
import type { SessionOrder } from './types.js';

export interface SessionSpec {
  bonus: boolean;
  /** List price of the session sold alone; weights the allocation when sessions differ. */
  standalone: bigint;
}

/**
 * The bonus flag of each session in consumption order: paid first (the default) or bonus first, as
 * the definition's session order says the ledger consumes them.
 */
export function sessionKinds(paid: number, bonus: number, order: SessionOrder): boolean[] {
  if (!Number.isInteger(paid) || paid < 0) throw new RevenueRuleError('paid_sessions', `must be a non-negative integer, got ${paid}`);
  if (!Number.isInteger(bonus) || bonus < 0) throw new RevenueRuleError('bonus_sessions', `must be a non-negative integer, got ${bonus}`);
  const paidFlags = Array.from({ length: paid }, () => false);
  const bonusFlags = Array.from({ length: bonus }, () => true);
  return order === 'BONUS_FIRST' ? [...bonusFlags, ...paidFlags] : [...paidFlags, ...bonusFlags];
}

/**
 * Allocates `amount` over sessions, bonus included (a free session is a material right, not a gift):
 * in proportion to their standalone prices when every session has one and they differ, else equally.
 * Largest remainder, so the parts sum to `amount` exactly and a leftover minor unit goes to the
 * earliest session: 100.00 over 3 -> 33.34, 33.33, 33.33.
 */
export function allocateSessions(amount: bigint, sessions: readonly SessionSpec[]): bigint[] {
  if (amount < 0n) throw new RevenueRuleError('price', `must not be negative, got ${amount}`);
  if (sessions.length === 0) {
    if (amount === 0n) return [];
    throw new RevenueRuleError('paid_sessions', 'a priced package needs at least one session to allocate its price over');
  }
  const weighted = sessions.every((s) => s.standalone > 0n);
  return allocate(amount, weighted ? sessions.map((s) => s.standalone) : sessions.length);
}
