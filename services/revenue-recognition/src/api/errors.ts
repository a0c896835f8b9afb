import { Code, ConnectError } from '@connectrpc/connect';
import { RevenueRuleError } from '../domain/errors.js';

/** Bad input, naming the request field. */
export function invalidArgument(field: string, reason: string): ConnectError {
  return new ConnectError(`${field}: ${reason}`, Code.InvalidArgument);
}

export function notFound(what: string, id: string): ConnectError {
  return new ConnectError(`${what} ${JSON.stringify(id)} not found`, Code.NotFound);
}

export function permissionDenied(reason: string): ConnectError {
  return new ConnectError(reason, Code.PermissionDenied);
}

/** Domain rule errors are the caller's input (a period, a token): InvalidArgument naming the field. */
export function toConnectError(err: unknown): unknown {
  if (err instanceof ConnectError) return err;
  if (err instanceof RevenueRuleError) return new ConnectError(err.message, Code.InvalidArgument);
  return err;
}
