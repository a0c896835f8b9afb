/**
 * A movement that cannot be posted as it stands (bad input from an event, or a rule it breaks).
 * `field` names what is wrong, so the consumer's dead-letter reason and the API's error both say it.
 */
export class RevenueRuleError extends Error {
  override readonly name = 'RevenueRuleError';
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

/** A journal entry whose debits and credits differ: a programming error, never posted. */
export class UnbalancedEntry extends Error {
  override readonly name = 'UnbalancedEntry';
}
