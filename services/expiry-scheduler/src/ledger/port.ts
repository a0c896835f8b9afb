/**
 * What the scheduler needs from the entitlement ledger. Every call carries an idempotency key, so a
 * call repeated after a crash changes nothing. `changed` is false when the ledger answered without an
 * entry (the expiry moved, or the entitlement is already in grace or closed).
 */
export interface LedgerPort {
  /**
   * Expire and EnterGrace calls of one tenant in one request (the ledger's ExpireBatch, at most
   * {@link MAX_EXPIRY_BATCH}; different entitlements). Per call, in order: its outcome, or the
   * refusal its single call would have failed with. Throws a {@link LedgerCallError} when the
   * request as a whole failed (nothing was applied).
   */
  expireBatch(tenantId: string, calls: readonly ExpiryCall[]): Promise<(LedgerOutcome | LedgerCallError)[]>;
  unfreeze(call: { tenantId: string; idempotencyKey: string; entitlementId: string; reason: string }): Promise<LedgerOutcome>;
}

/** The ledger's limit on items per ExpireBatch. */
export const MAX_EXPIRY_BATCH = 1000;

export type ExpiryCall =
  | { action: 'expire'; idempotencyKey: string; entitlementId: string; dueTime: Date; reason: string }
  | { action: 'enterGrace'; idempotencyKey: string; entitlementId: string; expiryTime: Date; graceEndTime: Date };

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
