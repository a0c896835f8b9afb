import { invalid } from './errors.js';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

export function pageSize(requested: number): number {
  if (requested < 0) throw invalid('page_size', 'must not be negative');
  return requested === 0 ? DEFAULT_PAGE_SIZE : Math.min(requested, MAX_PAGE_SIZE);
}

/** Opaque page tokens: base64url JSON of the last row's sort key. */
export function encodeToken(key: readonly string[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

export function decodeToken(token: string, parts: number, pattern: RegExp = /^.{1,200}$/s): string[] | undefined {
  if (!token) return undefined;
  try {
    const key = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(key) && key.length === parts && key.every((k) => typeof k === 'string' && pattern.test(k))) return key as string[];
  } catch {
    // fall through to the error below
  }
  throw invalid('page_token', 'is not a token from a previous response');
}
