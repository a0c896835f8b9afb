import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import type { K8sObject } from './support.js';

const require = createRequire(import.meta.url);
const modelsRoot = dirname(require.resolve('kubernetes-models/package.json'));

/** The kubernetes-models module of an apiVersion (`v1`, `apps/v1`, `networking.k8s.io/v1`), if it models it. */
function modelModule(apiVersion: string): string | undefined {
  return existsSync(join(modelsRoot, apiVersion, 'index.js')) ? `kubernetes-models/${apiVersion}` : undefined;
}

export function isBuiltIn(o: K8sObject): boolean {
  const module = modelModule(o.apiVersion);
  return module !== undefined && existsSync(join(modelsRoot, o.apiVersion, `${o.kind}.d.ts`));
}

/**
 * Validates against the Kubernetes 1.27 OpenAPI schema that kubernetes-models compiles (types,
 * formats, required fields, enums). Returns the error messages; empty when valid.
 */
export async function schemaErrors(o: K8sObject): Promise<string[]> {
  const module = modelModule(o.apiVersion);
  if (!module) return [`${o.apiVersion} is not a built-in Kubernetes API version`];
  const models = (await import(module)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = models[o.kind];
  if (!Model) return [`${o.apiVersion} has no kind ${o.kind}`];
  try {
    new Model(withUnwrappedSecretData(o)).validate();
    return [];
  } catch (err) {
    const errors = (err as { errors?: { instancePath: string; message?: string }[] }).errors;
    return errors?.map((e) => `${e.instancePath || '/'}: ${e.message ?? 'invalid'}`) ?? [(err as Error).message];
  }
}

/**
 * kustomize wraps long base64 Secret values over several lines; the API server's base64 decoding
 * ignores line breaks, the schema's `byte` format does not.
 */
function withUnwrappedSecretData(o: K8sObject): K8sObject {
  const data = o.kind === 'Secret' ? (o.data as Record<string, string> | undefined) : undefined;
  if (!data) return o;
  return { ...o, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.replace(/\s+/g, '')])) };
}

/**
 * The OpenAPI schema does not forbid unknown fields, so a misspelt field (`readinesProbe`) would pass
 * and be dropped by the API server. TypeScript's excess-property check on the same models' interfaces
 * catches those: each object becomes a typed object literal and the compiler reports what is unknown.
 */
export function unknownFieldErrors(objects: K8sObject[]): string[] {
  const builtIns = objects.filter(isBuiltIn);
  const lines = builtIns.map((o, i) => {
    const type = `I${o.kind}`;
    return `import type { ${type} as T${i} } from "kubernetes-models/${o.apiVersion}/${o.kind}";\nexport const o${i}: T${i} = ${JSON.stringify(o)};`;
  });
  // A virtual file inside this package, so "kubernetes-models" resolves from its node_modules.
  const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'rendered-objects.ts');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const source = lines.join('\n');
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) =>
    name === file ? ts.createSourceFile(name, source, language) : getSourceFile(name, language, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === file ? source : readFile(name));
  const program = ts.createProgram({ rootNames: [file], options, host });
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (d.file !== undefined && d.start !== undefined && d.file.fileName === file) {
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      const o = builtIns[Math.floor(line / 2)];
      return o ? `${o.kind}/${o.metadata.name}: ${message}` : message;
    }
    return message;
  });
}
