import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CURRENCY, basicTerms } from '../../test/support/arbitraries.js';
import { RuleViolation, ValidationFailed } from './errors.js';
import type { NormalizedTerms } from './terms.js';
import { validateTerms } from './validate-terms.js';
import { assertCanPublish, assertCanRetire, planUpdate, type DefinitionStatus, type VersionState } from './versioning.js';

const terms = (paidSessions = 10): NormalizedTerms => validateTerms(basicTerms({ paidSessions }), { currency: CURRENCY });
const at = (status: DefinitionStatus, version = 1, t = terms()): VersionState => ({ status, version, terms: t });

describe('definition versioning', () => {
  it('edits a DRAFT in place', () => {
    expect(planUpdate(at('DRAFT'), 'd1', terms(12))).toEqual({ kind: 'edit_draft', version: 1 });
  });

  it('gives an edited ACTIVE definition a new version', () => {
    expect(planUpdate(at('ACTIVE', 3), 'd1', terms(12))).toEqual({ kind: 'new_version', version: 4, supersedes: 3 });
  });

  it('writes nothing when the terms are unchanged', () => {
    expect(planUpdate(at('ACTIVE', 2), 'd1', terms())).toEqual({ kind: 'unchanged', version: 2 });
    expect(planUpdate(at('DRAFT'), 'd1', terms())).toEqual({ kind: 'unchanged', version: 1 });
  });

  it('refuses edits of RETIRED definitions and code changes', () => {
    expect(() => planUpdate(at('RETIRED'), 'd1', terms(12))).toThrow(RuleViolation);
    expect(() => planUpdate(at('DRAFT'), 'd1', { ...terms(), code: 'OTHER' })).toThrow(ValidationFailed);
    expect(() => planUpdate(at('DRAFT'), 'd1', { ...terms(), code: 'OTHER' })).toThrow('terms.code: cannot change (definition d1 has code "TEN-PACK")');
  });

  it('publishes only drafts and retires only active definitions', () => {
    expect(() => assertCanPublish(at('DRAFT'), 'd1')).not.toThrow();
    expect(() => assertCanPublish(at('ACTIVE', 2), 'd1')).toThrow('definition d1 is ACTIVE at version 2; only a DRAFT can be published');
    expect(() => assertCanRetire(at('ACTIVE'), 'd1')).not.toThrow();
    expect(() => assertCanRetire(at('DRAFT'), 'd1')).toThrow('definition d1 is DRAFT at version 1; only an ACTIVE definition can be retired');
    expect(() => assertCanRetire(at('RETIRED'), 'd1')).toThrow(RuleViolation);
  });

  it('any sequence of operations keeps versions contiguous and old versions unchanged', () => {
    type Op = { op: 'update'; paid: number } | { op: 'publish' } | { op: 'retire' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.integer({ min: 1, max: 4 }).map((paid) => ({ op: 'update' as const, paid })),
      fc.constant({ op: 'publish' as const }),
      fc.constant({ op: 'retire' as const }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        // A model of the store: every version ever written, latest last.
        const versions: VersionState[] = [at('DRAFT', 1, terms(1))];
        for (const o of ops) {
          const latest = versions.at(-1)!;
          const frozen = versions.slice(0, -1).map((v) => structuredClone(v));
          try {
            if (o.op === 'publish') {
              assertCanPublish(latest, 'd');
              latest.status = 'ACTIVE';
            } else if (o.op === 'retire') {
              assertCanRetire(latest, 'd');
              latest.status = 'RETIRED';
            } else {
              const plan = planUpdate(latest, 'd', terms(o.paid));
              if (plan.kind === 'edit_draft') latest.terms = terms(o.paid);
              if (plan.kind === 'new_version') {
                latest.status = 'SUPERSEDED';
                versions.push({ version: plan.version, status: 'ACTIVE', terms: terms(o.paid) });
              }
            }
          } catch (err) {
            if (!(err instanceof RuleViolation)) throw err;
          }
          // Versions written before this step never change, except the previous latest's status.
          frozen.forEach((v, i) => expect(versions[i]).toEqual(v));
        }
        versions.forEach((v, i) => expect(v.version).toBe(i + 1));
        versions.slice(0, -1).forEach((v) => expect(v.status).toBe('SUPERSEDED'));
        expect(versions.filter((v) => v.status === 'DRAFT').length).toBeLessThanOrEqual(1);
        if (versions.length > 1) expect(versions.at(-1)!.status).not.toBe('DRAFT');
      }),
    );
  });
});
