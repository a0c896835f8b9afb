import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The kustomize built into kubectl; the manifests use components and replacements (kustomize v4+). */
export const REQUIRED_KUSTOMIZE_MAJOR = 5;

/** $KUBECTL, else the pinned one from install-kubectl.sh, else the kubectl on PATH. */
export const KUBECTL = process.env.KUBECTL ?? (existsSync(join(repoRoot, 'test/k8s/.kubectl/kubectl')) ? join(repoRoot, 'test/k8s/.kubectl/kubectl') : 'kubectl');

function kubectl(args: string[]): string {
  try {
    return execFileSync(KUBECTL, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`${KUBECTL} not found: run test/k8s/install-kubectl.sh (pinned kubectl with kustomize v5) or set KUBECTL`);
    }
    throw err;
  }
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export const OVERLAYS = ['dev', 'production'] as const;
export type Overlay = (typeof OVERLAYS)[number];

/** The namespace each overlay deploys to. */
export const OVERLAY_NAMESPACE: Record<Overlay, string> = { dev: 'punchcard-dev', production: 'punchcard' };

export function read(path: string): string {
  return readFileSync(join(repoRoot, path), 'utf8');
}

export function parseYamlDocuments(text: string, source: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

export function kustomizeVersion(): string {
  const out = kubectl(['version', '--client', '--output=json']);
  return (JSON.parse(out) as { kustomizeVersion?: string }).kustomizeVersion ?? '';
}

const rendered = new Map<string, K8sObject[]>();

/** `kubectl kustomize <dir>` (relative to the repository root), parsed; cached per directory. */
export function render(dir: string): K8sObject[] {
  let objects = rendered.get(dir);
  if (!objects) {
    const out = kubectl(['kustomize', join(repoRoot, dir)]);
    objects = parseYamlDocuments(out, dir);
    rendered.set(dir, objects);
  }
  return objects;
}

/** Directory names under services/ that are packages: the services the manifests must cover. */
export function serviceDirs(): string[] {
  return readdirSync(join(repoRoot, 'services'))
    .filter((d) => statSync(join(repoRoot, 'services', d)).isDirectory())
    .filter((d) => {
      try {
        return statSync(join(repoRoot, 'services', d, 'package.json')).isFile();
      } catch {
        return false;
      }
    })
    .sort();
}

export function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found;
}

/** Objects of the Punchcard services themselves (not the dev overlay's Postgres and NATS). */
export function punchcardObjects(objects: K8sObject[]): K8sObject[] {
  return objects.filter((o) => o.metadata.labels?.['app.kubernetes.io/part-of'] === 'punchcard');
}

/** The pod template of a workload, or undefined for other kinds. */
export function podSpecOf(o: K8sObject): PodSpec | undefined {
  if (o.kind === 'Deployment' || o.kind === 'Job' || o.kind === 'StatefulSet' || o.kind === 'DaemonSet') {
    return (o as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
  }
  return undefined;
}

export interface Probe {
  httpGet?: { path: string; port: string | number };
  exec?: { command: string[] };
  periodSeconds?: number;
  failureThreshold?: number;
}

export interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  ports?: { name?: string; containerPort: number; protocol?: string }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: unknown } }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    runAsNonRoot?: boolean;
    runAsUser?: number;
    privileged?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    seccompProfile?: { type: string };
  };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

export interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  restartPolicy?: string;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    runAsGroup?: number;
    fsGroup?: number;
    seccompProfile?: { type: string };
  };
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; emptyDir?: { sizeLimit?: string; medium?: string } }[];
}
