import { spawnSync } from 'node:child_process';
import { serviceNodeFlags } from '@punchcard/platform';
import { DockerfileParser, Env, type Instruction } from 'dockerfile-ast';
import { validate, ValidationSeverity, type ValidatorSettings } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';
import { find, podSpecOf, read, render, serviceDirs } from './support.js';

const DOCKERFILE = 'deploy/docker/Dockerfile';
const text = read(DOCKERFILE);
const dockerfile = DockerfileParser.parse(text);
const instructions = dockerfile.getInstructions();

/** Every rule of the linter, as an error. */
const STRICT: ValidatorSettings = {
  deprecatedMaintainer: ValidationSeverity.ERROR,
  directiveCasing: ValidationSeverity.ERROR,
  emptyContinuationLine: ValidationSeverity.ERROR,
  instructionCasing: ValidationSeverity.ERROR,
  instructionCmdMultiple: ValidationSeverity.ERROR,
  instructionEntrypointMultiple: ValidationSeverity.ERROR,
  instructionHealthcheckMultiple: ValidationSeverity.ERROR,
  instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
  instructionWorkdirRelative: ValidationSeverity.ERROR,
};

/** The instructions of each stage, in order; a stage starts at its FROM. */
function stages(): Instruction[][] {
  const out: Instruction[][] = [];
  for (const i of instructions) {
    if (i.getKeyword() === 'FROM') out.push([i]);
    else out.at(-1)?.push(i);
  }
  return out;
}

const finalStage = () => stages().at(-1)!;
const buildStages = () => stages().slice(0, -1);
const args = (i: Instruction) => i.getArguments().map((a) => a.getValue());
const runs = (stage: Instruction[]) => stage.filter((i) => i.getKeyword() === 'RUN').map((i) => i.getArgumentsContent() ?? '');
const only = (stage: Instruction[], keyword: string) => {
  const found = stage.filter((i) => i.getKeyword() === keyword);
  expect(found, keyword).toHaveLength(1);
  return found[0]!;
};

/** Global ARGs (before the first FROM) with their defaults, to resolve `FROM ${NODE_IMAGE}`. */
function globalArgDefaults(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const arg of dockerfile.getInitialARGs()) {
    const [name, value] = (arg.getArgumentsContent() ?? '').split('=');
    if (name && value) out[name] = value;
  }
  return out;
}

