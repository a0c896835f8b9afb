import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { StackSecrets } from './stack.js';
import type { DemoCatalogue } from './seed.js';

export const DATA_DIR = path.resolve(import.meta.dirname, '..', '..', '.data');

/** What `pnpm start` writes for `pnpm demo` (and people) to find the running stack. */
export interface LocalState {
  pid: number;
  natsUrl: string;
  busNamespace: string;
  services: Record<string, { apiUrl: string; opsUrl: string }>;
  demo: DemoCatalogue;
}

export const statePath = (dataDir = DATA_DIR) => path.join(dataDir, 'running.json');

export function writeState(state: LocalState, dataDir = DATA_DIR): void {
  writeFileSync(statePath(dataDir), JSON.stringify(state, null, 2));
}

export function readState(dataDir = DATA_DIR): LocalState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(dataDir), 'utf8')) as LocalState;
  } catch {
    return undefined;
  }
}

/**
 * Keys the local stack keeps across restarts (stored secrets must stay decryptable), generated on
 * the first start; BILLING_SECRETS_KEY in the environment wins.
 */
export function localSecrets(dataDir = DATA_DIR): StackSecrets {
  mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, 'secrets.json');
  let saved: Partial<StackSecrets> = {};
  if (existsSync(file)) saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<StackSecrets>;
  if (!saved.billingSecretsKey) {
    saved.billingSecretsKey = randomBytes(32).toString('base64');
    writeFileSync(file, JSON.stringify(saved, null, 2), { mode: 0o600 });
  }
  return { billingSecretsKey: process.env.BILLING_SECRETS_KEY || saved.billingSecretsKey };
}
