import type { DescService } from '@bufbuild/protobuf';
import { createClient, type Client, type Interceptor } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { BillingService } from '@punchcard/contracts/punchcard/billing/v1/billing_pb';
import { CatalogueService } from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import { ExpiryService } from '@punchcard/contracts/punchcard/expiry/v1/expiry_pb';
import { LedgerService } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { RevenueService } from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { mintToken } from '@punchcard/platform';

/** Every role, so one development token can call every RPC (EnterGrace/Expire need `system`, reports `finance`). */
export const DEV_ROLES = ['admin', 'manager', 'staff', 'finance', 'system'] as const;

/** A long-lived development token for the demo tenant, signed with the public dev secret (AUTH_DEV_MODE=1). */
export function devToken(tenantId: string, secret?: string): Promise<string> {
  return mintToken({ tenantId, roles: DEV_ROLES, subject: 'dev-user', expiresInSeconds: 30 * 24 * 3600 }, ...(secret ? [secret] : []));
}

export interface Clients {
  catalogue: Client<typeof CatalogueService>;
  ledger: Client<typeof LedgerService>;
  revenue?: Client<typeof RevenueService>;
  expiry?: Client<typeof ExpiryService>;
  billing?: Client<typeof BillingService>;
}

/** gRPC clients (HTTP/2, as buf curl --protocol grpc) for the services that run, all sending `token`. */
export function clientsFor(urls: Readonly<Record<string, string>>, token: string): Clients {
  const auth: Interceptor = (next) => (req) => {
    req.header.set('authorization', `Bearer ${token}`);
    return next(req);
  };
  const make = <S extends DescService>(service: S, url: string | undefined) =>
    url ? createClient(service, createGrpcTransport({ baseUrl: url, interceptors: [auth] })) : undefined;
  const catalogue = make(CatalogueService, urls.catalogue);
  const ledger = make(LedgerService, urls['entitlement-ledger']);
  if (!catalogue || !ledger) throw new Error('the catalogue and the entitlement ledger must run');
  const revenue = make(RevenueService, urls['revenue-recognition']);
  const expiry = make(ExpiryService, urls['expiry-scheduler']);
  const billing = make(BillingService, urls['billing-integration']);
  return { catalogue, ledger, ...(revenue ? { revenue } : {}), ...(expiry ? { expiry } : {}), ...(billing ? { billing } : {}) };
}
