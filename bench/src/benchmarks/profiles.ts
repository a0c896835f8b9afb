import path from 'node:path';
import type { Flags } from '../flags.js';
import { REPO_ROOT } from '../service-process.js';

export const PROFILES_DIR = path.join(REPO_ROOT, 'bench', 'profiles');

/** `--cpu-prof`: where the service processes write their V8 CPU profiles. */
export function profileDir(flags: Flags): { cpuProfileDir?: string } {
  return flags.cpuProf ? { cpuProfileDir: PROFILES_DIR } : {};
}
