import { Code, ConnectError } from '@connectrpc/connect';

/**
 * Errors handlers throw. Each message starts with what it is about (the request field, the
 * resource and its id), so an integrator reading a gRPC status knows what to fix.
 */

/** Bad input: `field` is the request field path in proto naming, e.g. `items[2].quantity`. */
export function invalidArgument(field: string, reason: string): ConnectError {
  return new ConnectError(`${field}: ${reason}`, Code.InvalidArgument);
}

/** A business rule forbids the operation in the current state (expired, frozen, wrong branch…). */
export function failedPrecondition(reason: string): ConnectError {
  return new ConnectError(reason, Code.FailedPrecondition);
}

export function notFound(what: string, id: string): ConnectError {
  return new ConnectError(`${what} ${JSON.stringify(id)} not found`, Code.NotFound);
}

/** Nothing left to take, e.g. no sessions remaining. */
export function resourceExhausted(reason: string): ConnectError {
  return new ConnectError(reason, Code.ResourceExhausted);
}

/** Only where the caller asked to create something with an id that is taken. */
export function alreadyExists(what: string, id: string): ConnectError {
  return new ConnectError(`${what} ${JSON.stringify(id)} already exists`, Code.AlreadyExists);
}

export function permissionDenied(reason: string): ConnectError {
  return new ConnectError(reason, Code.PermissionDenied);
}

export function unauthenticated(reason: string): ConnectError {
  return new ConnectError(reason, Code.Unauthenticated);
}

/**
 * What the client sees for an error that is not a ConnectError: code Internal and the trace id to
 * quote to support, never the original message (it may carry SQL, hostnames or customer data).
 */
export function internalError(traceId: string | undefined): ConnectError {
  return new ConnectError(traceId ? `internal error (trace ${traceId})` : 'internal error', Code.Internal);
}
