import { createContextKey, type HandlerContext, type Interceptor } from '@connectrpc/connect';
import { trace } from '@opentelemetry/api';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, SignJWT, type JWTVerifyOptions } from 'jose';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import type { AuthConfig } from './config.js';
import { permissionDenied, unauthenticated } from './errors.js';

/** Well-known roles; tenants may define others. */
export type Role = 'staff' | 'manager' | 'admin' | 'system' | (string & {});

/** The authenticated caller of an RPC, from the bearer token's claims. */
export interface Caller {
  /** `sub`: the user or system account. */
  subject: string;
  /** `tenant_id`: every read and write is confined to this tenant. */
  tenantId: string;
  /** `roles`. */
  roles: readonly Role[];
  /** `branch_ids`: when present, the branches the caller may act for. */
  branchIds?: readonly string[];
}

/**
 * Signing secret of AUTH_DEV_MODE=1. Public by design: anyone can mint tokens with it, which is
 * what local development and demos need and why production refuses dev mode.
 */
export const DEV_JWT_SECRET = 'punchcard-local-development-secret-never-use-in-production';

const callerKey = createContextKey<Caller | undefined>(undefined, { description: 'punchcard authenticated caller' });

/** The authenticated caller of this RPC; Unauthenticated if the method was served without auth. */
export function callerOf(ctx: Pick<HandlerContext, 'values'>): Caller {
  const caller = ctx.values.get(callerKey);
  if (!caller) throw unauthenticated('this method requires a bearer token');
  return caller;
}

/** PermissionDenied unless the caller holds at least one of `roles`. */
export function requireRole(caller: Caller, ...roles: Role[]): void {
  if (roles.some((role) => caller.roles.includes(role))) return;
  throw permissionDenied(`requires role ${roles.join(' or ')}; caller ${caller.subject} has ${caller.roles.length > 0 ? caller.roles.join(', ') : 'no roles'}`);
}

const claimsSchema = z.object({
  sub: z.string().min(1),
  tenant_id: z.string().min(1),
  roles: z.array(z.string()),
  branch_ids: z.array(z.string()).optional(),
});

/** Verifies a bearer token and returns its caller, or throws Unauthenticated naming the problem. */
export type TokenVerifier = (token: string) => Promise<Caller>;

export function createTokenVerifier(auth: AuthConfig): TokenVerifier {
  const options: JWTVerifyOptions = {};
  if (auth.mode !== 'dev' && auth.issuer) options.issuer = auth.issuer;
  if (auth.mode !== 'dev' && auth.audience) options.audience = auth.audience;
  let verify: (token: string) => Promise<{ payload: unknown }>;
  if (auth.mode === 'jwks') {
    const jwks = createRemoteJWKSet(new URL(auth.jwksUrl));
    verify = (token) => jwtVerify(token, jwks, options);
  } else {
    // Pinning HS256 stops a token from choosing its own algorithm.
    const key = new TextEncoder().encode(auth.mode === 'secret' ? auth.secret : DEV_JWT_SECRET);
    verify = (token) => jwtVerify(token, key, { ...options, algorithms: ['HS256'] });
  }
  // Integrations reuse one token for many calls; checking its signature each time was a measurable
  // share of a consume's CPU. A verified caller is kept until its token expires, at most
  // VERIFIED_TOKEN_TTL_MS, so a key removed from the JWKS stops being honoured soon after.
  const verified = new LRUCache<string, Caller>({ max: 10_000, ttl: VERIFIED_TOKEN_TTL_MS, ttlAutopurge: false });
  return async (token) => {
    const known = verified.get(token);
    if (known) return known;
    let payload: unknown;
    try {
      ({ payload } = await verify(token));
    } catch (err) {
      throw unauthenticated(`invalid bearer token: ${describeJoseError(err)}`);
    }
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) {
      const issue = claims.error.issues[0];
      const claim = issue?.path.map(String).join('.') ?? '';
      const present = typeof payload === 'object' && payload !== null && claim in payload;
      const problem = present ? `is invalid: ${issue?.message ?? ''}` : 'is missing';
      throw unauthenticated(`invalid bearer token: claim ${claim} ${problem}`);
    }
    const { sub, tenant_id, roles, branch_ids } = claims.data;
    const caller: Caller = { subject: sub, tenantId: tenant_id, roles, ...(branch_ids ? { branchIds: branch_ids } : {}) };
    const exp = (payload as { exp?: unknown }).exp;
    const untilExpiry = typeof exp === 'number' ? exp * 1000 - Date.now() : VERIFIED_TOKEN_TTL_MS;
    if (untilExpiry > 0) verified.set(token, caller, { ttl: Math.min(VERIFIED_TOKEN_TTL_MS, untilExpiry) });
    return caller;
  };
}

/** How long a verified token is trusted without checking its signature again. */
export const VERIFIED_TOKEN_TTL_MS = 60_000;

function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'expired';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'signature verification failed';
  if (err instanceof joseErrors.JOSEError) return err.message;
  return 'could not be verified';
}

/**
 * Requires a valid bearer token on every RPC except those of `openServices` (health,
 * reflection), and makes the caller available to handlers through {@link callerOf}.
 */
export function authInterceptor(verify: TokenVerifier, openServices: ReadonlySet<string>): Interceptor {
  return (next) => async (req) => {
    if (openServices.has(req.service.typeName)) return next(req);
    const header = req.header.get('authorization');
    if (!header) throw unauthenticated('missing bearer token: send "authorization: Bearer <jwt>"');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) throw unauthenticated('authorization header must be "Bearer <jwt>"');
    const caller = await verify(match[1]);
    req.contextValues.set(callerKey, caller);
    trace.getActiveSpan()?.setAttributes({ 'punchcard.tenant_id': caller.tenantId, 'enduser.id': caller.subject });
    return next(req);
  };
}

export interface TokenClaims {
  tenantId: string;
  roles: readonly Role[];
  branchIds?: readonly string[];
  /** Defaults to `dev-user`. */
  subject?: string;
  /** Lifetime in seconds from now (negative mints an already expired token); default one hour. */
  expiresInSeconds?: number;
}

/** Mints an HS256 token for dev mode (default secret) and tests. */
export async function mintToken(claims: TokenClaims, secret: string = DEV_JWT_SECRET): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    tenant_id: claims.tenantId,
    roles: [...claims.roles],
    ...(claims.branchIds ? { branch_ids: [...claims.branchIds] } : {}),
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.subject ?? 'dev-user')
    .setIssuedAt(now)
    .setExpirationTime(now + (claims.expiresInSeconds ?? 3600))
    .sign(new TextEncoder().encode(secret));
}
