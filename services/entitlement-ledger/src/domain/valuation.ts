import { allocate } from '@punchcard/money';
import type { EntryDetail, EntryKind, SessionValue } from './types.js';

/**
 * What each session of an entitlement is worth, by the rule revenue-recognition books with, so the
 * ledger's credits and refunds agree with the deferred revenue to the cent:
 * - a contract line (the purchase, each top-up, an upgrade's new package) allocates its amount over
 *   its sessions, bonus included, by largest remainder (weighted by the standalone price when there
 *   is one; all sessions share it, so the split is even), numbered in consumption order after the
 *   sessions already there (paid first unless the definition says bonus first);
 * - a consume takes the lowest-numbered unused session of the kind it consumed (paid or bonus); its
 *   reversal frees exactly that session again;
 * - a transfer moves the highest-numbered unused sessions of each kind, with their values; an
 *   upgrade or refund takes every unused session.
 */
export interface Slot {
  /** 1-based, in consumption order. */
  number: number;
  bonus: boolean;
  value: bigint;
  /** Left the entitlement (transferred, upgraded or refunded away). */
  removed: boolean;
  /** The CONSUME entry that used it. */
  consumedBy: string | null;
}

export interface BookBasis {
  /** The entitlement's price: the amount of its PURCHASE line. */
  priceMinor: bigint;
  /** Standalone price per session in the entitlement's currency; 0 = none. */
  standalone: bigint;
  sessionOrder: 'PAID_FIRST' | 'BONUS_FIRST';
}

/** An entry as the valuation reads it. */
export interface BookEntry {
  entryId: string;
  kind: EntryKind;
  paidDelta: number;
  bonusDelta: number;
  reversesEntryId?: string | undefined;
  amountMinor?: bigint | undefined;
  detail?: EntryDetail | undefined;
}

/** The bonus flag of each session of a line, in consumption order. */
export function sessionKinds(paid: number, bonus: number, order: BookBasis['sessionOrder']): boolean[] {
  const paidFlags = Array.from({ length: paid }, () => false);
  const bonusFlags = Array.from({ length: bonus }, () => true);
  return order === 'BONUS_FIRST' ? [...bonusFlags, ...paidFlags] : [...paidFlags, ...bonusFlags];
}

/** Allocates a line's amount over its sessions (largest remainder; a leftover minor unit goes to the earliest). */
export function allocateLine(amount: bigint, count: number, standalone: bigint): bigint[] {
  if (count === 0) {
    if (amount === 0n) return [];
    throw new Error(`cannot allocate ${amount} over no sessions`);
  }
  return allocate(amount, standalone > 0n ? Array.from({ length: count }, () => standalone) : count);
}

function addLine(slots: Slot[], basis: BookBasis, amount: bigint, paid: number, bonus: number): Slot[] {
  const kinds = sessionKinds(paid, bonus, basis.sessionOrder);
  const values = allocateLine(amount, kinds.length, basis.standalone);
  const first = slots.length + 1;
  return [...slots, ...kinds.map((b, i) => ({ number: first + i, bonus: b, value: values[i]!, removed: false, consumedBy: null }))];
}

export function openSlots(slots: readonly Slot[]): Slot[] {
  return slots.filter((s) => !s.removed && s.consumedBy === null);
}

/** Value of the sessions still in the entitlement, used or not. */
export function contractValue(slots: readonly Slot[]): bigint {
  return slots.reduce((sum, s) => (s.removed ? sum : sum + s.value), 0n);
}

export function valueOf(sessions: readonly SessionValue[]): bigint {
  return sessions.reduce((sum, s) => sum + s.value, 0n);
}

export function usedCount(slots: readonly Slot[]): number {
  return slots.filter((s) => !s.removed && s.consumedBy !== null).length;
}

/** The highest-numbered unused sessions of each kind, as a transfer moves them; returned in number order. */
export function highestOpen(slots: readonly Slot[], paid: number, bonus: number): Slot[] {
  const open = [...openSlots(slots)].reverse();
  const paidSlots = open.filter((s) => !s.bonus).slice(0, paid);
  const bonusSlots = open.filter((s) => s.bonus).slice(0, bonus);
  if (paidSlots.length < paid || bonusSlots.length < bonus) {
    throw new Error(`fewer than ${paid} paid and ${bonus} bonus unused sessions to move`);
  }
  const taken = new Set([...paidSlots, ...bonusSlots].map((s) => s.number));
  return slots.filter((s) => taken.has(s.number));
}

function remove(slots: Slot[], which: (s: Slot) => boolean): Slot[] {
  return slots.map((s) => (which(s) ? { ...s, removed: true } : s));
}

/**
 * Replays an entitlement's entries (in version order) into its sessions and their values. Throws
 * when the entries contradict each other, which the ledger's own writes never do.
 */
export function replay(basis: BookBasis, entries: readonly BookEntry[]): Slot[] {
  let slots: Slot[] = [];
  for (const x of entries) {
    switch (x.kind) {
      case 'PURCHASE':
        slots = addLine(slots, basis, basis.priceMinor, x.paidDelta, x.bonusDelta);
        break;
      case 'TOP_UP':
        slots = addLine(slots, basis, x.amountMinor ?? 0n, x.paidDelta, x.bonusDelta);
        break;
      case 'UPGRADE_IN': {
        if (x.detail?.kind !== 'upgrade') throw new Error(`UPGRADE_IN entry ${x.entryId} has no upgrade detail`);
        // Revenue allocates the credit plus the cash paid over the new sessions: the new price.
        slots = addLine(slots, basis, x.detail.quote.credit + x.detail.quote.amountDue, x.paidDelta, x.bonusDelta);
        break;
      }
      case 'TRANSFER_IN': {
        if (x.detail?.kind !== 'transfer') throw new Error(`TRANSFER_IN entry ${x.entryId} has no transfer detail`);
        const first = slots.length + 1;
        slots = [...slots, ...x.detail.sessions.map((s, i) => ({ number: first + i, bonus: s.bonus, value: s.value, removed: false, consumedBy: null }))];
        break;
      }
      case 'CONSUME': {
        const bonus = x.bonusDelta < 0 ? true : x.paidDelta < 0 ? false : null;
        const slot = openSlots(slots).find((s) => bonus === null || s.bonus === bonus);
        if (!slot) throw new Error(`consume ${x.entryId} has no unused session to take`);
        slots = slots.map((s) => (s.number === slot.number ? { ...s, consumedBy: x.entryId } : s));
        break;
      }
      case 'REVERSAL': {
        if (!slots.some((s) => s.consumedBy === x.reversesEntryId)) throw new Error(`reversal ${x.entryId} names no consumed session`);
        slots = slots.map((s) => (s.consumedBy === x.reversesEntryId ? { ...s, consumedBy: null } : s));
        break;
      }
      case 'TRANSFER_OUT': {
        const moved = new Set(highestOpen(slots, -x.paidDelta, -x.bonusDelta).map((s) => s.number));
        slots = remove(slots, (s) => moved.has(s.number));
        break;
      }
      case 'UPGRADE_OUT':
      case 'REFUND':
        slots = remove(slots, (s) => !s.removed && s.consumedBy === null);
        break;
      case 'EXPIRE':
      case 'EXTEND':
      case 'FREEZE':
      case 'UNFREEZE':
      case 'GRACE':
        break;
    }
  }
  return slots;
}

export function sessionValues(slots: readonly Slot[]): SessionValue[] {
  return slots.map((s) => ({ bonus: s.bonus, value: s.value }));
}
