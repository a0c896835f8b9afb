import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { repoRoot } from './support.js';

/**
 * What the services' code says about their deployment, read from its syntax tree rather than by
 * importing it: the environment variables of their zod schemas, the dependencies they require, and
 * the durable consumers they start. Anything the reader cannot resolve is an error, so a new shape
 * of code fails the tests instead of being skipped.
 */

interface Source {
  path: string;
  file: ts.SourceFile;
}

const parsed = new Map<string, Source>();

function parse(path: string): Source {
  let source = parsed.get(path);
  if (!source) {
    const file = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
    source = { path: relative(repoRoot, path), file };
    parsed.set(path, source);
  }
  return source;
}

/** The non-test TypeScript files of a service's src/. */
function serviceSources(service: string): Source[] {
  const out: Source[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir).sort()) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (path.endsWith('.ts') && !path.endsWith('.test.ts')) out.push(parse(path));
    }
  };
  const src = join(repoRoot, 'services', service, 'src');
  if (existsSync(src)) walk(src);
  return out;
}

function where(source: Source, node: ts.Node): string {
  const { line } = source.file.getLineAndCharacterOfPosition(node.getStart(source.file));
  return `${source.path}:${line + 1}`;
}

function visit(node: ts.Node, fn: (n: ts.Node) => void): void {
  fn(node);
  node.forEachChild((child) => visit(child, fn));
}

/** Top-level `const NAME = <initializer>` of a file, by name (exported or not). */
function topLevelConsts(source: Source): Map<string, ts.Expression> {
  const out = new Map<string, ts.Expression>();
  for (const statement of source.file.statements) {
    if (!ts.isVariableStatement(statement)) continue;
    for (const d of statement.declarationList.declarations) {
      if (ts.isIdentifier(d.name) && d.initializer) out.set(d.name.text, d.initializer);
    }
  }
  return out;
}

function unwrap(e: ts.Expression): ts.Expression {
  while (ts.isAsExpression(e) || ts.isSatisfiesExpression(e) || ts.isParenthesizedExpression(e) || ts.isTypeAssertionExpression(e)) e = e.expression;
  return e;
}

type Value = string | string[];

/** Resolves identifiers to top-level constants: the file's own first, else the one of that name in the service. */
class Scope {
  constructor(private readonly sources: Source[]) {}

  initializer(source: Source, name: string): { source: Source; expression: ts.Expression } | undefined {
    const own = topLevelConsts(source).get(name);
    if (own) return { source, expression: own };
    const found = this.sources.flatMap((s) => {
      const e = topLevelConsts(s).get(name);
      return e ? [{ source: s, expression: e }] : [];
    });
    return found.length === 1 ? found[0] : undefined;
  }

  /** A string or string-array constant expression, with `${x}` / `${x.toLowerCase()}` bound by `bindings`. */
  value(source: Source, e: ts.Expression, bindings: Map<string, string> = new Map()): Value {
    e = unwrap(e);
    if (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) return e.text;
    if (ts.isArrayLiteralExpression(e)) {
      return e.elements.map((el) => {
        const v = this.value(source, el, bindings);
        if (typeof v !== 'string') throw new Error(`${where(source, el)}: nested array`);
        return v;
      });
    }
    if (ts.isTemplateExpression(e)) {
      let text = e.head.text;
      for (const span of e.templateSpans) text += this.bound(source, span.expression, bindings) + span.literal.text;
      return text;
    }
    if (ts.isIdentifier(e)) {
      const bound = bindings.get(e.text);
      if (bound !== undefined) return bound;
      const init = this.initializer(source, e.text);
      if (!init) throw new Error(`${where(source, e)}: cannot resolve ${e.text} to a constant of the service`);
      return this.value(init.source, init.expression, bindings);
    }
    throw new Error(`${where(source, e)}: cannot evaluate ${e.getText(source.file)}`);
  }

  private bound(source: Source, e: ts.Expression, bindings: Map<string, string>): string {
    e = unwrap(e);
    if (ts.isCallExpression(e) && e.arguments.length === 0 && ts.isPropertyAccessExpression(e.expression)) {
      const inner = this.value(source, e.expression.expression, bindings);
      if (typeof inner === 'string' && e.expression.name.text === 'toLowerCase') return inner.toLowerCase();
      if (typeof inner === 'string' && e.expression.name.text === 'toUpperCase') return inner.toUpperCase();
    }
    const v = this.value(source, e, bindings);
    if (typeof v !== 'string') throw new Error(`${where(source, e)}: an array inside a template`);
    return v;
  }
}

