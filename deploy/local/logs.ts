/** Turns the services' pino JSON lines into short readable lines, prefixed with the service name. */

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const LEVEL_COLOURS: Record<string, number> = { TRACE: 90, DEBUG: 90, INFO: 32, WARN: 33, ERROR: 31, FATAL: 31 };
const NAME_COLOURS = [36, 35, 34, 33, 32, 96, 95];
const HIDDEN = new Set(['level', 'time', 'msg', 'service', 'pid', 'hostname']);

export interface LineFormatter {
  (name: string, line: string): string;
}

/** ANSI colour only when `colour` (a TTY without NO_COLOR). */
export function lineFormatter(options: { colour: boolean; names: readonly string[] }): LineFormatter {
  const width = Math.max(...options.names.map((n) => n.length), 8);
  const paint = (code: number, text: string) => (options.colour ? `\u001b[${code}m${text}\u001b[0m` : text);
  const nameColour = new Map(options.names.map((n, i) => [n, NAME_COLOURS[i % NAME_COLOURS.length]!]));
  return (name, line) => {
    const prefix = paint(nameColour.get(name) ?? 37, name.padEnd(width)) + ' |';
    const parsed = parseJson(line);
    if (!parsed) return `${prefix} ${line}`;
    const level = typeof parsed.level === 'number' ? (LEVELS[parsed.level] ?? String(parsed.level)) : String(parsed.level ?? 'INFO').toUpperCase();
    const time = typeof parsed.time === 'string' || typeof parsed.time === 'number' ? new Date(parsed.time).toISOString().slice(11, 23) : '';
    const fields = Object.entries(parsed)
      .filter(([k]) => !HIDDEN.has(k))
      .map(([k, v]) => `${k}=${formatValue(v)}`)
      .join(' ');
    const stack = typeof (parsed.err as { stack?: unknown } | undefined)?.stack === 'string' ? `\n${(parsed.err as { stack: string }).stack}` : '';
    return `${prefix} ${time} ${paint(LEVEL_COLOURS[level] ?? 37, level.padEnd(5))} ${parsed.msg ?? ''}${fields ? ' ' + paint(90, fields) : ''}${stack}`;
  };
}

function parseJson(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value = JSON.parse(line) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return /\s/.test(v) ? JSON.stringify(v) : v;
  if (v && typeof v === 'object' && 'message' in v && 'type' in v) return JSON.stringify(`${(v as { type: string }).type}: ${(v as { message: string }).message}`);
  return JSON.stringify(v);
}

/** Splits a stream's chunks into whole lines. */
export function lines(onLine: (line: string) => void): { push(chunk: Buffer | string): void; end(): void } {
  let rest = '';
  return {
    push(chunk) {
      const parts = (rest + chunk.toString()).split('\n');
      rest = parts.pop() ?? '';
      for (const part of parts) if (part.trim() !== '') onLine(part);
    },
    end() {
      if (rest.trim() !== '') onLine(rest);
      rest = '';
    },
  };
}
