import { invalid } from '../domain/errors.js';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

export function pageSize(requested: number): number {
  if (requested < 0) throw invalid('page_size', 'must not be negative');
  return requested === 0 ? DEFAULT_PAGE_SIZE : Math.min(requested, MAX_PAGE_SIZE);
}

/** Page tokens are opaque to callers: base64url JSON of the last row's sort key. */
export function encodeToken(cursor: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

export function decodeToken<K extends string>(token: string, keys: readonly K[]): Record<K, string> | undefined {
  if (token === '') return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (parsed && typeof parsed === 'object' && keys.every((k) => k in parsed)) {
      return Object.fromEntries(keys.map((k) => [k, String((parsed as Record<string, unknown>)[k])])) as Record<K, string>;
    }
  } catch {
    // fall through to the error below
  }
  throw invalid('page_token', 'is not a token this list returned');
}
