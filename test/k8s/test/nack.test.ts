import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_DUPLICATE_WINDOW_MS, STREAM_KEYS, STREAMS, subjectMatches } from '@punchcard/bus';
import { describe, expect, it } from 'vitest';
import { consumersOf } from './service-code.js';
import { read, render, repoRoot, serviceDirs } from './support.js';

interface StreamSpec {
  name: string;
  subjects: string[];
  storage: string;
  retention: string;
  discard: string;
  duplicateWindow: string;
  [field: string]: unknown;
}
interface ConsumerSpec {
  streamName: string;
  durableName: string;
  ackPolicy: string;
  deliverPolicy: string;
  [field: string]: unknown;
}

/** The fields of NACK's jetstream.nats.io/v1beta2 Stream and Consumer specs that these resources may use. */
const STREAM_FIELDS = new Set(['name', 'description', 'subjects', 'storage', 'retention', 'discard', 'duplicateWindow', 'replicas', 'maxAge', 'maxBytes', 'maxMsgs', 'maxMsgSize', 'maxConsumers']);
const CONSUMER_FIELDS = new Set(['streamName', 'durableName', 'description', 'deliverPolicy', 'ackPolicy', 'ackWait', 'maxDeliver', 'maxAckPending', 'replayPolicy', 'filterSubject', 'filterSubjects', 'backoff']);

const objects = () => render('k8s/nack');
const streams = () => objects().filter((o) => o.kind === 'Stream').map((o) => ({ o, spec: o.spec as StreamSpec }));
const consumers = () => objects().filter((o) => o.kind === 'Consumer').map((o) => ({ o, spec: o.spec as ConsumerSpec }));

