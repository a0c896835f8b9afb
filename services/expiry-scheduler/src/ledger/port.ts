/**
 * What the scheduler needs from the entitlement ledger. Every call carries an idempotency key, so a
 * call repeated after a crash changes nothing. `changed` is false when the ledger answered without an
 * entry (the expiry moved, or the entitlement is already in grace or closed).
 */
export interface LedgerPort {
  enterGrace(call: { tenantId: string; idempotencyKey: string; entitlementId: string; expiryTime: Date; graceEndTime: Date }): Promise<LedgerOutcome>;
  expire(call: { tenantId: string; idempotencyKey: string; entitlementId: string; dueTime: Date; reason: string }): Promise<LedgerOutcome>;
  unfreeze(call: { tenantId: string; idempotencyKey: string; entitlementId: string; reason: string }): Promise<LedgerOutcome>;
}

export interface LedgerOutcome {
  changed: boolean;
}

/** A failed ledger call; `code` is the gRPC status in snake case (`unavailable`, `failed_precondition`, …). */
export class LedgerCallError extends Error {
  override readonly name = 'LedgerCallError';
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
