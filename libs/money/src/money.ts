import { allocate, prorate, type Rounding } from './allocate.js';
import { minorUnits } from './currency.js';

/** An exact amount: integer minor units (cents) of one ISO 4217 currency. */
export interface Money {
  readonly currencyCode: string;
  readonly amountMinor: bigint;
}

export class CurrencyMismatch extends Error {
  override readonly name = 'CurrencyMismatch';
  readonly field = 'currency_code';
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`currency_code ${actual} does not match ${expected}; amounts in different currencies cannot be combined`);
  }
}

export class InvalidAmount extends Error {
  override readonly name = 'InvalidAmount';
}

/** Builds Money, checking the currency code is known. */
export function money(currencyCode: string, amountMinor: bigint): Money {
  minorUnits(currencyCode);
  return { currencyCode, amountMinor };
}

export function zero(currencyCode: string): Money {
  return money(currencyCode, 0n);
}

const DECIMAL = /^(-)?(\d+)(?:\.(\d+))?$/;

/**
 * Parses a plain decimal string ("12.5", "-0.05", "300") in `currencyCode`'s minor units, exactly.
 * More fraction digits than the currency has is an error, never a rounding.
 */
export function parseAmount(currencyCode: string, text: string): bigint {
  const units = minorUnits(currencyCode);
  const match = DECIMAL.exec(text);
  if (!match) throw new InvalidAmount(`amount ${JSON.stringify(text)} is not a decimal number like 12.34`);
  const [, sign, whole = '', fraction = ''] = match;
  if (fraction.length > units) {
    throw new InvalidAmount(`amount ${JSON.stringify(text)} has more than ${units} decimal places for ${currencyCode}`);
  }
  const magnitude = BigInt(whole + fraction.padEnd(units, '0'));
  return sign ? -magnitude : magnitude;
}

export function parseMoney(currencyCode: string, text: string): Money {
  return { currencyCode, amountMinor: parseAmount(currencyCode, text) };
}

/** "12.34", "-0.05", "300" (JPY): all of the currency's decimal places, no symbol or grouping. */
export function formatAmount(currencyCode: string, amountMinor: bigint): string {
  const units = minorUnits(currencyCode);
  const negative = amountMinor < 0n;
  const digits = (negative ? -amountMinor : amountMinor).toString().padStart(units + 1, '0');
  const whole = digits.slice(0, digits.length - units);
  const fraction = units > 0 ? `.${digits.slice(digits.length - units)}` : '';
  return `${negative ? '-' : ''}${whole}${fraction}`;
}

export function formatMoney(m: Money): string {
  return formatAmount(m.currencyCode, m.amountMinor);
}

function sameCurrency(a: Money, b: Money): void {
  if (a.currencyCode !== b.currencyCode) throw new CurrencyMismatch(a.currencyCode, b.currencyCode);
}

export function add(a: Money, b: Money): Money {
  sameCurrency(a, b);
  return { currencyCode: a.currencyCode, amountMinor: a.amountMinor + b.amountMinor };
}

export function subtract(a: Money, b: Money): Money {
  sameCurrency(a, b);
  return { currencyCode: a.currencyCode, amountMinor: a.amountMinor - b.amountMinor };
}

export function negate(m: Money): Money {
  return { currencyCode: m.currencyCode, amountMinor: -m.amountMinor };
}

/** Multiplies by a whole number (e.g. a per-session price times sessions). */
export function times(m: Money, factor: bigint): Money {
  return { currencyCode: m.currencyCode, amountMinor: m.amountMinor * factor };
}

/** Sum of `items`, all in `currencyCode` (which an empty list needs). */
export function sum(currencyCode: string, items: readonly Money[]): Money {
  let total = zero(currencyCode);
  for (const item of items) total = add(total, item);
  return total;
}

/** -1, 0 or 1. */
export function compare(a: Money, b: Money): -1 | 0 | 1 {
  sameCurrency(a, b);
  return a.amountMinor < b.amountMinor ? -1 : a.amountMinor > b.amountMinor ? 1 : 0;
}

export function equals(a: Money, b: Money): boolean {
  return a.currencyCode === b.currencyCode && a.amountMinor === b.amountMinor;
}

export function isZero(m: Money): boolean {
  return m.amountMinor === 0n;
}

/** {@link allocate} for Money: the parts are in the same currency and sum to `m`. */
export function allocateMoney(m: Money, weights: readonly bigint[] | number): Money[] {
  return allocate(m.amountMinor, weights).map((amountMinor) => ({ currencyCode: m.currencyCode, amountMinor }));
}

/** {@link prorate} for Money. */
export function prorateMoney(m: Money, numerator: bigint, denominator: bigint, rounding: Rounding = 'half-up'): Money {
  return { currencyCode: m.currencyCode, amountMinor: prorate(m.amountMinor, numerator, denominator, rounding) };
}
