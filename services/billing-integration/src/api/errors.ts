import { Code, ConnectError } from '@connectrpc/connect';
import { IdempotencyKeyError } from '@punchcard/db';
import { InvalidField, RuleViolation } from '../domain/errors.js';
import { ProviderError } from '../providers/provider.js';

/**
 * Domain and library errors as gRPC statuses: a broken field is InvalidArgument naming it, a rule is
 * FailedPrecondition. Anything else passes through (the server reports it as Internal).
 */
export function toConnectError(err: unknown): unknown {
  if (err instanceof ConnectError) return err;
  if (err instanceof InvalidField) return new ConnectError(err.message, Code.InvalidArgument, undefined, undefined, err);
  if (err instanceof RuleViolation) return new ConnectError(err.message, Code.FailedPrecondition, undefined, undefined, err);
  if (err instanceof IdempotencyKeyError) return new ConnectError(err.message, Code.InvalidArgument, undefined, undefined, err);
  // The processor failed the call: retry later (Unavailable) or fix the configuration (FailedPrecondition).
  if (err instanceof ProviderError) return new ConnectError(`payment provider: ${err.message}`, err.retryable ? Code.Unavailable : Code.FailedPrecondition, undefined, undefined, err);
  return err;
}

export const invalid = (field: string, reason: string) => new ConnectError(`${field}: ${reason}`, Code.InvalidArgument);
export const precondition = (reason: string) => new ConnectError(reason, Code.FailedPrecondition);
export const notFound = (what: string, id: string) => new ConnectError(`${what} ${JSON.stringify(id)} not found`, Code.NotFound);
export const denied = (reason: string) => new ConnectError(reason, Code.PermissionDenied);

/**
 * A ledger call made for a request: what the ledger refuses (no such entitlement, a rule, a bad
 * field) is the caller's answer under the ledger's code; anything else means it could not answer.
 */
export function fromLedger(err: unknown): ConnectError {
  const e = ConnectError.from(err);
  if (e.code === Code.NotFound || e.code === Code.FailedPrecondition || e.code === Code.InvalidArgument) return new ConnectError(`ledger: ${e.rawMessage}`, e.code, undefined, undefined, e);
  return new ConnectError(`the ledger did not answer: ${e.rawMessage}`, Code.Unavailable, undefined, undefined, e);
}
