import { describe, expect, it } from 'vitest';
import { RuleViolation } from './errors.js';
import { newBranch, newTenant, tenantFeatures, updateBranch, updateTenant } from './tenant.js';

const input = { name: 'Spine Clinic', planTier: 'BASIC' as const, defaultCurrency: 'SGD', earningRule: 'UNSPECIFIED' as const };

describe('tenant rules', () => {
  it('creates with defaults', () => {
    expect(newTenant(input)).toEqual({ name: 'Spine Clinic', planTier: 'BASIC', defaultCurrency: 'SGD', earningRule: 'DELIVERING_BRANCH' });
    expect(tenantFeatures({ planTier: 'BASIC' })).toEqual(['MANUAL_DEDUCTION', 'HARD_EXPIRY', 'PACKAGE_HISTORY']);
  });

  it('names missing and bad fields', () => {
    expect(() => newTenant({ ...input, name: '' })).toThrow('name: required');
    expect(() => newTenant({ ...input, planTier: 'UNSPECIFIED' })).toThrow('plan_tier: required');
    expect(() => newTenant({ ...input, defaultCurrency: 'XXQ' })).toThrow('default_currency: unknown ISO 4217 currency "XXQ"');
  });

  it('updates only the given fields, and fixes the currency once definitions exist', () => {
    const current = newTenant(input);
    const blank = { name: '', planTier: 'UNSPECIFIED' as const, defaultCurrency: '', earningRule: 'UNSPECIFIED' as const };
    expect(updateTenant(current, { ...blank, planTier: 'EXPERT' }, { definitionCount: 3 })).toEqual({ ...current, planTier: 'EXPERT' });
    expect(updateTenant(current, { ...blank, defaultCurrency: 'MYR' }, { definitionCount: 0 }).defaultCurrency).toBe('MYR');
    expect(() => updateTenant(current, { ...blank, defaultCurrency: 'MYR' }, { definitionCount: 2 })).toThrow(RuleViolation);
  });
});

describe('branch rules', () => {
  it('validates the IANA time zone and stores its canonical name', () => {
    expect(newBranch({ code: 'ORCHARD', name: 'Orchard', timeZone: 'asia/singapore' })).toEqual({
      code: 'ORCHARD',
      name: 'Orchard',
      timeZone: 'Asia/Singapore',
      active: true,
    });
    expect(() => newBranch({ code: 'X', name: 'X', timeZone: 'Mars/Base' })).toThrow('time_zone: unknown IANA time zone "Mars/Base"');
    expect(() => newBranch({ code: '', name: 'X', timeZone: 'UTC' })).toThrow('code: required');
  });

  it('updates only the given fields', () => {
    const b = newBranch({ code: 'ORCHARD', name: 'Orchard', timeZone: 'Asia/Singapore' });
    expect(updateBranch(b, { name: '', timeZone: '', active: false })).toEqual({ ...b, active: false });
    expect(updateBranch(b, { name: 'Orchard Rd', timeZone: 'Asia/Kuala_Lumpur' })).toEqual({ ...b, name: 'Orchard Rd', timeZone: 'Asia/Kuala_Lumpur' });
    expect(() => updateBranch(b, { name: '', timeZone: 'Nowhere/Land' })).toThrow('time_zone: unknown IANA time zone "Nowhere/Land"');
  });
});
