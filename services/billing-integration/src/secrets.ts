import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** What a secret is for; bound into the ciphertext so one row's secret cannot be pasted into another. */
export interface SecretContext {
  tenantId: string;
  /** e.g. `provider:testpay:api_key`, `connector:xero:access_token`, `webhook:<subscription id>`. */
  purpose: string;
}

/**
 * AES-256-GCM for secrets at rest (provider keys, connector tokens, webhook signing secrets).
 * Stored as version byte | 12-byte random IV | 16-byte tag | ciphertext, with the tenant and purpose
 * as additional authenticated data. Seals with the current key; opens with it or, during a key
 * rotation, with a previous one (the tag tells which: a wrong key fails it).
 */
export class SecretBox {
  /** The current key first, then the previous ones. */
  readonly #keys: Buffer[];

  constructor(key: Buffer, previous: readonly Buffer[] = []) {
    this.#keys = [key, ...previous].map((k, i) => {
      if (k.length !== 32) throw new Error(`${i === 0 ? 'BILLING_SECRETS_KEY' : 'BILLING_SECRETS_KEY_PREVIOUS'} must be 32 bytes (base64 or 64 hex characters)`);
      return Buffer.from(k);
    });
  }

  /** BILLING_SECRETS_KEY and, while rotating, BILLING_SECRETS_KEY_PREVIOUS: 32 bytes each as 64 hex characters or base64. */
  static fromEnv(value: string | undefined, previous?: string): SecretBox {
    if (!value) throw new Error('BILLING_SECRETS_KEY is required: 32 random bytes, base64 or hex (e.g. `openssl rand -base64 32`)');
    return new SecretBox(keyBytes(value), previous ? [keyBytes(previous)] : []);
  }

  /** Whether a previous key is configured: stored secrets may still be sealed with it. */
  get rotating(): boolean {
    return this.#keys.length > 1;
  }

  encrypt(plaintext: string, ctx: SecretContext): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#keys[0]!, iv);
    cipher.setAAD(aad(ctx));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), ct]);
  }

  decrypt(sealed: Uint8Array, ctx: SecretContext): string {
    return this.#open(sealed, ctx).plaintext;
  }

  /** `sealed` sealed again with the current key if a previous key sealed it; undefined if the current key did. */
  reseal(sealed: Uint8Array, ctx: SecretContext): Buffer | undefined {
    const { plaintext, byCurrentKey } = this.#open(sealed, ctx);
    return byCurrentKey ? undefined : this.encrypt(plaintext, ctx);
  }

  #open(sealed: Uint8Array, ctx: SecretContext): { plaintext: string; byCurrentKey: boolean } {
    const buf = Buffer.from(sealed);
    if (buf.length < 1 + IV_BYTES + TAG_BYTES || buf[0] !== VERSION) throw new Error(`secret for ${ctx.purpose} is not a sealed value`);
    const iv = buf.subarray(1, 1 + IV_BYTES);
    const tag = buf.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    for (const [i, key] of this.#keys.entries()) {
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(aad(ctx));
      decipher.setAuthTag(tag);
      try {
        const plaintext = Buffer.concat([decipher.update(buf.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
        return { plaintext, byCurrentKey: i === 0 };
      } catch {
        // Not this key (or tampered): try the next.
      }
    }
    throw new Error(`secret for ${ctx.purpose} of tenant ${ctx.tenantId} cannot be decrypted (wrong BILLING_SECRETS_KEY or tampered)`);
  }

  /** Keeps the keys out of logs and inspection. */
  toJSON(): string {
    return '[SecretBox]';
  }
}

/** A key as configured: 64 hex characters, else base64. */
export function keyBytes(value: string): Buffer {
  return /^[0-9a-fA-F]{64}$/.test(value) ? Buffer.from(value, 'hex') : Buffer.from(value, 'base64');
}

function aad(ctx: SecretContext): Buffer {
  return Buffer.from(`punchcard-billing\0${ctx.tenantId}\0${ctx.purpose}`, 'utf8');
}

/**
 * pino redact paths for anything secret that might end up in a log object: request bodies, adapter
 * configs, HTTP headers. Logging code must still never log a secret on purpose; this is the net.
 */
export const REDACT_PATHS = [
  'apiKey',
  'api_key',
  'accessToken',
  'access_token',
  'webhookSecret',
  'webhook_secret',
  'signingSecret',
  'signing_secret',
  'secret',
  'token',
  'authorization',
  'password',
  '*.apiKey',
  '*.api_key',
  '*.accessToken',
  '*.access_token',
  '*.webhookSecret',
  '*.webhook_secret',
  '*.signingSecret',
  '*.signing_secret',
  '*.secret',
  '*.token',
  '*.authorization',
  '*.Authorization',
  '*.password',
  '*.headers.authorization',
  '*.headers.Authorization',
  '*.*.authorization',
  '*.*.Authorization',
];
