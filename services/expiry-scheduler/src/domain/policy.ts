/**
 * The expiry terms of a package definition version, in the scheduler's own vocabulary (the events
 * layer maps the protobuf `ExpiryPolicy` snapshotted on each entitlement to these).
 */

export type ExpiryAnchor = 'NONE' | 'PURCHASE' | 'FIRST_USE' | 'FIXED_DATE';
export type ExpiryMode = 'HARD' | 'SOFT';

/** A custom rule: data, combined with whichever-later / whichever-earlier. */
export type ExpiryRule =
  | { readonly kind: 'daysAfterPurchase'; readonly days: number }
  | { readonly kind: 'monthsAfterPurchase'; readonly months: number }
  | { readonly kind: 'daysAfterFirstUse'; readonly days: number }
  | { readonly kind: 'daysAfterLastUse'; readonly days: number }
  /** YYYY-MM-DD in the purchase branch's zone. */
  | { readonly kind: 'fixedDate'; readonly date: string }
  | { readonly kind: 'whicheverLater'; readonly rules: readonly ExpiryRule[] }
  | { readonly kind: 'whicheverEarlier'; readonly rules: readonly ExpiryRule[] };

export interface ExpiryPolicy {
  readonly anchor: ExpiryAnchor;
  readonly durationDays: number;
  readonly durationMonths: number;
  readonly fixedDate: string;
  readonly mode: ExpiryMode;
  /** SOFT: days of grace after expiry. */
  readonly graceDays: number;
  /** Each use pushes expiry to this many days after the use (never earlier). */
  readonly rollingExtensionDays: number;
  /** Total days an entitlement may be frozen; 0 = no freezing. */
  readonly maxFreezeDays: number;
  readonly freezeExtendsExpiry: boolean;
  /** When set, decides the expiry instead of anchor + duration. */
  readonly customRule?: ExpiryRule;
  /** Days before expiry at which a reminder is published; empty = {@link DEFAULT_REMINDER_OFFSETS}. */
  readonly reminderOffsetsDays: readonly number[];
}

export const DEFAULT_REMINDER_OFFSETS: readonly number[] = [14, 3];

/** A policy under which nothing ever expires (no anchor and no custom rule). */
export const NEVER_EXPIRES: ExpiryPolicy = {
  anchor: 'NONE',
  durationDays: 0,
  durationMonths: 0,
  fixedDate: '',
  mode: 'HARD',
  graceDays: 0,
  rollingExtensionDays: 0,
  maxFreezeDays: 0,
  freezeExtendsExpiry: false,
  reminderOffsetsDays: [],
};

/** The reminder offsets in force: distinct, positive, largest first. */
export function reminderOffsets(policy: ExpiryPolicy): number[] {
  const given = policy.reminderOffsetsDays.length > 0 ? policy.reminderOffsetsDays : DEFAULT_REMINDER_OFFSETS;
  return [...new Set(given.filter((d) => Number.isInteger(d) && d > 0))].sort((a, b) => b - a);
}
