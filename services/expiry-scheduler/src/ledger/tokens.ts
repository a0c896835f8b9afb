import { mintToken } from '@punchcard/platform';

const LIFETIME_SECONDS = 600;
/** Re-mint this long before a cached token expires, so no call carries one about to lapse. */
const RENEW_BEFORE_MS = 120_000;

/**
 * Bearer tokens for calling the ledger as the scheduler: one per tenant (the ledger takes the tenant
 * from the token), role `system`, signed with the secret the ledger verifies; cached until near expiry.
 */
export function systemTokens(secret: string, subject = 'expiry-scheduler'): (tenantId: string) => Promise<string> {
  const cache = new Map<string, { token: Promise<string>; renewAt: number }>();
  return (tenantId) => {
    const now = Date.now();
    const hit = cache.get(tenantId);
    if (hit && hit.renewAt > now) return hit.token;
    const token = mintToken({ tenantId, roles: ['system'], subject, expiresInSeconds: LIFETIME_SECONDS }, secret);
    cache.set(tenantId, { token, renewAt: now + LIFETIME_SECONDS * 1000 - RENEW_BEFORE_MS });
    token.catch(() => cache.delete(tenantId));
    return token;
  };
}
