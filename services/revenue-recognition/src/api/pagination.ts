import { createHash } from 'node:crypto';
import { invalidArgument } from '@punchcard/platform';

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

export function pageSize(requested: number): number {
  if (!Number.isInteger(requested) || requested < 0) throw invalidArgument('page_size', `must be between 0 and ${MAX_PAGE_SIZE}, got ${requested}`);
  if (requested > MAX_PAGE_SIZE) throw invalidArgument('page_size', `must be at most ${MAX_PAGE_SIZE}, got ${requested}`);
  return requested === 0 ? DEFAULT_PAGE_SIZE : requested;
}

function fingerprint(filters: unknown): string {
  return createHash('sha256').update(JSON.stringify(filters)).digest('base64url').slice(0, 16);
}

/**
 * An opaque keyset token: the sort key of the last row returned, bound to the filters it was issued
 * for, so a token cannot silently page through a different query.
 */
export function encodePageToken(key: readonly string[], filters: unknown): string {
  return Buffer.from(JSON.stringify({ k: key, f: fingerprint(filters) })).toString('base64url');
}

export function decodePageToken(token: string, filters: unknown, length: number): string[] | undefined {
  if (!token) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw invalidArgument('page_token', 'is not a token this service issued');
  }
  const p = parsed as { k?: unknown; f?: unknown };
  if (!Array.isArray(p.k) || p.k.length !== length || !p.k.every((x) => typeof x === 'string')) {
    throw invalidArgument('page_token', 'is not a token this service issued');
  }
  if (p.f !== fingerprint(filters)) throw invalidArgument('page_token', 'was issued for different filters; repeat the request with the same filters');
  return p.k as string[];
}
