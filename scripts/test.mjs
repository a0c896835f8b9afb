// `pnpm test`: contract checks, type checks, then every test (unit and integration) in one
// vitest run against the real Postgres and NATS. Each step prints what it is doing.
import { spawnSync } from 'node:child_process';

const steps = [
  ['proto: lint + generated code up to date', 'pnpm', ['run', '--silent', 'proto:check']],
  ['typecheck: every package, as one program', 'pnpm', ['exec', 'tsc', '-p', 'tsconfig.json']],
  ['tests: unit + integration', 'pnpm', ['exec', 'vitest', 'run', ...process.argv.slice(2)]],
];

for (const [title, cmd, args] of steps) {
  console.log(`\n▶ ${title}`);
  const { status } = spawnSync(cmd, args, { stdio: 'inherit' });
  if (status !== 0) {
    console.error(`✖ ${title} failed`);
    process.exit(status ?? 1);
  }
}