describe('deploy/docker/Dockerfile', () => {
  it('passes the Dockerfile linter with every rule as an error', () => {
    const diagnostics = validate(text, STRICT).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
    expect(diagnostics).toEqual([]);
  });

  it('the linter does flag a broken Dockerfile (so a clean result means something)', () => {
    expect(validate("from node:20\nCMD ['node']\nWORKDIR app\nEXPOSE abc\n", STRICT).length).toBeGreaterThanOrEqual(3);
  });

  it('builds in stages from one pinned node 20 slim image, never latest', () => {
    expect(stages().length).toBeGreaterThanOrEqual(2);
    const defaults = globalArgDefaults();
    for (const from of dockerfile.getFROMs()) {
      const image = (from.getImage() ?? '').replace(/^\$\{(\w+)\}$/, (_, name: string) => defaults[name] ?? '');
      expect(image).toMatch(/^node:20\.\d+\.\d+-[a-z]+-slim$/);
    }
    expect(text).not.toMatch(/:latest\b/);
    expect(text).not.toMatch(/^ADD /m);
  });

  it('installs with the lockfile and the repository pnpm, builds with turbo, deploys the one service', () => {
    const build = buildStages().flat();
    const commands = runs(build).join('\n');
    expect(commands).toMatch(/pnpm install --frozen-lockfile/);
    expect(commands).toMatch(/turbo run build --filter="@punchcard\/\$\{SERVICE\}\.\.\."/);
    expect(commands).toMatch(/pnpm --filter "@punchcard\/\$\{SERVICE\}" deploy --prod\b/);
    const packageManager = (JSON.parse(read('package.json')) as { packageManager: string }).packageManager;
    const pnpmVersion = build.find((i) => i.getKeyword() === 'ARG' && (i.getArgumentsContent() ?? '').startsWith('PNPM_VERSION='));
    expect(`pnpm@${(pnpmVersion?.getArgumentsContent() ?? '').split('=')[1]}`).toBe(packageManager);
  });

  it('covers exactly the services in services/, with every container port of k8s/base', () => {
    const table = runs(buildStages().flat()).find((r) => r.startsWith('case '));
    expect(table).toContain('"${SERVICE}:${PORT}:${OPS_PORT}:${WEBHOOK_PORT}"');
    const rows = [...(table ?? '').matchAll(/([a-z-]+):(\d+):(\d+):(\d*)/g)].map((m) => ({
      service: m[1]!,
      ports: [Number(m[2]), Number(m[3]), ...(m[4] ? [Number(m[4])] : [])],
    }));
    expect(rows.map((r) => r.service).sort()).toEqual(serviceDirs());
    const base = render('k8s/base');
    for (const row of rows) {
      const ports = podSpecOf(find(base, 'Deployment', row.service))!.containers[0]!.ports!.map((p) => p.containerPort);
      expect(ports, row.service).toEqual(row.ports);
    }
  });

  it('runs as a numeric non-root user, the one the pods run as', () => {
    const user = args(only(finalStage(), 'USER'))[0] ?? '';
    expect(user).toMatch(/^\d+:\d+$/);
    const [uid, gid] = user.split(':').map(Number);
    expect(uid).toBeGreaterThan(0);
    const pod = podSpecOf(find(render('k8s/overlays/production'), 'Deployment', 'catalogue'))!;
    expect(pod.securityContext).toMatchObject({ runAsUser: uid, runAsGroup: gid });
    const keywords = finalStage().map((i) => i.getKeyword());
    expect(keywords.lastIndexOf('USER')).toBeGreaterThan(keywords.lastIndexOf('RUN'));
    expect(keywords.lastIndexOf('USER')).toBeGreaterThan(keywords.lastIndexOf('COPY'));
  });

  it('keeps the app read-only for that user and writes nothing outside /tmp', () => {
    for (const copy of finalStage().filter((i) => i.getKeyword() === 'COPY')) {
      expect(copy.getArgumentsContent()).not.toMatch(/--chown|--chmod/);
    }
    expect(finalStage().map((i) => i.getKeyword())).not.toContain('VOLUME');
  });

  it("tini is PID 1 and the command is `node <the services' V8 flags> dist/main.js`; the migration Job runs `node dist/main.js migrate`", () => {
    expect(args(only(finalStage(), 'ENTRYPOINT'))).toEqual(['["/usr/bin/tini",', '"--"]']);
    const cmd = JSON.parse(only(finalStage(), 'CMD').getArgumentsContent() ?? '') as string[];
    expect(cmd).toEqual(['node', ...serviceNodeFlags, 'dist/main.js']);
    const job = render('k8s/overlays/production').find((o) => o.kind === 'Job')!;
    expect(podSpecOf(job)!.containers[0]!.args).toEqual(['node', 'dist/main.js', 'migrate']);
    const install = runs(finalStage()).join('\n');
    expect(install).toMatch(/apt-get install -y --no-install-recommends tini=\S+/);
    expect(install).toMatch(/rm -rf \/var\/lib\/apt\/lists\/\*/);
  });

  it('exposes the service API and ops ports, and the webhook port where there is one', () => {
    expect(args(only(finalStage(), 'EXPOSE'))).toEqual(['${PORT}', '${OPS_PORT}', '${WEBHOOK_PORT}']);
    const finalArgs = finalStage().filter((i) => i.getKeyword() === 'ARG').map((i) => i.getArgumentsContent() ?? '');
    expect(finalArgs).toContain('WEBHOOK_PORT=""');
    // Not ENV: billing-integration would read an empty WEBHOOK_PORT as port 0 instead of its default.
    const env = finalStage().filter((i) => i.getKeyword() === 'ENV').map((i) => i.getArgumentsContent() ?? '').join('\n');
    expect(env).not.toMatch(/WEBHOOK_PORT/);
  });

  it("keeps NODE_OPTIONS to source maps, and node accepts it and the services' V8 flags", () => {
    const properties = finalStage()
      .filter((i): i is Env => i instanceof Env)
      .flatMap((i) => i.getProperties());
    const nodeOptions = properties.find((p) => p.getName() === 'NODE_OPTIONS')?.getValue() ?? '';
    expect(nodeOptions).toBe('--enable-source-maps');
    const node = spawnSync(process.execPath, [...serviceNodeFlags, '-e', ''], { env: { PATH: process.env.PATH, NODE_OPTIONS: nodeOptions }, encoding: 'utf8' });
    expect(node.stderr).toBe('');
    expect(node.status).toBe(0);
  });
});

describe('deploy/docker/Dockerfile.dockerignore', () => {
  const patterns = read('deploy/docker/Dockerfile.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

  /** Docker's rule: a pattern excludes a path when it matches the path or one of its parent directories. */
  function ignored(path: string): boolean {
    const parts = path.split('/');
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    return patterns.some((p) => {
      const source = p
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .split('**/')
        .map((part) => part.replaceAll('*', '[^/]*'))
        .join('(?:.*/)?');
      const regex = new RegExp(`^${source}$`);
      return prefixes.some((prefix) => regex.test(prefix));
    });
  }

  it('leaves out dependencies, build output, git and secrets', () => {
    for (const path of ['node_modules/x', 'libs/db/node_modules/x', 'services/catalogue/dist/main.js', '.git/HEAD', 'libs/db/.env']) {
      expect(ignored(path), path).toBe(true);
    }
  });

  it('keeps everything the frozen install and the build need', () => {
    const packages = ['package.json', ...serviceDirs().map((s) => `services/${s}/package.json`)];
    for (const path of [...packages, 'pnpm-lock.yaml', 'pnpm-workspace.yaml', '.npmrc', 'turbo.json', 'tsconfig.base.json', 'libs/bus/package.json', 'libs/contracts/src/gen/x.ts', 'test/k8s/package.json', 'deploy/package.json']) {
      expect(ignored(path), path).toBe(false);
    }
  });
});
