/**
 * JSON with exact decimal numbers: values wrapped by `decimal()` are written as bare number literals
 * from their decimal string, so amounts never pass through a binary float.
 */
export class Decimal {
  constructor(readonly literal: string) {
    if (!/^-?(0|[1-9]\d*)(\.\d+)?$/.test(literal)) throw new Error(`not a decimal literal: ${literal}`);
  }
}

export function decimal(literal: string): Decimal {
  return new Decimal(literal);
}

export type RawJson = null | boolean | number | string | Decimal | RawJson[] | { [k: string]: RawJson | undefined };

export function stringifyRaw(value: RawJson): string {
  if (value instanceof Decimal) return value.literal;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stringifyRaw).join(',')}]`;
  const parts: string[] = [];
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    parts.push(`${JSON.stringify(k)}:${stringifyRaw(v)}`);
  }
  return `{${parts.join(',')}}`;
}
