import { Code, ConnectError } from '@connectrpc/connect';
import { RevenueRuleError } from '../domain/errors.js';

/** Domain rule errors are the caller's input (a period, a token): InvalidArgument naming the field. */
export function toConnectError(err: unknown): unknown {
  if (err instanceof ConnectError) return err;
  if (err instanceof RevenueRuleError) return new ConnectError(err.message, Code.InvalidArgument);
  return err;
}
