import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isBuiltIn, schemaErrors, unknownFieldErrors } from './schema.js';
import {
  find,
  kustomizeVersion,
  OVERLAY_NAMESPACE,
  OVERLAYS,
  podSpecOf,
  punchcardObjects,
  render,
  repoRoot,
  REQUIRED_KUSTOMIZE_MAJOR,
  serviceDirs,
  type Container,
  type K8sObject,
  type PodSpec,
} from './support.js';

/**
 * The agreed ports (brief), other ports a service listens on (billing's processor webhooks,
 * WEBHOOK_PORT), the keys of its Secret, and the services whose API it calls.
 */
const SERVICES: Record<string, { port: number; opsPort: number; webhookPort?: number; secretKeys?: string[]; calls?: string[] }> = {
  catalogue: { port: 7101, opsPort: 7201 },
  'entitlement-ledger': { port: 7102, opsPort: 7202 },
  'expiry-scheduler': { port: 7103, opsPort: 7203, calls: ['entitlement-ledger'] },
  'revenue-recognition': { port: 7104, opsPort: 7204 },
  'billing-integration': { port: 7105, opsPort: 7205, webhookPort: 7305, secretKeys: ['BILLING_SECRETS_KEY'], calls: ['entitlement-ledger'] },
};
const schemaOf = (service: string) => service.replaceAll('-', '_');
const SECRET_KEYS = ['DATABASE_URL', 'NATS_URL', 'AUTH_JWT_SECRET'];
const KINDS_PER_SERVICE = [
  'ServiceAccount',
  'NetworkPolicy',
  'Job',
  'Deployment',
  'Service',
  'PodDisruptionBudget',
  'HorizontalPodAutoscaler',
  'ConfigMap',
];

describe('kustomize', () => {
  it(`is kubectl's built-in kustomize v${REQUIRED_KUSTOMIZE_MAJOR}`, () => {
    expect(kustomizeVersion()).toMatch(new RegExp(`^v${REQUIRED_KUSTOMIZE_MAJOR}\\.`));
  });

  it.each(['k8s/base', ...OVERLAYS.map((o) => `k8s/overlays/${o}`), 'k8s/nack'])('renders %s', (dir) => {
    expect(render(dir).length).toBeGreaterThan(0);
  });
});

describe('every service in services/ has its manifests', () => {
  it('k8s/base has one directory per service, and the agreed ports cover the same services', () => {
    const services = serviceDirs();
    expect(services.length).toBeGreaterThan(0);
    expect(Object.keys(SERVICES).sort()).toEqual(services);
    for (const service of services) expect(existsSync(join(repoRoot, 'k8s/base', service, 'kustomization.yaml'))).toBe(true);
  });

  it.each(['k8s/base', ...OVERLAYS.map((o) => `k8s/overlays/${o}`)])('%s has every kind for every service', (dir) => {
    const objects = punchcardObjects(render(dir));
    for (const service of serviceDirs()) {
      const kinds = objects.filter((o) => o.metadata.labels?.['app.kubernetes.io/name'] === service).map((o) => o.kind);
      expect([...kinds].sort(), service).toEqual([...KINDS_PER_SERVICE].sort());
    }
  });
});

