import { describe, expect, it } from 'vitest';
import { entitlement, expiryTerms, SGT, terms } from '../../test/support/domain-fixtures.js';
import { afterUse, atPurchase, expiryFromAnchor, finalEnd } from './expiry.js';

const bought = new Date('2025-01-10T06:00:00Z'); // 14:00 in Singapore

describe('expiry set by the ledger', () => {
  it('PURCHASE anchor: usable through the end of the local day anchor + duration', () => {
    expect(atPurchase(expiryTerms({ durationDays: 30 }), bought, SGT)).toEqual({
      activationTime: bought,
      expiryTime: new Date('2025-02-09T16:00:00Z'), // 10 Feb 00:00 SGT
    });
    expect(expiryFromAnchor(expiryTerms({ durationDays: 0, durationMonths: 1 }), bought, SGT)).toEqual(new Date('2025-02-10T16:00:00Z'));
  });

  it('the local calendar day decides, not the UTC one', () => {
    // 23:30 on 10 Jan in Singapore is still 10 Jan locally although 15:30Z.
    const late = new Date('2025-01-10T15:30:00Z');
    expect(expiryFromAnchor(expiryTerms({ durationDays: 1 }), late, SGT)).toEqual(new Date('2025-01-11T16:00:00Z'));
  });

  it('FIXED_DATE: usable through that date in the branch zone', () => {
    expect(expiryFromAnchor(expiryTerms({ anchor: 'FIXED_DATE', fixedDate: '2025-12-31' }), bought, SGT)).toEqual(
      new Date('2025-12-31T16:00:00Z'),
    );
  });

  it('FIRST_USE: unknown until the first consume, then anchored on it', () => {
    const t = terms({ expiry: { anchor: 'FIRST_USE', durationDays: 10 } });
    expect(atPurchase(t.expiry, bought, SGT)).toEqual({ activationTime: null, expiryTime: null });
    const e = entitlement({ terms: t });
    const use = new Date('2025-03-01T02:00:00Z');
    expect(afterUse(e, use)).toEqual({ activationTime: use, expiryTime: new Date('2025-03-11T16:00:00Z') });
  });

  it('custom rules and no duration leave expiry unset', () => {
    expect(expiryFromAnchor(expiryTerms({ customRule: true }), bought, SGT)).toBeNull();
    expect(expiryFromAnchor(expiryTerms({ anchor: 'NONE', durationDays: 0 }), bought, SGT)).toBeNull();
  });

  it('rolling extension pushes expiry after a use, never earlier', () => {
    const e = entitlement({ terms: terms({ expiry: { durationDays: 30, rollingExtensionDays: 60 } }) });
    const use = new Date('2025-02-01T02:00:00Z');
    expect(afterUse(e, use).expiryTime).toEqual(new Date('2025-04-02T16:00:00Z'));
    const short = entitlement({ terms: terms({ expiry: { durationDays: 30, rollingExtensionDays: 1 } }) });
    expect(afterUse(short, use).expiryTime).toEqual(short.expiryTime);
  });

  it('SOFT: final end is grace days after expiry', () => {
    const e = entitlement({ terms: terms({ expiry: { mode: 'SOFT', graceDays: 7 } }) });
    expect(finalEnd(e)).toEqual(new Date('2025-02-16T16:00:00Z'));
    const hard = entitlement();
    expect(finalEnd(hard)).toEqual(hard.expiryTime);
  });
});
