/** A field of a request that breaks a rule; the API turns it into InvalidArgument naming `field`. */
export interface Violation {
  /** Field path in the request, snake_case as in the proto, e.g. `terms.price.amount_minor`. */
  field: string;
  reason: string;
}

export class ValidationFailed extends Error {
  override readonly name = 'ValidationFailed';
  constructor(readonly violations: readonly [Violation, ...Violation[]]) {
    super(violations.map((v) => `${v.field}: ${v.reason}`).join('; '));
  }
  get first(): Violation {
    return this.violations[0];
  }
}

/** A business rule (state machine, plan tier) that the request cannot pass as the data stands. */
export class RuleViolation extends Error {
  override readonly name = 'RuleViolation';
}

/** Throws when there are violations; otherwise returns. */
export function assertValid(violations: Violation[]): void {
  const [first, ...rest] = violations;
  if (first) throw new ValidationFailed([first, ...rest]);
}
