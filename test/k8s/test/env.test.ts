import { describe, expect, it } from 'vitest';
import { platformVariables, serviceEnvOf, type EnvVariable } from './service-code.js';
import { find, OVERLAYS, podSpecOf, read, render, serviceDirs, type Container, type K8sObject } from './support.js';

/**
 * The environment each workload gets, checked against what the service's code reads: the platform
 * schema (libs/platform config.ts), the service's own zod `env` schema and its `requires`, all read
 * from the sources. The migration Job runs the same `loadConfig` before `migrate`, so it is held to
 * the same start-up rules; the Deployment also to the rules of a running pod (addresses, ports).
 */

interface Provided {
  name: string;
  from: 'value' | 'configMap' | 'secret' | 'field';
  value?: string;
  secret?: { name: string; key: string; optional?: boolean };
}

type EnvEntry = NonNullable<Container['env']>[number] & { valueFrom?: { secretKeyRef?: { optional?: boolean } } };

function providedEnv(objects: K8sObject[], c: Container): Map<string, Provided> {
  const out = new Map<string, Provided>();
  for (const source of c.envFrom ?? []) {
    if (source.secretRef) throw new Error(`${c.name}: envFrom secretRef hides which keys a pod needs; use secretKeyRef`);
    const name = source.configMapRef?.name ?? '';
    const data = (find(objects, 'ConfigMap', name) as K8sObject & { data?: Record<string, string> }).data ?? {};
    for (const [k, v] of Object.entries(data)) out.set(k, { name: k, from: 'configMap', value: v });
  }
  for (const e of (c.env ?? []) as EnvEntry[]) {
    if (e.value !== undefined) out.set(e.name, { name: e.name, from: 'value', value: e.value });
    else if (e.valueFrom?.secretKeyRef) out.set(e.name, { name: e.name, from: 'secret', secret: e.valueFrom.secretKeyRef });
    else out.set(e.name, { name: e.name, from: 'field' });
  }
  return out;
}

const platform = platformVariables();
const SECRET_NAME = /SECRET|_KEY$|PASSWORD|TOKEN|^DATABASE_URL$|^NATS_URL$/;
const LOOPBACK = /^[a-z]+:\/\/(127\.|localhost\b|\[::1\])/;
/** NODE_ENV of the image (deploy/docker/Dockerfile): the platform refuses AUTH_DEV_MODE under production. */
const IMAGE_NODE_ENV = /\bNODE_ENV=(\S+)/.exec(read('deploy/docker/Dockerfile'))?.[1];

const isSet = (p: Provided | undefined) => p !== undefined && (p.from === 'secret' || (p.value ?? '').trim() !== '');

/** Problems that make `loadConfig` refuse to start: the same for the server and `migrate`. */
function startProblems(service: string, env: Map<string, Provided>): string[] {
  const own = serviceEnvOf(service);
  const known = new Map<string, EnvVariable>([...platform, ...own.variables].map((v) => [v.name, v]));
  const problems: string[] = [];
  for (const p of env.values()) {
    const variable = known.get(p.name);
    if (!variable) {
      problems.push(`${p.name} is not read by ${service} (libs/platform config.ts, ${own.at})`);
      continue;
    }
    if (p.value === '' && !variable.emptyIsUnset) problems.push(`${p.name} is empty, which ${variable.at} parses as a value, not as unset`);
    if (SECRET_NAME.test(p.name) && p.from !== 'secret') problems.push(`${p.name} must come from a Secret, not ${p.from}`);
  }
  for (const v of own.variables.filter((x) => x.required)) {
    if (!isSet(env.get(v.name))) problems.push(`${v.name} is required by ${v.at}`);
  }
  const dependencies: Record<string, string> = { database: 'DATABASE_URL', nats: 'NATS_URL' };
  for (const r of own.requires) {
    const name = dependencies[r];
    if (!name) problems.push(`unknown requirement ${r} (${own.at})`);
    else if (env.get(name)?.from !== 'secret') problems.push(`${name} is required (requires '${r}', ${own.at}) and must come from a Secret`);
  }
  const devMode = ['1', 'true'].includes(env.get('AUTH_DEV_MODE')?.value ?? '');
  const verifiers = [isSet(env.get('AUTH_JWT_SECRET')) && 'AUTH_JWT_SECRET', isSet(env.get('AUTH_JWKS_URL')) && 'AUTH_JWKS_URL', devMode && 'AUTH_DEV_MODE'].filter(Boolean);
  if (verifiers.length !== 1) problems.push(`exactly one of AUTH_JWT_SECRET, AUTH_JWKS_URL, AUTH_DEV_MODE=true; got ${verifiers.join(', ') || 'none'}`);
  const nodeEnv = env.get('NODE_ENV')?.value ?? IMAGE_NODE_ENV;
  if (devMode && nodeEnv === 'production') problems.push('AUTH_DEV_MODE is refused with NODE_ENV=production (set by the image)');
  return problems;
}

