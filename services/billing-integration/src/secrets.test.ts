import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SecretBox } from './secrets.js';

const box = new SecretBox(randomBytes(32));
const ctx = { tenantId: 'acme', purpose: 'provider:testpay:api_key' };

describe('SecretBox (AES-256-GCM at rest)', () => {
  it('property: decrypts what it encrypted, and the ciphertext never contains the plaintext', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 8, maxLength: 200 }), (secret) => {
        const sealed = box.encrypt(secret, ctx);
        expect(box.decrypt(sealed, ctx)).toBe(secret);
        expect(sealed.includes(Buffer.from(secret))).toBe(false);
      }),
    );
  });

  it('uses a fresh IV each time', () => {
    expect(box.encrypt('same', ctx).equals(box.encrypt('same', ctx))).toBe(false);
  });

  it('refuses a secret moved to another tenant or purpose, a tampered one, or another key', () => {
    const sealed = box.encrypt('sk_live_1', ctx);
    expect(() => box.decrypt(sealed, { ...ctx, tenantId: 'evil' })).toThrow(/cannot be decrypted/);
    expect(() => box.decrypt(sealed, { ...ctx, purpose: 'connector:xero:access_token' })).toThrow(/cannot be decrypted/);
    const tampered = Buffer.from(sealed);
    tampered[tampered.length - 1]! ^= 1;
    expect(() => box.decrypt(tampered, ctx)).toThrow(/cannot be decrypted/);
    expect(() => new SecretBox(randomBytes(32)).decrypt(sealed, ctx)).toThrow(/cannot be decrypted/);
    expect(() => box.decrypt(Buffer.from('short'), ctx)).toThrow(/not a sealed value/);
  });

  it('reads BILLING_SECRETS_KEY as hex or base64 and requires 32 bytes', () => {
    const key = randomBytes(32);
    const a = SecretBox.fromEnv(key.toString('hex'));
    const b = SecretBox.fromEnv(key.toString('base64'));
    expect(b.decrypt(a.encrypt('x', ctx), ctx)).toBe('x');
    expect(() => SecretBox.fromEnv(undefined)).toThrow(/BILLING_SECRETS_KEY is required/);
    expect(() => SecretBox.fromEnv(randomBytes(16).toString('base64'))).toThrow(/32 bytes/);
    expect(JSON.stringify({ box: a })).toBe('{"box":"[SecretBox]"}');
  });
});

describe('SecretBox during a key rotation', () => {
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const before = new SecretBox(oldKey);
  const rotating = new SecretBox(newKey, [oldKey]);
  const after = new SecretBox(newKey);

  it('opens what the previous key sealed, seals with the new one, and reseals only what the old key sealed', () => {
    const old = before.encrypt('sk_live_1', ctx);
    expect(rotating.decrypt(old, ctx)).toBe('sk_live_1');
    expect(() => after.decrypt(old, ctx)).toThrow(/cannot be decrypted/);

    const again = rotating.reseal(old, ctx)!;
    expect(after.decrypt(again, ctx)).toBe('sk_live_1');
    expect(rotating.reseal(again, ctx)).toBeUndefined();
    expect(after.decrypt(rotating.encrypt('sk_live_2', ctx), ctx)).toBe('sk_live_2');
  });

  it('still refuses another tenant, a tampered value or a key it does not hold', () => {
    const old = before.encrypt('sk_live_1', ctx);
    expect(() => rotating.decrypt(old, { ...ctx, tenantId: 'evil' })).toThrow(/cannot be decrypted/);
    const tampered = Buffer.from(old);
    tampered[tampered.length - 1]! ^= 1;
    expect(() => rotating.reseal(tampered, ctx)).toThrow(/cannot be decrypted/);
    expect(() => rotating.decrypt(new SecretBox(randomBytes(32)).encrypt('x', ctx), ctx)).toThrow(/cannot be decrypted/);
  });

  it('reads BILLING_SECRETS_KEY_PREVIOUS beside the key, and says whether it is rotating', () => {
    const box2 = SecretBox.fromEnv(newKey.toString('base64'), oldKey.toString('hex'));
    expect(box2.rotating).toBe(true);
    expect(SecretBox.fromEnv(newKey.toString('base64')).rotating).toBe(false);
    expect(box2.decrypt(before.encrypt('x', ctx), ctx)).toBe('x');
    expect(() => SecretBox.fromEnv(newKey.toString('base64'), randomBytes(16).toString('base64'))).toThrow(/BILLING_SECRETS_KEY_PREVIOUS must be 32 bytes/);
  });
});
