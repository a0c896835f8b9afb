import { ValidationFailed } from '../domain/errors.js';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

/** 0 means the default; above the maximum is clamped (AIP-158), negative is refused. */
export function pageSize(requested: number): number {
  if (requested < 0) throw new ValidationFailed([{ field: 'page_size', reason: 'must not be negative' }]);
  if (requested === 0) return DEFAULT_PAGE_SIZE;
  return Math.min(requested, MAX_PAGE_SIZE);
}

interface Cursor {
  /** The sort key (code) of the last item of the previous page. */
  after: string;
  /** The filters the token was issued for. */
  filter: string;
}

/**
 * Tokens are opaque to callers (base64url JSON). A token only continues the listing it came from:
 * used with other filters it is refused rather than silently skipping rows.
 */
export function encodePageToken(after: string, filter: unknown): string {
  const cursor: Cursor = { after, filter: JSON.stringify(filter) };
  return Buffer.from(JSON.stringify(cursor), 'utf8').toString('base64url');
}

export function decodePageToken(token: string, filter: unknown): string | undefined {
  if (token === '') return undefined;
  let cursor: Partial<Cursor>;
  try {
    cursor = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Partial<Cursor>;
  } catch {
    throw new ValidationFailed([{ field: 'page_token', reason: 'malformed' }]);
  }
  if (typeof cursor !== 'object' || cursor === null || typeof cursor.after !== 'string' || typeof cursor.filter !== 'string') {
    throw new ValidationFailed([{ field: 'page_token', reason: 'malformed' }]);
  }
  if (cursor.filter !== JSON.stringify(filter)) {
    throw new ValidationFailed([{ field: 'page_token', reason: 'was issued for different filters' }]);
  }
  return cursor.after;
}

/** Splits a `limit + 1` fetch into the page and the token of the next one ('' when this is the last). */
export function page<T>(rows: T[], limit: number, keyOf: (row: T) => string, filter: unknown): { items: T[]; nextPageToken: string } {
  if (rows.length <= limit) return { items: rows, nextPageToken: '' };
  const items = rows.slice(0, limit);
  return { items, nextPageToken: encodePageToken(keyOf(items[items.length - 1]!), filter) };
}