describe.each(OVERLAYS)('overlay %s: each workload gets the environment its code requires', (overlay) => {
  const objects = () => render(`k8s/overlays/${overlay}`);
  const container = (o: K8sObject, name: string) => podSpecOf(o)!.containers.find((c) => c.name === name)!;
  const migrationJob = (service: string) =>
    objects().find((o) => o.kind === 'Job' && o.metadata.labels?.['app.kubernetes.io/name'] === service && o.metadata.labels?.['app.kubernetes.io/component'] === 'migration')!;

  describe.each(serviceDirs())('%s', (service) => {
    const deployment = () => find(objects(), 'Deployment', service);
    const serverEnv = () => providedEnv(objects(), container(deployment(), 'server'));

    it('Deployment: starts (every required variable, known names only, secrets from Secrets, one token verifier)', () => {
      expect(startProblems(service, serverEnv())).toEqual([]);
    });

    it('migration Job: `migrate` passes the same configuration checks', () => {
      expect(startProblems(service, providedEnv(objects(), container(migrationJob(service), 'migrate')))).toEqual([]);
    });

    it('Deployment: no variable left at a loopback default, and every address it calls is reachable', () => {
      const env = serverEnv();
      const problems: string[] = [];
      for (const v of serviceEnvOf(service).variables.filter((x) => x.defaultValue && LOOPBACK.test(x.defaultValue))) {
        const value = env.get(v.name)?.value;
        if (!value || LOOPBACK.test(value)) problems.push(`${v.name} defaults to ${v.defaultValue} (${v.at}); set the in-cluster address`);
      }
      // A URL naming a Service of the overlay: the NetworkPolicy lets this pod reach that Service's pods on its port.
      const policy = find(objects(), 'NetworkPolicy', service) as K8sObject & { spec: { egress: EgressRule[] } };
      for (const p of env.values()) {
        if (!p.value || !/^[a-z]+:\/\//.test(p.value)) continue;
        const url = new URL(p.value);
        const target = objects().find((o) => o.kind === 'Service' && o.metadata.name === url.hostname) as ServiceObject | undefined;
        if (!target) continue;
        const port = Number(url.port);
        const servicePort = target.spec.ports.find((sp) => sp.port === port);
        if (!servicePort) {
          problems.push(`${p.name}=${p.value}: Service ${target.metadata.name} has no port ${port}`);
          continue;
        }
        const podLabels = target.spec.selector;
        const allowed = policy.spec.egress.some(
          (r) =>
            r.ports.some((rp) => rp.port === port) &&
            (r.to ?? []).some((t) => t.podSelector && Object.entries(t.podSelector.matchLabels).every(([k, v]) => podLabels[k] === v)),
        );
        if (!allowed) problems.push(`${p.name}=${p.value}: NetworkPolicy ${service} allows no egress to ${target.metadata.name} pods on ${port}`);
      }
      expect(problems).toEqual([]);
    });

    it('Deployment: each port the code listens on is a container port, a Service port and open in the NetworkPolicy', () => {
      const env = serverEnv();
      const variables = [...platform, ...serviceEnvOf(service).variables].filter((v) => /(^|_)PORT$/.test(v.name));
      const listens = variables.flatMap((v) => {
        const value = env.get(v.name)?.value ?? v.defaultValue;
        return value ? [{ variable: v.name, port: Number(value) }] : [];
      });
      expect(listens.map((l) => l.variable)).toEqual(expect.arrayContaining(['PORT', 'OPS_PORT']));
      const ports = container(deployment(), 'server').ports ?? [];
      expect(ports.map((p) => p.containerPort).sort()).toEqual(listens.map((l) => l.port).sort());
      const svc = find(objects(), 'Service', service) as ServiceObject;
      const policy = find(objects(), 'NetworkPolicy', service) as K8sObject & { spec: { ingress: { ports: { port: string | number }[] }[] } };
      const open = policy.spec.ingress.flatMap((r) => r.ports.map((p) => p.port));
      for (const p of ports) {
        expect(svc.spec.ports.some((sp) => sp.targetPort === p.name && sp.port === p.containerPort), `Service port ${p.name}`).toBe(true);
        expect(open, `NetworkPolicy ingress ${p.name}`).toContain(p.name);
      }
    });
  });

  if (overlay === 'dev') {
    it('every Secret key a workload refers to is in the dev Secrets, with a value the service accepts', () => {
      const secrets = new Map(
        objects()
          .filter((o) => o.kind === 'Secret')
          .map((o) => [o.metadata.name, (o as K8sObject & { data?: Record<string, string> }).data ?? {}]),
      );
      const problems: string[] = [];
      for (const o of objects()) {
        for (const c of podSpecOf(o)?.containers ?? []) {
          for (const e of (c.env ?? []) as EnvEntry[]) {
            const ref = e.valueFrom?.secretKeyRef;
            if (!ref || ref.optional) continue;
            const encoded = secrets.get(ref.name)?.[ref.key];
            if (encoded === undefined) {
              problems.push(`${o.kind}/${o.metadata.name}: Secret ${ref.name} has no key ${ref.key}`);
              continue;
            }
            const value = Buffer.from(encoded, 'base64').toString('utf8');
            if (e.name === 'AUTH_JWT_SECRET' && value.length < 32) problems.push(`${ref.name} AUTH_JWT_SECRET: at least 32 characters`);
            if (e.name === 'BILLING_SECRETS_KEY') {
              const bytes = /^[0-9a-fA-F]{64}$/.test(value) ? 32 : Buffer.from(value, 'base64').length;
              if (bytes !== 32) problems.push(`${ref.name} BILLING_SECRETS_KEY: 32 bytes, base64 or hex`);
            }
          }
        }
      }
      expect(problems).toEqual([]);
    });
  }
});

describe('the reader of the services code', () => {
  it('sees the platform schema and the services own variables', () => {
    expect(platform.map((v) => v.name)).toEqual(expect.arrayContaining(['DATABASE_URL', 'NATS_URL', 'AUTH_JWT_SECRET', 'PORT', 'OPS_PORT']));
    expect(platform.every((v) => !v.required && v.emptyIsUnset)).toBe(true);
    expect(serviceDirs().every((s) => serviceEnvOf(s).requires.length > 0)).toBe(true);
    expect(serviceDirs().flatMap((s) => serviceEnvOf(s).variables).length).toBeGreaterThan(0);
  });
});

interface EgressRule {
  to?: { podSelector?: { matchLabels: Record<string, string> } }[];
  ports: { port: string | number }[];
}
type ServiceObject = K8sObject & {
  spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: string | number }[] };
};
