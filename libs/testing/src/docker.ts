import { spawnSync } from 'node:child_process';

let answered: boolean | undefined;

/** True when a Docker engine answers; testcontainers is only tried then. */
export function dockerEngineAnswers(): boolean {
  if (answered === undefined) {
    if (process.env.PUNCHCARD_TEST_NO_DOCKER === '1') return (answered = false);
    const probe = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 5000, encoding: 'utf8' });
    answered = probe.status === 0 && probe.stdout.trim().length > 0;
  }
  return answered;
}