/** `2m`, `30s`, `2160h` -> milliseconds. */
function durationMs(value: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(value);
  if (!m) throw new Error(`not a Go duration: ${value}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}

/** The consumers the services start, read from their `startConsumer` calls; unreadable code throws. */
const started = () => serviceDirs().flatMap((service) => consumersOf(service, STREAMS));

/** What libs/bus declareStreams uses when a service passes no `replicas`. */
function defaultReplicas(): number {
  const m = /num_replicas:\s*options\.replicas\s*\?\?\s*(\d+)/.exec(read('libs/bus/src/streams.ts'));
  if (!m) throw new Error('libs/bus/src/streams.ts: no `num_replicas: options.replicas ?? N`; update this test');
  return Number(m[1]);
}

/** The `replicas` passed to declareStreams by the services and by the bootstrap they share, or the default. */
function declaredReplicas(): { service: string; replicas: number | 'unknown' }[] {
  const out: { service: string; replicas: number | 'unknown' }[] = [];
  const walk = (service: string, dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(service, path);
      else if (path.endsWith('.ts') && !path.endsWith('.test.ts')) {
        for (const m of readFileSync(path, 'utf8').matchAll(/declareStreams\([^;]*?\)\s*;/gs)) {
          const replicas = /\breplicas\b\s*(?::\s*(\d+))?/.exec(m[0]);
          out.push({ service, replicas: !replicas ? defaultReplicas() : replicas[1] ? Number(replicas[1]) : 'unknown' });
        }
      }
    }
  };
  for (const service of serviceDirs()) {
    const src = join(repoRoot, 'services', service, 'src');
    if (existsSync(src)) walk(service, src);
  }
  walk('platform', join(repoRoot, 'libs', 'platform', 'src'));
  return out;
}

describe('k8s/nack', () => {
  it('is not part of the base or the overlays', () => {
    for (const dir of ['k8s/base', 'k8s/overlays/dev', 'k8s/overlays/production']) {
      expect(render(dir).filter((o) => o.apiVersion.startsWith('jetstream.nats.io/'))).toEqual([]);
    }
  });

  it('declares exactly the streams the services declare, with their subjects and settings', () => {
    expect(objects().every((o) => o.apiVersion === 'jetstream.nats.io/v1beta2')).toBe(true);
    expect(streams().map((s) => s.spec.name).sort()).toEqual([...STREAM_KEYS].sort());
    for (const { spec } of streams()) {
      expect(spec.subjects, spec.name).toEqual([STREAMS[spec.name as keyof typeof STREAMS]]);
      expect(spec).toMatchObject({ storage: 'file', retention: 'limits', discard: 'old' });
      expect(durationMs(spec.duplicateWindow)).toBe(DEFAULT_DUPLICATE_WINDOW_MS);
      expect(Object.keys(spec).filter((k) => !STREAM_FIELDS.has(k)), spec.name).toEqual([]);
    }
  });

  it('the subjects are punchcard.<producer>.>, punchcard.visits.> and punchcard.deadletter.>', () => {
    const subjects = streams().flatMap((s) => s.spec.subjects).sort();
    expect(subjects).toEqual(
      ['ledger', 'catalogue', 'expiry', 'revenue', 'billing', 'visits', 'deadletter'].map((p) => `punchcard.${p}.>`).sort(),
    );
  });

  it('declares each durable consumer once, on a declared stream, with the consumer settings of the services', () => {
    const names = streams().map((s) => s.spec.name);
    const durables = consumers().map((c) => c.spec.durableName);
    expect(new Set(durables).size).toBe(durables.length);
    for (const { o, spec } of consumers()) {
      expect(names, spec.durableName).toContain(spec.streamName);
      expect(spec.durableName).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(spec).toMatchObject({ ackPolicy: 'explicit', deliverPolicy: 'all', maxDeliver: -1, ackWait: '30s', maxAckPending: 1000 });
      expect(Object.keys(spec).filter((k) => !CONSUMER_FIELDS.has(k)), spec.durableName).toEqual([]);
      expect(serviceDirs()).toContain(o.metadata.labels?.['app.kubernetes.io/name']);
    }
  });

  it('matches the consumers each service starts: streams, durable names and filters', () => {
    const filtersOf = (spec: ConsumerSpec) => {
      const one = spec.filterSubject as string | undefined;
      const many = spec.filterSubjects as string[] | undefined;
      expect(one === undefined || many === undefined, `${spec.durableName}: filterSubject or filterSubjects, not both`).toBe(true);
      // One subject as filterSubject, as the bus sets it (filter_subject); several as filterSubjects.
      if (many) expect(many.length, `${spec.durableName}: a single filter goes in filterSubject`).toBeGreaterThan(1);
      return one !== undefined ? [one] : (many ?? []);
    };
    for (const service of serviceDirs()) {
      const inCode = started()
        .filter((c) => c.service === service)
        .map((c) => `${c.stream} ${c.durable} [${[...c.filters].sort().join(' ')}]`)
        .sort();
      const inNack = consumers()
        .filter((c) => c.o.metadata.labels?.['app.kubernetes.io/name'] === service)
        .map((c) => `${c.spec.streamName} ${c.spec.durableName} [${[...filtersOf(c.spec)].sort().join(' ')}]`)
        .sort();
      expect(inNack, `${service} starts ${inCode.join(', ') || 'no consumers'}: update k8s/nack/consumers.yaml and deploy/README.md`).toEqual(inCode);
    }
  });

  it('the reader finds the consumers, including a loop over streams', () => {
    const durables = started().map((c) => c.durable);
    expect(durables.length).toBeGreaterThan(serviceDirs().length);
    expect(new Set(durables).size, 'durable names are unique across the services').toBe(durables.length);
  });

  it('has the stream replica count the services declare (they set it back at each start)', () => {
    const declared = declaredReplicas();
    expect(declared.length, 'declareStreams calls in the services and libs/platform').toBeGreaterThan(0);
    const counts = new Set(declared.map((d) => d.replicas));
    expect([...counts], JSON.stringify(declared)).toHaveLength(1);
    const [replicas] = [...counts];
    expect(replicas, 'a replica count the test cannot read').not.toBe('unknown');
    for (const { spec } of streams()) expect(spec.replicas, spec.name).toBe(replicas);
  });

  it('filters consumers only to subjects of their stream', () => {
    const subjectsOf = new Map(streams().map((s) => [s.spec.name, s.spec.subjects]));
    for (const { spec } of consumers()) {
      for (const filter of [...((spec.filterSubjects as string[] | undefined) ?? []), ...(spec.filterSubject ? [spec.filterSubject as string] : [])]) {
        expect(subjectsOf.get(spec.streamName)!.some((s) => subjectMatches(s, filter)), `${spec.durableName} ${filter}`).toBe(true);
      }
    }
  });
});