describe.each(OVERLAYS)('overlay %s', (overlay) => {
  const dir = `k8s/overlays/${overlay}`;
  const objects = () => render(dir);
  const version = () => {
    const deployment = find(objects(), 'Deployment', 'catalogue');
    return deployment.metadata.labels?.['app.kubernetes.io/version'] ?? '';
  };

  it('validates against the Kubernetes schemas, with no unknown fields', async () => {
    const all = objects();
    expect(all.every(isBuiltIn), 'only built-in kinds (NACK resources live in k8s/nack)').toBe(true);
    const errors: string[] = [];
    for (const o of all) for (const e of await schemaErrors(o)) errors.push(`${o.kind}/${o.metadata.name}${e}`);
    errors.push(...unknownFieldErrors(all));
    expect(errors).toEqual([]);
  });

  it(`puts everything in namespace ${OVERLAY_NAMESPACE[overlay]}`, () => {
    const namespace = OVERLAY_NAMESPACE[overlay];
    expect(find(objects(), 'Namespace', namespace).metadata.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
    for (const o of objects().filter((o) => o.kind !== 'Namespace')) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(namespace);
  });

  it('labels every object with its rollout phase; the pre-deploy phase needs nothing from the deploy phase', () => {
    for (const o of objects()) {
      expect(['pre-deploy', 'deploy'], `${o.kind}/${o.metadata.name}`).toContain(o.metadata.labels?.['punchcard.io/rollout-phase']);
    }
    const preDeploy = objects().filter((o) => o.metadata.labels?.['punchcard.io/rollout-phase'] === 'pre-deploy');
    const names = (kind: string) => new Set(preDeploy.filter((o) => o.kind === kind).map((o) => o.metadata.name));
    for (const job of preDeploy.filter((o) => o.kind === 'Job')) {
      const pod = podSpecOf(job)!;
      if (overlay === 'dev') {
        // Production Secrets are created outside git before the first rollout (deploy/README.md).
        for (const ref of secretRefs(pod)) expect(names('Secret'), job.metadata.name).toContain(ref);
      }
      expect(names('ServiceAccount')).toContain(pod.serviceAccountName);
      expect(configMapRefs(pod)).toEqual([]);
      expect(names('NetworkPolicy')).toContain(job.metadata.labels?.['app.kubernetes.io/name']);
    }
  });

  it('stamps one release version on every image and migration Job, never latest', () => {
    expect(version()).toMatch(/^[0-9a-z][0-9a-z.-]*$/);
    expect(version()).not.toBe('latest');
    for (const o of punchcardObjects(objects())) {
      const pod = podSpecOf(o);
      if (!pod) continue;
      for (const c of pod.containers) expect(c.image, `${o.kind}/${o.metadata.name}`).toMatch(new RegExp(`/${o.metadata.labels?.['app.kubernetes.io/name']}:${escape(version())}$`));
    }
    for (const o of objects()) {
      for (const c of podSpecOf(o)?.containers ?? []) expect(c.image).toMatch(/:[0-9][^:]*$|:dev$/);
    }
  });

  it('runs every pod under the restricted Pod Security Standard', () => {
    for (const o of objects()) {
      const pod = podSpecOf(o);
      if (!pod) continue;
      const where = `${o.kind}/${o.metadata.name}`;
      expect(pod.hostNetwork ?? false, where).toBe(false);
      expect(pod.hostPID ?? false, where).toBe(false);
      expect(pod.hostIPC ?? false, where).toBe(false);
      expect(pod.automountServiceAccountToken, where).toBe(false);
      expect(pod.securityContext?.runAsNonRoot, where).toBe(true);
      expect(pod.securityContext?.runAsUser, where).toBeGreaterThan(0);
      expect(pod.securityContext?.seccompProfile?.type, where).toBe('RuntimeDefault');
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        expect(c.securityContext?.allowPrivilegeEscalation, `${where} ${c.name}`).toBe(false);
        expect(c.securityContext?.privileged ?? false, `${where} ${c.name}`).toBe(false);
        expect(c.securityContext?.capabilities?.drop, `${where} ${c.name}`).toEqual(['ALL']);
        expect(c.securityContext?.capabilities?.add ?? [], `${where} ${c.name}`).toEqual([]);
        expect(c.securityContext?.readOnlyRootFilesystem, `${where} ${c.name}`).toBe(true);
        expect(c.resources?.limits?.memory, `${where} ${c.name}`).toBeDefined();
        expect(c.resources?.requests?.cpu, `${where} ${c.name}`).toBeDefined();
      }
    }
  });

  it('commits no production credentials: Secrets only in dev, generated from dev-only literals', () => {
    const secrets = objects().filter((o) => o.kind === 'Secret');
    if (overlay === 'production') expect(secrets).toEqual([]);
    else for (const s of secrets) expect(s.metadata.name).toMatch(/^(punchcard-[a-z-]+|postgres-dev)$/);
  });

  describe.each(Object.keys(SERVICES))('%s', (service) => {
    const { port, opsPort, webhookPort, secretKeys = [], calls = [] } = SERVICES[service]!;
    const deployment = () => find(objects(), 'Deployment', service);
    const pod = () => podSpecOf(deployment())!;
    const server = () => container(pod(), 'server');
    const config = () => {
      const name = server().envFrom?.find((e) => e.configMapRef)?.configMapRef?.name;
      return find(objects(), 'ConfigMap', name ?? '') as K8sObject & { data: Record<string, string> };
    };

    it('Deployment: ports, config, Secret references, /tmp and no replica count of its own', () => {
      expect(server().ports).toEqual([
        { name: 'grpc', containerPort: port, protocol: 'TCP' },
        { name: 'ops', containerPort: opsPort, protocol: 'TCP' },
        ...(webhookPort ? [{ name: 'webhooks', containerPort: webhookPort, protocol: 'TCP' }] : []),
      ]);
      expect(config().metadata.name).toMatch(new RegExp(`^${service}-config-[a-z0-9]{10}$`));
      expect(config().data).toMatchObject({
        SERVICE_NAME: service,
        PORT: String(port),
        OPS_PORT: String(opsPort),
        DATABASE_SCHEMA: schemaOf(service),
        BUS_NAMESPACE: '',
      });
      if (webhookPort) expect(config().data.WEBHOOK_PORT).toBe(String(webhookPort));
      expect(config().data.OTEL_EXPORTER_OTLP_ENDPOINT).toMatch(/^http:\/\/[a-z0-9.-]+:4318$/);
      const secretEnv = (server().env ?? []).filter((e) => e.valueFrom?.secretKeyRef);
      expect(secretEnv.map((e) => e.name).sort()).toEqual([...SECRET_KEYS, ...secretKeys].sort());
      for (const env of secretEnv) expect(env.valueFrom?.secretKeyRef, env.name).toEqual({ name: `punchcard-${service}`, key: env.name });
      expect(pod().serviceAccountName).toBe(service);
      expect(server().volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
      expect(pod().volumes?.find((v) => v.name === 'tmp')?.emptyDir).toBeDefined();
      expect((deployment() as unknown as { spec: { replicas?: number } }).spec.replicas).toBeUndefined();
    });

    it('Deployment: startup, readiness and liveness probes on the ops port', () => {
      expect(server().startupProbe?.httpGet).toEqual({ path: '/healthz', port: 'ops' });
      expect(server().readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'ops' });
      expect(server().livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'ops' });
      const startupBudget = (server().startupProbe?.periodSeconds ?? 10) * (server().startupProbe?.failureThreshold ?? 3);
      expect(startupBudget).toBeGreaterThanOrEqual(30);
    });

    it('Deployment: the termination grace period covers the preStop pause and the drain', () => {
      const drainMs = Number(config().data.SHUTDOWN_GRACE_MS);
      expect(drainMs).toBeGreaterThan(0);
      const preStop = server().lifecycle?.preStop?.exec?.command ?? [];
      expect(preStop[0]).toBe('sleep');
      const pauseMs = Number(preStop[1]) * 1000;
      expect((pod().terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThan(pauseMs + drainMs);
    });

    it('Service: gRPC (h2c) and metrics ports onto the server pods', () => {
      const svc = find(objects(), 'Service', service) as K8sObject & {
        spec: { selector: Record<string, string>; ports: { name: string; port: number; targetPort: string; appProtocol?: string }[] };
      };
      expect(svc.spec.ports).toEqual([
        { name: 'grpc', port, targetPort: 'grpc', protocol: 'TCP', appProtocol: 'kubernetes.io/h2c' },
        { name: 'metrics', port: opsPort, targetPort: 'ops', protocol: 'TCP', appProtocol: 'http' },
        ...(webhookPort ? [{ name: 'webhooks', port: webhookPort, targetPort: 'webhooks', protocol: 'TCP', appProtocol: 'http' }] : []),
      ]);
      expect(selects(svc.spec.selector, templateLabels(deployment()))).toBe(true);
      expect(selects(svc.spec.selector, templateLabels(find(objects(), 'Job', `${service}-migrate-${version()}`)))).toBe(false);
    });

    it('PodDisruptionBudget and HorizontalPodAutoscaler govern the Deployment', () => {
      const pdb = find(objects(), 'PodDisruptionBudget', service) as K8sObject & { spec: { selector: { matchLabels: Record<string, string> }; maxUnavailable?: number } };
      expect(selects(pdb.spec.selector.matchLabels, templateLabels(deployment()))).toBe(true);
      expect(pdb.spec.maxUnavailable).toBe(1);
      const hpa = find(objects(), 'HorizontalPodAutoscaler', service) as K8sObject & {
        spec: { scaleTargetRef: unknown; minReplicas: number; maxReplicas: number };
      };
      expect(hpa.apiVersion).toBe('autoscaling/v2');
      expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: service });
      expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(overlay === 'production' ? 3 : 1);
      expect(hpa.spec.maxReplicas).toBeGreaterThanOrEqual(hpa.spec.minReplicas);
    });

    it('migration Job: `node dist/main.js migrate` from the same image, before the Deployment', () => {
      const job = find(objects(), 'Job', `${service}-migrate-${version()}`);
      const migrate = container(podSpecOf(job)!, 'migrate');
      expect(job.metadata.labels?.['punchcard.io/rollout-phase']).toBe('pre-deploy');
      expect(deployment().metadata.labels?.['punchcard.io/rollout-phase']).toBe('deploy');
      expect(migrate.image).toBe(server().image);
      expect(migrate.command).toBeUndefined();
      expect(migrate.args).toEqual(['node', 'dist/main.js', 'migrate']);
      expect(podSpecOf(job)!.restartPolicy).toBe('Never');
      const env = Object.fromEntries((migrate.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.secretKeyRef]));
      // `migrate` validates the whole configuration first, so it gets the same Secret keys as the server.
      expect(env).toMatchObject({
        SERVICE_NAME: service,
        DATABASE_SCHEMA: schemaOf(service),
        ...Object.fromEntries([...SECRET_KEYS, ...secretKeys].map((key) => [key, { name: `punchcard-${service}`, key }])),
      });
    });

    it('NetworkPolicy: only what the service needs', () => {
      const policy = find(objects(), 'NetworkPolicy', service) as K8sObject & { spec: NetworkPolicySpec };
      expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
      expect(selects(policy.spec.podSelector.matchLabels, templateLabels(deployment()))).toBe(true);
      expect(selects(policy.spec.podSelector.matchLabels, templateLabels(find(objects(), 'Job', `${service}-migrate-${version()}`)))).toBe(true);

      const ingressPorts = policy.spec.ingress.flatMap((r) => r.ports.map((p) => p.port)).sort();
      expect(ingressPorts).toEqual(['grpc', 'ops', ...(webhookPort ? ['webhooks'] : [])].sort());
      if (webhookPort) {
        const webhooks = policy.spec.ingress.find((r) => r.ports.some((p) => p.port === 'webhooks'))!;
        expect(webhooks.from, 'processors reach the webhooks through the ingress controller only').toEqual([
          { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } },
        ]);
      }
      const metrics = policy.spec.ingress.find((r) => r.ports.some((p) => p.port === 'ops'))!;
      expect(metrics.from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]);
      const grpcFrom = policy.spec.ingress.find((r) => r.ports.some((p) => p.port === 'grpc'))!.from;
      const fromIngressController = grpcFrom.some((f) => f.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'ingress-nginx');
      expect(fromIngressController, 'public API behind the ingress').toBe(service !== 'expiry-scheduler');

      const egressPorts = policy.spec.egress.flatMap((r) => r.ports.map((p) => `${p.port}/${p.protocol}`)).sort();
      const expected = ['53/UDP', '53/TCP', '5432/TCP', '4222/TCP', '4318/TCP', ...calls.map((c) => `${SERVICES[c]!.port}/TCP`)];
      if (service === 'billing-integration') expected.push('443/TCP');
      expect(egressPorts).toEqual(expected.sort());
      for (const callee of calls) {
        const toCallee = policy.spec.egress.find((r) => r.ports.some((p) => p.port === SERVICES[callee]!.port))!;
        const pods = find(objects(), 'Deployment', callee);
        expect(toCallee.to?.every((t) => t.podSelector && selects(t.podSelector.matchLabels, templateLabels(pods))), callee).toBe(true);
      }
    });
  });
});

