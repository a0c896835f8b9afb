import { RuleViolation, ValidationFailed } from './errors.js';
import type { NormalizedTerms } from './terms.js';

/**
 * A definition is a chain of immutable versions. Only the latest version is ever DRAFT or ACTIVE;
 * older versions stay readable forever (entitlements pin the version they were bought at).
 */
export type DefinitionStatus = 'DRAFT' | 'ACTIVE' | 'RETIRED' | 'SUPERSEDED';

export interface VersionState {
  version: number;
  status: DefinitionStatus;
  terms: NormalizedTerms;
}

export type UpdatePlan =
  /** A DRAFT is edited in place: same version, still DRAFT. */
  | { kind: 'edit_draft'; version: number }
  /** An ACTIVE definition gets a new ACTIVE version; the previous one becomes SUPERSEDED. */
  | { kind: 'new_version'; version: number; supersedes: number }
  /** The terms are what they already are: nothing to write. */
  | { kind: 'unchanged'; version: number };

export function planUpdate(latest: VersionState, definitionId: string, next: NormalizedTerms): UpdatePlan {
  if (next.code !== latest.terms.code) {
    throw new ValidationFailed([{ field: 'terms.code', reason: `cannot change (definition ${definitionId} has code ${JSON.stringify(latest.terms.code)})` }]);
  }
  switch (latest.status) {
    case 'DRAFT':
      return termsEqual(latest.terms, next) ? { kind: 'unchanged', version: latest.version } : { kind: 'edit_draft', version: latest.version };
    case 'ACTIVE':
      return termsEqual(latest.terms, next)
        ? { kind: 'unchanged', version: latest.version }
        : { kind: 'new_version', version: latest.version + 1, supersedes: latest.version };
    case 'RETIRED':
    case 'SUPERSEDED':
      throw new RuleViolation(`definition ${definitionId} is ${latest.status}; it cannot be edited (create a new definition)`);
  }
}

/** DRAFT -> ACTIVE. */
export function assertCanPublish(latest: VersionState, definitionId: string): void {
  if (latest.status !== 'DRAFT') {
    throw new RuleViolation(`definition ${definitionId} is ${latest.status} at version ${latest.version}; only a DRAFT can be published`);
  }
}

/** ACTIVE -> RETIRED. */
export function assertCanRetire(latest: VersionState, definitionId: string): void {
  if (latest.status !== 'ACTIVE') {
    throw new RuleViolation(`definition ${definitionId} is ${latest.status} at version ${latest.version}; only an ACTIVE definition can be retired`);
  }
}

/** Deep equality of normalized terms (plain data with bigints). */
export function termsEqual(a: NormalizedTerms, b: NormalizedTerms): boolean {
  return deepEqual(a, b);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
