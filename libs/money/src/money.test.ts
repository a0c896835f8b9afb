import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { knownCurrencies, minorUnits, UnknownCurrency } from './currency.js';
import {
  add,
  allocateMoney,
  compare,
  CurrencyMismatch,
  formatAmount,
  formatMoney,
  InvalidAmount,
  money,
  parseAmount,
  parseMoney,
  prorateMoney,
  subtract,
  sum,
} from './money.js';

describe('currencies', () => {
  it('knows ISO 4217 minor units', () => {
    for (const code of ['USD', 'EUR', 'GBP', 'SGD', 'AUD', 'MYR']) expect(minorUnits(code)).toBe(2);
    for (const code of ['JPY', 'KRW', 'VND', 'CLP']) expect(minorUnits(code)).toBe(0);
    for (const code of ['BHD', 'KWD', 'JOD', 'OMR', 'TND']) expect(minorUnits(code)).toBe(3);
    expect(minorUnits('CLF')).toBe(4);
  });

  it('throws on unknown codes, naming the field', () => {
    for (const code of ['usd', 'XXX', 'XAU', '', 'toString', '__proto__']) {
      expect(() => minorUnits(code)).toThrow(UnknownCurrency);
    }
    expect(() => money('ABC', 1n)).toThrow(/currency_code "ABC"/);
  });

  it('lists only three-letter codes', () => {
    expect(knownCurrencies().every((c) => /^[A-Z]{3}$/.test(c))).toBe(true);
    expect(knownCurrencies().length).toBeGreaterThan(150);
  });
});

describe('parse and format', () => {
  it('parses decimal strings exactly', () => {
    expect(parseAmount('USD', '12.34')).toBe(1234n);
    expect(parseAmount('USD', '12.5')).toBe(1250n);
    expect(parseAmount('USD', '-0.05')).toBe(-5n);
    expect(parseAmount('JPY', '300')).toBe(300n);
    expect(parseAmount('KWD', '1.005')).toBe(1005n);
    expect(parseAmount('USD', '90071992547409.93')).toBe(9007199254740993n);
  });

  it('rejects malformed amounts and extra decimal places instead of rounding', () => {
    for (const text of ['', '1,00', '1e3', '.5', '1.', '+1', ' 1', 'NaN']) {
      expect(() => parseAmount('USD', text)).toThrow(InvalidAmount);
    }
    expect(() => parseAmount('USD', '1.005')).toThrow(/more than 2 decimal places for USD/);
    expect(() => parseAmount('JPY', '1.5')).toThrow(/more than 0 decimal places/);
  });

  it('formats with every decimal place of the currency', () => {
    expect(formatAmount('USD', 1234n)).toBe('12.34');
    expect(formatAmount('USD', -5n)).toBe('-0.05');
    expect(formatAmount('USD', 0n)).toBe('0.00');
    expect(formatAmount('JPY', 300n)).toBe('300');
    expect(formatAmount('BHD', 1n)).toBe('0.001');
    expect(formatMoney(money('EUR', 30000n))).toBe('300.00');
  });

  it('round-trips every amount in every currency', () => {
    fc.assert(
      fc.property(fc.constantFrom(...knownCurrencies()), fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }), (code, minor) => {
        expect(parseAmount(code, formatAmount(code, minor))).toBe(minor);
      }),
    );
  });

  it('round-trips canonical decimal strings', () => {
    const canonical = fc
      .tuple(fc.boolean(), fc.bigInt({ min: 0n, max: 10n ** 15n }), fc.integer({ min: 0, max: 99 }))
      .filter(([neg, whole, cents]) => !(neg && whole === 0n && cents === 0))
      .map(([neg, whole, cents]) => `${neg ? '-' : ''}${whole}.${String(cents).padStart(2, '0')}`);
    fc.assert(
      fc.property(canonical, (text) => {
        expect(formatAmount('SGD', parseAmount('SGD', text))).toBe(text);
      }),
    );
  });
});

describe('arithmetic', () => {
  const usd = (n: bigint) => money('USD', n);

  it('adds, subtracts and compares in one currency', () => {
    expect(add(usd(150n), usd(-50n))).toEqual(usd(100n));
    expect(subtract(usd(100n), usd(250n))).toEqual(usd(-150n));
    expect(sum('USD', [usd(1n), usd(2n), usd(3n)])).toEqual(usd(6n));
    expect(sum('USD', [])).toEqual(usd(0n));
    expect(compare(usd(1n), usd(2n))).toBe(-1);
  });

  it('refuses to combine currencies', () => {
    expect(() => add(usd(1n), money('EUR', 1n))).toThrow(CurrencyMismatch);
    expect(() => subtract(usd(1n), money('SGD', 1n))).toThrow(/SGD does not match USD/);
    expect(() => sum('USD', [money('EUR', 1n)])).toThrow(CurrencyMismatch);
    expect(() => compare(usd(1n), money('JPY', 1n))).toThrow(CurrencyMismatch);
  });

  it('allocates and prorates money in its own currency', () => {
    const parts = allocateMoney(parseMoney('USD', '100.00'), 3);
    expect(parts.map(formatMoney)).toEqual(['33.34', '33.33', '33.33']);
    expect(sum('USD', parts)).toEqual(usd(10000n));
    expect(prorateMoney(usd(10000n), 1n, 3n)).toEqual(usd(3333n));
  });
});