function property(object: ts.ObjectLiteralExpression, name: string): ts.Expression | undefined {
  for (const p of object.properties) {
    if (ts.isPropertyAssignment(p) && (ts.isIdentifier(p.name) || ts.isStringLiteral(p.name)) && p.name.text === name) return p.initializer;
    if (ts.isShorthandPropertyAssignment(p) && p.name.text === name) return p.name;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Durable consumers

export interface StartedConsumer {
  service: string;
  stream: string;
  durable: string;
  /** Server-side filters as the bus sets them: namespace-free, without a whole-stream filter. */
  filters: string[];
  at: string;
}

/**
 * Every `startConsumer({...})` of a service: its stream, durable name and filters. A call inside
 * `for (const x of A ?? B)` is expanded over the constant list (B: the default; A is an option
 * tests override), binding `x` in the durable's template.
 */
export function consumersOf(service: string, wholeStream: Record<string, string>): StartedConsumer[] {
  const sources = serviceSources(service);
  const scope = new Scope(sources);
  const out: StartedConsumer[] = [];
  for (const source of sources) {
    visit(source.file, (node) => {
      if (!ts.isCallExpression(node) || !ts.isIdentifier(node.expression) || node.expression.text !== 'startConsumer') return;
      const arg = node.arguments[0] && unwrap(node.arguments[0]);
      if (!arg || !ts.isObjectLiteralExpression(arg)) throw new Error(`${where(source, node)}: startConsumer without an object literal`);
      const streamExpr = property(arg, 'stream');
      const durableExpr = property(arg, 'durable');
      if (!streamExpr || !durableExpr) throw new Error(`${where(source, node)}: startConsumer without stream or durable`);
      const filtersExpr = property(arg, 'filterSubjects');
      for (const bindings of loopBindings(scope, source, node)) {
        const stream = scope.value(source, streamExpr, bindings);
        const durable = scope.value(source, durableExpr, bindings);
        const filters = filtersExpr ? scope.value(source, filtersExpr, bindings) : [];
        if (typeof stream !== 'string' || typeof durable !== 'string') throw new Error(`${where(source, node)}: stream and durable must be strings`);
        const list = typeof filters === 'string' ? [filters] : filters;
        out.push({ service, stream, durable, filters: list.filter((f) => f !== wholeStream[stream]), at: where(source, node) });
      }
    });
  }
  return out;
}

/** One binding set per iteration of the enclosing `for (const x of <constant list>)` loops, or one empty set. */
function loopBindings(scope: Scope, source: Source, node: ts.Node): Map<string, string>[] {
  let sets: Map<string, string>[] = [new Map()];
  for (let p = node.parent; p; p = p.parent) {
    if (!ts.isForOfStatement(p)) continue;
    const decl = ts.isVariableDeclarationList(p.initializer) ? p.initializer.declarations[0] : undefined;
    if (!decl || !ts.isIdentifier(decl.name)) throw new Error(`${where(source, p)}: for-of without a plain variable`);
    let list = unwrap(p.expression);
    if (ts.isBinaryExpression(list) && list.operatorToken.kind === ts.SyntaxKind.QuestionQuestionToken) list = list.right;
    const values = scope.value(source, list);
    if (!Array.isArray(values)) throw new Error(`${where(source, p)}: the loop is not over a constant list`);
    const name = decl.name.text;
    sets = sets.flatMap((s) => values.map((v) => new Map([...s, [name, v]])));
  }
  return sets;
}

// ---------------------------------------------------------------------------------------------
// Environment

export interface EnvVariable {
  name: string;
  /** Neither optional nor defaulted: the service refuses to start without it. */
  required: boolean;
  /** The `.default(...)` value, when a literal. */
  defaultValue?: string;
  /** An empty value reads as unset (the `optional` preprocess helpers); otherwise '' is parsed as a value. */
  emptyIsUnset: boolean;
  at: string;
}

/** The variables of a `z.object({...})` schema. */
function zodObjectVariables(source: Source, object: ts.Expression): EnvVariable[] {
  const call = unwrap(object);
  if (!ts.isCallExpression(call) || call.expression.getText(source.file) !== 'z.object') {
    throw new Error(`${where(source, call)}: expected z.object({...})`);
  }
  const shape = call.arguments[0] && unwrap(call.arguments[0]);
  if (!shape || !ts.isObjectLiteralExpression(shape)) throw new Error(`${where(source, call)}: z.object without an object literal`);
  const helpers = topLevelConsts(source);
  // Local helpers such as `optional(schema)`, `port()` or `flag`: optional when they end in
  // `.optional()`; an empty value reads as unset when they preprocess it.
  const traits = (name: string, seen: Set<string>): { optional: boolean; emptyIsUnset: boolean } => {
    const helper = helpers.get(name);
    if (!helper || seen.has(name)) return { optional: false, emptyIsUnset: false };
    seen.add(name);
    const text = helper.getText(source.file);
    const result = { optional: /\.optional\(\)/.test(text), emptyIsUnset: /\bpreprocess\(/.test(text) };
    visit(helper, (n) => {
      if (!ts.isIdentifier(n) || n.text === name) return;
      const inner = traits(n.text, seen);
      result.optional ||= inner.optional;
      result.emptyIsUnset ||= inner.emptyIsUnset;
    });
    return result;
  };
  return shape.properties.map((p) => {
    if (!ts.isPropertyAssignment(p) || !(ts.isIdentifier(p.name) || ts.isStringLiteral(p.name))) {
      throw new Error(`${where(source, p)}: unexpected member of the env schema`);
    }
    let optional = false;
    let emptyIsUnset = false;
    let hasDefault = false;
    let defaultValue: string | undefined;
    visit(p.initializer, (n) => {
      if (ts.isIdentifier(n) && !(ts.isPropertyAccessExpression(n.parent) && n.parent.name === n)) {
        const t = traits(n.text, new Set());
        optional ||= t.optional;
        emptyIsUnset ||= t.emptyIsUnset;
      }
      if (!ts.isCallExpression(n) || !ts.isPropertyAccessExpression(n.expression)) return;
      const method = n.expression.name.text;
      if (method === 'optional') optional = true;
      if (method === 'preprocess') emptyIsUnset = true;
      if (method === 'default') {
        hasDefault = true;
        const a = n.arguments[0];
        if (a && (ts.isStringLiteral(a) || ts.isNoSubstitutionTemplateLiteral(a))) defaultValue = a.text;
        if (a && ts.isNumericLiteral(a)) defaultValue = String(Number(a.text.replaceAll('_', '')));
      }
    });
    return {
      name: p.name.text,
      required: !optional && !hasDefault,
      ...(defaultValue !== undefined ? { defaultValue } : {}),
      emptyIsUnset,
      at: where(source, p),
    };
  });
}

/** The platform's own variables (libs/platform/src/config.ts `platformEnv`). */
export function platformVariables(): EnvVariable[] {
  const source = parse(join(repoRoot, 'libs/platform/src/config.ts'));
  const init = topLevelConsts(source).get('platformEnv');
  if (!init) throw new Error(`${source.path}: no platformEnv`);
  return zodObjectVariables(source, init);
}

export interface ServiceEnv {
  /** `requires` of the service definition: 'database' and 'nats' make DATABASE_URL / NATS_URL required. */
  requires: string[];
  /** The service's own variables (its `env` schema); empty without one. */
  variables: EnvVariable[];
  at: string;
}

/** The `defineService({...})` of a service: its `requires` and `env` schema. */
export function serviceEnvOf(service: string): ServiceEnv {
  const sources = serviceSources(service);
  const scope = new Scope(sources);
  const found: ServiceEnv[] = [];
  for (const source of sources) {
    visit(source.file, (node) => {
      if (!ts.isCallExpression(node) || !ts.isIdentifier(node.expression) || node.expression.text !== 'defineService') return;
      const arg = node.arguments[0] && unwrap(node.arguments[0]);
      if (!arg || !ts.isObjectLiteralExpression(arg)) throw new Error(`${where(source, node)}: defineService without an object literal`);
      const requiresExpr = property(arg, 'requires');
      const requires = requiresExpr ? scope.value(source, requiresExpr) : [];
      const envExpr = property(arg, 'env');
      let variables: EnvVariable[] = [];
      if (envExpr) {
        const e = unwrap(envExpr);
        const init = ts.isIdentifier(e) ? scope.initializer(source, e.text) : { source, expression: e };
        if (!init) throw new Error(`${where(source, envExpr)}: cannot resolve the env schema`);
        variables = zodObjectVariables(init.source, init.expression);
      }
      found.push({ requires: typeof requires === 'string' ? [requires] : requires, variables, at: where(source, node) });
    });
  }
  if (found.length !== 1) throw new Error(`services/${service}: expected one defineService call, found ${found.length}`);
  return found[0]!;
}
