import { createClient, type Client } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { LedgerService } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { traceContextInterceptor } from '@punchcard/platform';

export interface PurchaseInput {
  tenantId: string;
  /** The payment id: the ledger's idempotency key and the entitlement's payment reference. */
  paymentId: string;
  memberId: string;
  definitionId: string;
  branchId: string;
  purchaseTime: Date;
}

/** The one ledger call billing makes: create the entitlement for a captured payment. */
export interface LedgerPurchaser {
  purchase(input: PurchaseInput): Promise<{ entitlementId: string }>;
}

/** Mints the `system`-role bearer token for a tenant (platform's mintToken with the service's secret). */
export type SystemTokenMinter = (tenantId: string) => Promise<string>;

/**
 * LedgerService.Purchase over gRPC with a system token minted for the payment's tenant. The payment
 * id is the idempotency key, so however often the saga retries, the ledger creates one entitlement.
 */
export function ledgerPurchaser(options: { baseUrl: string; mintSystemToken: SystemTokenMinter; timeoutMs?: number }): LedgerPurchaser & { close(): void } {
  const transport = createGrpcTransport({ baseUrl: options.baseUrl, interceptors: [traceContextInterceptor()] });
  const client: Client<typeof LedgerService> = createClient(LedgerService, transport);
  return {
    async purchase(input) {
      const token = await options.mintSystemToken(input.tenantId);
      const res = await client.purchase(
        {
          idempotencyKey: input.paymentId,
          memberId: input.memberId,
          definitionId: input.definitionId,
          branchId: input.branchId,
          paymentReference: input.paymentId,
          purchaseTime: timestampFromDate(input.purchaseTime),
        },
        { headers: { authorization: `Bearer ${token}` }, timeoutMs: options.timeoutMs ?? 10_000 },
      );
      const entitlementId = res.entitlement?.entitlementId;
      if (!entitlementId) throw new Error('ledger Purchase returned no entitlement');
      return { entitlementId };
    },
    close() {},
  };
}
