import http from 'node:http';
import type net from 'node:net';
import { Code, ConnectError } from '@connectrpc/connect';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenVerifier, DEV_JWT_SECRET, mintToken, requireRole } from '../src/index.js';

describe('token verification against a JWKS endpoint', () => {
  let server: http.Server;
  let jwksUrl: string;
  let privateKey: CryptoKey;

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256');
    privateKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    server = http.createServer((_, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/.well-known/jwks.json`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const sign = (claims: Record<string, unknown>, issuer = 'https://id.example') =>
    new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setSubject('pos-7').setIssuer(issuer).setExpirationTime('5m').sign(privateKey);

  it('accepts a token signed by a published key and maps its claims', async () => {
    const verify = createTokenVerifier({ mode: 'jwks', jwksUrl, issuer: 'https://id.example' });
    const caller = await verify(await sign({ tenant_id: 'clinic-9', roles: ['system'], branch_ids: ['north'] }));
    expect(caller).toEqual({ subject: 'pos-7', tenantId: 'clinic-9', roles: ['system'], branchIds: ['north'] });
  });

  it('rejects a token from another issuer, and an HS256 token minted with any secret', async () => {
    const verify = createTokenVerifier({ mode: 'jwks', jwksUrl, issuer: 'https://id.example' });
    const wrongIssuer = await verify(await sign({ tenant_id: 'clinic-9', roles: [] }, 'https://evil.example')).catch((e: unknown) => e);
    expect(wrongIssuer).toMatchObject({ code: Code.Unauthenticated });
    expect((wrongIssuer as ConnectError).rawMessage).toMatch(/iss/);
    const hs = await verify(await mintToken({ tenantId: 'clinic-9', roles: ['admin'] })).catch((e: unknown) => e);
    expect(hs).toMatchObject({ code: Code.Unauthenticated });
  });
});

describe('dev mode', () => {
  it('accepts tokens minted with the well-known dev secret by default', async () => {
    const verify = createTokenVerifier({ mode: 'dev' });
    expect(await verify(await mintToken({ tenantId: 'demo', roles: ['manager'] }))).toEqual({ subject: 'dev-user', tenantId: 'demo', roles: ['manager'] });
    expect(await verify(await mintToken({ tenantId: 'demo', roles: [] }, DEV_JWT_SECRET))).toMatchObject({ tenantId: 'demo' });
  });
});

describe('verified tokens are remembered', () => {
  it('answers a token again from memory, but not past its expiry', async () => {
    const verify = createTokenVerifier({ mode: 'dev' });
    // exp counts whole seconds from a whole second: a 2-second token lives at least one, a 1-second
    // one could expire before the first verify.
    const token = await mintToken({ tenantId: 'demo', roles: ['staff'], expiresInSeconds: 2 });
    const first = await verify(token);
    expect(await verify(token)).toBe(first);
    await new Promise((resolve) => setTimeout(resolve, 3100));
    await expect(verify(token)).rejects.toMatchObject({ code: Code.Unauthenticated, rawMessage: 'invalid bearer token: expired' });
  });

  it('never remembers a token that failed', async () => {
    const verify = createTokenVerifier({ mode: 'secret', secret: 'the-real-secret-of-at-least-32-bytes!' });
    const forged = await mintToken({ tenantId: 'demo', roles: ['admin'] }, 'another-secret-of-at-least-32-bytes!!');
    for (let i = 0; i < 2; i++) await expect(verify(forged)).rejects.toMatchObject({ code: Code.Unauthenticated });
  });
});

describe('requireRole', () => {
  const caller = { subject: 'u1', tenantId: 't1', roles: ['staff', 'manager'] };

  it('passes when the caller holds any of the roles', () => {
    expect(() => requireRole(caller, 'admin', 'manager')).not.toThrow();
  });

  it('is PermissionDenied naming the roles otherwise', () => {
    const err = (() => {
      try {
        requireRole(caller, 'admin');
      } catch (e) {
        return e as ConnectError;
      }
    })();
    expect(err?.code).toBe(Code.PermissionDenied);
    expect(err?.rawMessage).toBe('requires role admin; caller u1 has staff, manager');
  });
});
