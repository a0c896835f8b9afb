import { describe, expect, it } from 'vitest';
import { isRetryableTransactionError, isUniqueViolation, pgErrorCode } from './errors.js';
import { assertIdentifier } from './identifiers.js';
import { backoffMs } from './transaction.js';
import { requestHash } from './idempotency.js';
import { parseResultValue } from './create-db.js';

describe('pgErrorCode', () => {
  it('finds the SQLSTATE on the error or along its cause chain', () => {
    const pgError = Object.assign(new Error('duplicate key'), { code: '23505' });
    expect(pgErrorCode(pgError)).toBe('23505');
    expect(pgErrorCode(new Error('wrapped', { cause: new Error('again', { cause: pgError }) }))).toBe('23505');
    expect(isUniqueViolation(new Error('wrapped', { cause: pgError }))).toBe(true);
  });

  it('ignores non-SQLSTATE codes and non-errors', () => {
    expect(pgErrorCode(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBeUndefined();
    expect(pgErrorCode(undefined)).toBeUndefined();
    expect(pgErrorCode('40001')).toBeUndefined();
  });

  it('treats serialization failures, deadlocks and an idempotency key stored first as retryable, nothing else', () => {
    expect(isRetryableTransactionError({ code: '40001' })).toBe(true);
    expect(isRetryableTransactionError({ code: '40P01' })).toBe(true);
    const taken = Object.assign(new Error('duplicate key'), { code: '23505', constraint: 'idempotency_keys_pkey' });
    expect(isRetryableTransactionError(new Error('wrapped', { cause: taken }))).toBe(true);
    expect(isRetryableTransactionError({ code: '23505' })).toBe(false);
    expect(isRetryableTransactionError({ code: '23505', constraint: 'entries_pkey' })).toBe(false);
    expect(isRetryableTransactionError({ code: '23503', constraint: 'idempotency_keys_pkey' })).toBe(false);
  });
});

describe('identifiers', () => {
  it('accepts plain lower-case names and refuses anything that needs quoting', () => {
    expect(assertIdentifier('entitlement_ledger', 'schema')).toBe('entitlement_ledger');
    for (const bad of ['', 'Ledger', 'a-b', 'a b', '1abc', 'x"; drop schema y; --', 'a'.repeat(64)]) {
      expect(() => assertIdentifier(bad, 'schema')).toThrow(/^schema must match/);
    }
  });
});

describe('backoffMs', () => {
  it('grows with the attempt, stays positive and capped', () => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const delay = backoffMs(attempt);
      expect(delay).toBeGreaterThan(0);
      expect(delay).toBeLessThanOrEqual(250);
    }
  });
});

describe('requestHash', () => {
  it('is the sha256 hex of the bytes', () => {
    expect(requestHash(new TextEncoder().encode('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('parseResultValue', () => {
  it('keeps int8 exact as bigint, numeric as a decimal string and dates as calendar strings', () => {
    expect(parseResultValue(20, '9007199254740993')).toBe(9007199254740993n);
    expect(parseResultValue(1016, '{1,NULL,-9223372036854775808}')).toEqual([1n, null, -9223372036854775808n]);
    expect(parseResultValue(1700, '12345678901234567890.12')).toBe('12345678901234567890.12');
    expect(parseResultValue(1082, '2024-02-29')).toBe('2024-02-29');
    expect(parseResultValue(1182, '{2024-02-29,NULL}')).toEqual(['2024-02-29', null]);
    expect(parseResultValue(23, '42')).toBe(42);
  });
});
