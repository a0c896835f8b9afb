/**
 * A broken business rule, with the gRPC-level category it maps to. The domain stays free of
 * framework imports; the API layer turns these into Connect errors.
 */
export type RuleKind =
  | 'invalid_argument'
  | 'failed_precondition'
  | 'resource_exhausted'
  | 'not_found'
  | 'permission_denied';

export class RuleViolation extends Error {
  constructor(
    readonly kind: RuleKind,
    message: string,
    /** For invalid_argument: the request field at fault. */
    readonly field?: string,
  ) {
    super(message);
    this.name = 'RuleViolation';
  }
}

export function invalid(field: string, reason: string): RuleViolation {
  return new RuleViolation('invalid_argument', `${field}: ${reason}`, field);
}

export function precondition(reason: string): RuleViolation {
  return new RuleViolation('failed_precondition', reason);
}

export function exhausted(reason: string): RuleViolation {
  return new RuleViolation('resource_exhausted', reason);
}

export function notFound(what: string, id: string): RuleViolation {
  return new RuleViolation('not_found', `${what} ${id} not found`);
}