describe('overlays differ where they should', () => {
  it('dev: debug logs, local images; production: info logs, a registry, bigger pods; neither in auth dev mode', () => {
    const data = (overlay: string) =>
      (render(`k8s/overlays/${overlay}`).find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('catalogue-config')) as unknown as { data: Record<string, string> }).data;
    // The images run with NODE_ENV=production, where the platform refuses AUTH_DEV_MODE.
    expect(data('dev')).toMatchObject({ AUTH_DEV_MODE: 'false', LOG_LEVEL: 'debug' });
    expect(data('production')).toMatchObject({ AUTH_DEV_MODE: 'false', LOG_LEVEL: 'info' });
    const server = (overlay: string) => container(podSpecOf(find(render(`k8s/overlays/${overlay}`), 'Deployment', 'catalogue'))!, 'server');
    expect(server('dev').image).toBe('punchcard/catalogue:dev');
    expect(server('production').image).toMatch(/^[a-z0-9.-]+\/punchcard\/catalogue:/);
    expect(memoryMi(server('production').resources?.requests?.memory)).toBeGreaterThan(memoryMi(server('dev').resources?.requests?.memory));
  });
});

interface NetworkPolicyPeer {
  podSelector?: { matchLabels: Record<string, string> };
  namespaceSelector?: { matchLabels?: Record<string, string> };
  ipBlock?: { cidr: string; except?: string[] };
}
interface NetworkPolicySpec {
  podSelector: { matchLabels: Record<string, string> };
  policyTypes: string[];
  ingress: { from: NetworkPolicyPeer[]; ports: { port: string | number; protocol: string }[] }[];
  egress: { to?: NetworkPolicyPeer[]; ports: { port: string | number; protocol: string }[] }[];
}

function container(pod: PodSpec, name: string): Container {
  const c = pod.containers.find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
}

function templateLabels(o: K8sObject): Record<string, string> {
  return (o as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } }).spec.template.metadata.labels;
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function secretRefs(pod: PodSpec): string[] {
  return pod.containers.flatMap((c) => [
    ...(c.env ?? []).flatMap((e) => (e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef.name] : [])),
    ...(c.envFrom ?? []).flatMap((e) => (e.secretRef ? [e.secretRef.name] : [])),
  ]);
}

function configMapRefs(pod: PodSpec): string[] {
  return pod.containers.flatMap((c) => (c.envFrom ?? []).flatMap((e) => (e.configMapRef ? [e.configMapRef.name] : [])));
}

function memoryMi(quantity: string | undefined): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(quantity ?? '');
  if (!m) throw new Error(`unexpected memory quantity ${quantity}`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
