import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { OVERLAY_NAMESPACE, OVERLAYS, punchcardObjects, read, render, repoRoot, type K8sObject } from './support.js';

const README = 'deploy/README.md';
const readme = read(README);

/** The shell, SQL and YAML blocks, plus inline code: where an SRE copies names from. */
const code = [...readme.matchAll(/```[a-z]*\n([\s\S]*?)```/g), ...readme.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!).join('\n');

const all = () => OVERLAYS.flatMap((o) => render(`k8s/overlays/${o}`));
const names = (kind: string) => new Set(all().filter((o) => o.kind === kind).map((o) => o.metadata.name));
const nack = () => render('k8s/nack');
const nackStreams = () => new Set(nack().filter((o) => o.kind === 'Stream').map((o) => (o.spec as { name: string }).name));
const nackConsumers = () =>
  nack()
    .filter((o) => o.kind === 'Consumer')
    .map((o) => o.spec as { streamName: string; durableName: string });
const schemas = () =>
  new Set(
    all()
      .filter((o): o is K8sObject & { data: Record<string, string> } => o.kind === 'ConfigMap' && o.metadata.name.includes('-config-'))
      .map((o) => o.data.DATABASE_SCHEMA!),
  );
const unique = (values: string[]) => [...new Set(values)];

describe('deploy/README.md names what the manifests define', () => {
  it('deployments, services and autoscalers', () => {
    const refs = unique([...code.matchAll(/\bdeployment\/([a-z$][a-z0-9$-]*)/g)].map((m) => m[1]!)).filter((n) => !n.includes('$'));
    const loops = [...code.matchAll(/for d in ([a-z -]+); do/g)].flatMap((m) => m[1]!.trim().split(/\s+/));
    expect(refs.length + loops.length).toBeGreaterThan(0);
    for (const name of [...refs, ...loops]) expect(names('Deployment'), name).toContain(name);
    for (const m of code.matchAll(/port-forward svc\/([a-z-]+) (\d+):(\d+)/g)) {
      const svc = all().find((o) => o.kind === 'Service' && o.metadata.name === m[1]) as K8sObject & { spec: { ports: { port: number }[] } };
      expect(svc, m[1]).toBeDefined();
      expect(svc.spec.ports.map((p) => p.port)).toContain(Number(m[3]));
    }
    for (const m of code.matchAll(/patch hpa ([a-z-]+)/g)) expect(names('HorizontalPodAutoscaler')).toContain(m[1]);
  });

  it('migration Jobs, labels, namespaces, Secrets and paths', () => {
    const jobs = [...names('Job')];
    for (const m of code.matchAll(/job\/([a-z-]+)-\$VERSION|delete job ([a-z-]+)-\$VERSION/g)) {
      const base = m[1] ?? m[2]!;
      expect(jobs.some((j) => j.startsWith(`${base}-`)), base).toBe(true);
    }
    const labels = new Set(all().flatMap((o) => Object.entries({ ...o.metadata.labels, ...templateLabels(o) }).map(([k, v]) => `${k}=${v}`)));
    for (const m of code.matchAll(/-l ([a-z0-9./=,$A-Z-]+)/g)) {
      for (const pair of m[1]!.split(',')) {
        if (pair.endsWith('$VERSION')) continue;
        expect(labels, pair).toContain(pair);
      }
    }
    const namespaces = new Set<string>([...Object.values(OVERLAY_NAMESPACE), 'observability']);
    for (const m of code.matchAll(/ -n ([a-z-]+)/g)) expect(namespaces, m[1]).toContain(m[1]);
    const secretRefs = new Set(all().flatMap((o) => secretKeyRefNames(o)));
    for (const m of code.matchAll(/secret generic ([a-z-]+)/g)) expect(secretRefs, m[1]).toContain(m[1]);
    // The Secret keys the workloads refer to: the README creates every one of them, and no other.
    const secretKeys = unique(punchcardObjects(all()).flatMap((o) => secretKeyRefKeys(o))).sort();
    const created = unique([...code.matchAll(/--from-literal=([A-Z_]+)=/g)].map((m) => m[1]!)).sort();
    expect(created).toEqual(secretKeys);
    for (const m of code.matchAll(/(?<![\w/.-])((?:k8s|deploy|test\/k8s)\/[a-z0-9/._-]*[a-z0-9])/g)) {
      expect(existsSync(join(repoRoot, m[1]!)), m[1]).toBe(true);
    }
  });

  it('streams, consumers and dead-letter subjects', () => {
    const streams = nackStreams();
    const byDurable = new Map(nackConsumers().map((c) => [c.durableName, c.streamName]));
    const streamRefs = [...code.matchAll(/nats stream (?:info|view|subjects|purge(?: -f)?) ([A-Z]+)/g)].map((m) => m[1]!);
    expect(streamRefs.length).toBeGreaterThan(0);
    for (const s of streamRefs) expect(streams, s).toContain(s);
    const consumerRefs = [...code.matchAll(/nats consumer (?:info|rm(?: -f)?|add|next) ([A-Z]+) ([a-z_]+)/g)];
    expect(consumerRefs.length).toBeGreaterThan(0);
    for (const m of consumerRefs) expect(byDurable.get(m[2]!), `${m[1]} ${m[2]}`).toBe(m[1]);
    for (const m of code.matchAll(/punchcard\.deadletter\.([a-z_]+)/g)) expect(byDurable.has(m[1]!), m[1]).toBe(true);
    for (const m of code.matchAll(/\.consumer == "([a-z_]+)"/g)) expect(byDurable.has(m[1]!), m[1]).toBe(true);
    // A consumer recreated by hand gets the filters the service would give it.
    for (const m of code.matchAll(/nats consumer add ([A-Z]+) ([a-z_]+)((?:[^\n]*\\\n)*[^\n]*)/g)) {
      const spec = nackConsumers().find((c) => c.durableName === m[2]) as { filterSubject?: string; filterSubjects?: string[] } | undefined;
      const nackFilters = [...(spec?.filterSubjects ?? []), ...(spec?.filterSubject ? [spec.filterSubject] : [])].sort();
      const filters = [...m[3]!.matchAll(/--filter '([^']+)'/g)].map((f) => f[1]!).sort();
      expect(filters, `nats consumer add ${m[1]} ${m[2]}`).toEqual(nackFilters);
    }
  });

  it('the table lists every service with its ports, schema and consumers', () => {
    const rows = [...readme.matchAll(/^\| `([a-z-]+)` \| (\d+) \| (\d+) \| `([a-z_]+)` \| ([A-Z]+) \| (.*) \|$/gm)];
    const deployments = all().filter((o) => o.kind === 'Deployment' && o.metadata.labels?.['app.kubernetes.io/part-of'] === 'punchcard');
    expect(unique(rows.map((r) => r[1]!)).sort()).toEqual(unique(deployments.map((d) => d.metadata.name)).sort());
    for (const [, service, port, opsPort, schema, , consumed] of rows) {
      const config = all().find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith(`${service}-config-`)) as K8sObject & { data: Record<string, string> };
      expect(config.data).toMatchObject({ PORT: port, OPS_PORT: opsPort, DATABASE_SCHEMA: schema });
      const listed = [...consumed!.matchAll(/`([a-z_]+)` \(([A-Z]+)\)/g)].map((m) => `${m[2]} ${m[1]}`).sort();
      const declared = nack()
        .filter((o) => o.kind === 'Consumer' && o.metadata.labels?.['app.kubernetes.io/name'] === service)
        .map((o) => `${(o.spec as { streamName: string }).streamName} ${(o.spec as { durableName: string }).durableName}`)
        .sort();
      expect(listed, service).toEqual(declared);
    }
  });

  it('schemas and tables of the SQL queries', () => {
    const refs = [...code.matchAll(/(?<!['\w.])([a-z_]+)\.(outbox|inbox)\b/g)];
    expect(refs.length).toBeGreaterThan(0);
    // `punchcard.outbox` is the advisory lock's key, not a schema.
    for (const m of refs.filter((r) => r[1] !== 'punchcard')) expect(schemas(), m[1]).toContain(m[1]);
    for (const m of code.matchAll(/hashtext\('([a-z_]+)'\)/g)) {
      if (m[1] !== 'punchcard.outbox') expect(schemas(), m[1]).toContain(m[1]);
    }
    expect(code).toMatch(/hashtext\('punchcard\.outbox'\)/);
    // The relay deletes what it has published: every outbox row is unpublished, and no column says so.
    expect(code).toMatch(/count\(\*\) as unpublished[^;]*from entitlement_ledger\.outbox;/);
    expect(code).not.toMatch(/published_at/);
  });

  it('log lines and headers it greps for exist in the code', () => {
    const sources = sourceText(['libs', 'services']);
    const phrases = [
      ...[...code.matchAll(/grep -E '([^']+)'/g)].flatMap((m) => expandAlternation(m[1]!)),
      ...[...readme.matchAll(/^ {3}- `([a-z][^`]+)`/gm)].map((m) => m[1]!),
      ...[...readme.matchAll(/`(punchcard-(?:deadletter|original|delivery)-[a-z-]+)`/g)].map((m) => m[1]!),
    ];
    expect(phrases.length).toBeGreaterThan(3);
    for (const phrase of unique(phrases)) expect(sources.includes(phrase), phrase).toBe(true);
  });
});

describe('deploy/otel-collector.yaml', () => {
  const config = parse(read('deploy/otel-collector.yaml')) as {
    receivers: Record<string, { protocols?: Record<string, { endpoint: string }> }>;
    processors: Record<string, unknown>;
    exporters: Record<string, unknown>;
    extensions?: Record<string, unknown>;
    service: { extensions?: string[]; pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }> };
  };

  it('receives OTLP on the port the services export to', () => {
    const endpoints = all()
      .filter((o): o is K8sObject & { data: Record<string, string> } => o.kind === 'ConfigMap' && 'OTEL_EXPORTER_OTLP_ENDPOINT' in ((o as { data?: object }).data ?? {}))
      .map((o) => new URL(o.data.OTEL_EXPORTER_OTLP_ENDPOINT!).port);
    expect(unique(endpoints)).toEqual(['4318']);
    expect(config.receivers.otlp?.protocols?.http?.endpoint).toMatch(/:4318$/);
    expect(config.receivers.otlp?.protocols?.grpc?.endpoint).toMatch(/:4317$/);
  });

  it('exports traces to a tracing backend over OTLP and to the debug exporter', () => {
    const traces = config.service.pipelines.traces!;
    expect(traces.receivers).toContain('otlp');
    expect(traces.exporters).toContain('debug');
    expect(traces.exporters.some((e) => e.startsWith('otlp/') || e === 'otlp')).toBe(true);
    for (const pipeline of Object.values(config.service.pipelines)) {
      for (const r of pipeline.receivers) expect(config.receivers, r).toHaveProperty([r]);
      for (const p of pipeline.processors ?? []) expect(config.processors, p).toHaveProperty([p]);
      for (const e of pipeline.exporters) expect(config.exporters, e).toHaveProperty([e]);
    }
    for (const x of config.service.extensions ?? []) expect(config.extensions, x).toHaveProperty([x]);
    expect(traces.processors?.[0]).toBe('memory_limiter');
    expect(traces.processors?.at(-1)).toBe('batch');
  });
});

function secretKeyRefNames(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(secretKeyRefNames);
  if (value === null || typeof value !== 'object') return [];
  const ref = (value as { secretKeyRef?: { name?: string } }).secretKeyRef?.name;
  return [...(ref ? [ref] : []), ...Object.values(value).flatMap(secretKeyRefNames)];
}

function secretKeyRefKeys(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(secretKeyRefKeys);
  if (value === null || typeof value !== 'object') return [];
  const key = (value as { secretKeyRef?: { key?: string } }).secretKeyRef?.key;
  return [...(key ? [key] : []), ...Object.values(value).flatMap(secretKeyRefKeys)];
}

function templateLabels(o: K8sObject): Record<string, string> {
  return (o as { spec?: { template?: { metadata?: { labels?: Record<string, string> } } } }).spec?.template?.metadata?.labels ?? {};
}

/** `outbox relay (is the leader|cycle failed)` -> both phrases. */
function expandAlternation(pattern: string): string[] {
  const m = /^(.*)\(([^)]+)\)(.*)$/.exec(pattern);
  return m ? m[2]!.split('|').map((alt) => `${m[1]}${alt}${m[3]}`) : [pattern];
}

function sourceText(dirs: string[]): string {
  const parts: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      if (entry === 'node_modules' || entry === 'dist' || entry === 'gen') continue;
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (path.endsWith('.ts')) parts.push(readFileSync(path, 'utf8'));
    }
  };
  for (const dir of dirs) walk(join(repoRoot, dir));
  return parts.join('\n');
}
