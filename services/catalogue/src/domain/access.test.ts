import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AccessDenied, assertMayChangeBranch, assertMayChangeDefinition, assertTenantWide, branchesOutsideScope, type ScopedCaller } from './access.js';
import type { BranchPolicy } from './terms.js';

const whole: ScopedCaller = { subject: 'owner' };
const orchard: ScopedCaller = { subject: 'mgr-1', branchIds: ['b-orchard'] };
const none: ScopedCaller = { subject: 'mgr-0', branchIds: [] };
const listed = (...branchIds: string[]): BranchPolicy => ({ allBranches: false, branchIds });
const all: BranchPolicy = { allBranches: true, branchIds: [] };

describe('tenant-wide actions', () => {
  it('need a caller without branch scope', () => {
    expect(() => assertTenantWide(whole, 'UpdateTenant')).not.toThrow();
    expect(() => assertTenantWide(orchard, 'UpdateTenant')).toThrow(
      new AccessDenied('UpdateTenant needs a caller for the whole tenant; caller mgr-1 is limited to branches b-orchard'),
    );
    expect(() => assertTenantWide(none, 'CreateBranch')).toThrow('caller mgr-0 is limited to no branches');
  });
});

describe('branch changes', () => {
  it('a scoped caller changes only its own branches', () => {
    expect(() => assertMayChangeBranch(whole, 'b-tampines')).not.toThrow();
    expect(() => assertMayChangeBranch(orchard, 'b-orchard')).not.toThrow();
    expect(() => assertMayChangeBranch(orchard, 'b-tampines')).toThrow(
      "branch b-tampines is outside the caller's branches; caller mgr-1 is limited to branches b-orchard",
    );
    expect(() => assertMayChangeBranch(none, 'b-orchard')).toThrow(AccessDenied);
  });
});

describe('definition changes', () => {
  it('a scoped caller may act on definitions listing only its branches', () => {
    const two: ScopedCaller = { subject: 'area', branchIds: ['b-orchard', 'b-tampines'] };
    expect(() => assertMayChangeDefinition(orchard, listed('b-orchard'), 'terms.branches')).not.toThrow();
    expect(() => assertMayChangeDefinition(two, listed('b-tampines', 'b-orchard'), 'terms.branches')).not.toThrow();
    expect(() => assertMayChangeDefinition(whole, all, 'terms.branches')).not.toThrow();
  });

  it('names every branch outside the scope, once', () => {
    expect(() => assertMayChangeDefinition(orchard, listed('b-orchard', 'b-jurong', 'b-tampines', 'b-jurong'), 'terms.branches')).toThrow(
      "terms.branches lists branches b-jurong, b-tampines outside the caller's branches; caller mgr-1 is limited to branches b-orchard",
    );
    expect(() => assertMayChangeDefinition(orchard, listed('b-jurong'), 'definition "TEN-PACK" version 2')).toThrow(
      `definition "TEN-PACK" version 2 lists branch b-jurong outside the caller's branches`,
    );
  });

  it('all branches needs a whole-tenant caller', () => {
    expect(() => assertMayChangeDefinition(orchard, all, 'terms.branches')).toThrow(
      'terms.branches is usable at all branches, which needs a caller for the whole tenant; caller mgr-1 is limited to branches b-orchard',
    );
  });
});

const branchId = fc.constantFrom<string>('b1', 'b2', 'b3', 'b4', 'b5');
const scope = fc.option(fc.uniqueArray(branchId, { maxLength: 5 }), { nil: undefined });
const policy: fc.Arbitrary<BranchPolicy> = fc.oneof(
  fc.constant(all),
  fc.array(branchId, { minLength: 1, maxLength: 5 }).map((ids) => listed(...ids)),
);
const allowed = (branchIds: readonly string[] | undefined, p: BranchPolicy) => {
  try {
    assertMayChangeDefinition({ subject: 's', branchIds }, p, 'terms.branches');
    return true;
  } catch (err) {
    expect(err).toBeInstanceOf(AccessDenied);
    return false;
  }
};

describe('definition scope properties', () => {
  it('allowed exactly when unscoped, or not all branches and every listed branch in scope', () => {
    fc.assert(
      fc.property(scope, policy, (s, p) => {
        const expected = s === undefined || (!p.allBranches && p.branchIds.every((id) => s.includes(id)));
        expect(allowed(s, p)).toBe(expected);
      }),
    );
  });

  it('the refusal names exactly the listed branches outside the scope', () => {
    fc.assert(
      fc.property(scope, policy, (s, p) => {
        const outside = branchesOutsideScope({ subject: 's', branchIds: s }, p);
        if (s === undefined) expect(outside).toEqual([]);
        else if (p.allBranches) expect(outside).toBe('all');
        else expect(outside).toEqual([...new Set(p.branchIds.filter((id) => !s.includes(id)))]);
      }),
    );
  });

  it('widening the scope never refuses what a narrower scope allowed', () => {
    fc.assert(
      fc.property(fc.uniqueArray(branchId, { maxLength: 5 }), fc.uniqueArray(branchId, { maxLength: 5 }), policy, (narrow, extra, p) => {
        const wide = [...new Set([...narrow, ...extra])];
        if (allowed(narrow, p)) expect(allowed(wide, p)).toBe(true);
        expect(allowed(undefined, p)).toBe(true);
      }),
    );
  });
});
