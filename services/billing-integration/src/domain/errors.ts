/** A broken request field; the API maps it to InvalidArgument naming `field` (snake_case, as in the proto). */
export class InvalidField extends Error {
  override readonly name = 'InvalidField';
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

/** A business rule the request cannot pass as the data stands; the API maps it to FailedPrecondition. */
export class RuleViolation extends Error {
  override readonly name = 'RuleViolation';
}
