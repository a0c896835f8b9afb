import { Code, ConnectError } from '@connectrpc/connect';
import { IdempotencyKeyError } from '@punchcard/db';
import { AccessDenied } from '../domain/access.js';
import { RuleViolation, ValidationFailed } from '../domain/errors.js';

/**
 * Domain and library errors as gRPC statuses: a broken field is InvalidArgument naming it, a rule
 * (state machine, plan tier, one active package) is FailedPrecondition, acting outside the caller's
 * branches is PermissionDenied. Anything else passes through (Connect reports unknown errors as
 * Internal).
 */
export function toConnectError(err: unknown): unknown {
  if (err instanceof ConnectError) return err;
  if (err instanceof ValidationFailed) return new ConnectError(err.message, Code.InvalidArgument, undefined, undefined, err);
  if (err instanceof AccessDenied) return new ConnectError(err.message, Code.PermissionDenied, undefined, undefined, err);
  if (err instanceof RuleViolation) return new ConnectError(err.message, Code.FailedPrecondition, undefined, undefined, err);
  if (err instanceof IdempotencyKeyError) return new ConnectError(err.message, Code.InvalidArgument, undefined, undefined, err);
  return err;
}
