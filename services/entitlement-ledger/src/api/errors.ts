import { Code, ConnectError } from '@connectrpc/connect';
import { IdempotencyKeyError } from '@punchcard/db';
import { RuleViolation, type RuleKind } from '../domain/errors.js';

const CODES: Record<RuleKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
  not_found: Code.NotFound,
  permission_denied: Code.PermissionDenied,
};

/** Business refusals become gRPC codes with their message (naming the field); anything else passes through. */
export function toConnectError(err: unknown): unknown {
  if (err instanceof RuleViolation) return new ConnectError(err.message, CODES[err.kind]);
  if (err instanceof IdempotencyKeyError) return new ConnectError(err.message, Code.InvalidArgument);
  return err;
}
