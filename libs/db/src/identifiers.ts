/**
 * Schema and role names go into DDL and into the connection's `options` string, where they cannot be
 * bound as parameters, so only plain lower-case identifiers are accepted.
 */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export function assertIdentifier(value: string, what: string): string {
  if (!IDENTIFIER.test(value)) {
    throw new Error(`${what} must match ${IDENTIFIER.source} (lower-case letters, digits, underscore; at most 63), got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Double-quoted identifier; safe after {@link assertIdentifier}, quoted anyway so reserved words work. */
export function quoteIdentifier(value: string): string {
  return `"${value.replaceAll('"', '""')}"`;
}
