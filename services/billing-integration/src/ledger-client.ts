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

export interface UpgradeInput {
  tenantId: string;
  /** The payment id: the ledger's idempotency key and the new entitlement's payment reference. */
  paymentId: string;
  entitlementId: string;
  targetDefinitionId: string;
  branchId: string;
  /** What the member paid: the ledger refuses the upgrade if the amount due is another by now. */
  amountDue: { currency: string; amountMinor: bigint };
}

export interface UpgradeQuoteInput {
  tenantId: string;
  entitlementId: string;
  targetDefinitionId: string;
}

/** What billing needs of an entitlement to sell its upgrade. */
export interface EntitlementFacts {
  memberId: string;
  purchaseBranchId: string;
}

/** The ledger calls billing makes, each with a system token for the payment's tenant. */
export interface LedgerClient {
  /** Creates the entitlement for a captured payment. */
  purchase(input: PurchaseInput): Promise<{ entitlementId: string }>;
  getEntitlement(tenantId: string, entitlementId: string): Promise<EntitlementFacts>;
  /** QuoteUpgrade's amount due (new price minus the credit for the unused sessions). */
  quoteUpgrade(input: UpgradeQuoteInput): Promise<{ currency: string; amountDueMinor: bigint }>;
  /** Makes the upgrade a captured payment paid for; returns the new entitlement. */
  upgrade(input: UpgradeInput): Promise<{ entitlementId: string }>;
}

/** Mints the `system`-role bearer token for a tenant (platform's mintToken with the service's secret). */
export type SystemTokenMinter = (tenantId: string) => Promise<string>;

/**
 * LedgerService over gRPC with a system token minted for the payment's tenant. Writes carry the
 * payment id as idempotency key, so however often the saga retries, the ledger acts once.
 */
export function ledgerClient(options: { baseUrl: string; mintSystemToken: SystemTokenMinter; timeoutMs?: number }): LedgerClient & { close(): void } {
  const transport = createGrpcTransport({ baseUrl: options.baseUrl, interceptors: [traceContextInterceptor()] });
  const client: Client<typeof LedgerService> = createClient(LedgerService, transport);
  const callOptions = async (tenantId: string) => ({ headers: { authorization: `Bearer ${await options.mintSystemToken(tenantId)}` }, timeoutMs: options.timeoutMs ?? 10_000 });
  return {
    async purchase(input) {
      const res = await client.purchase(
        {
          idempotencyKey: input.paymentId,
          memberId: input.memberId,
          definitionId: input.definitionId,
          branchId: input.branchId,
          paymentReference: input.paymentId,
          purchaseTime: timestampFromDate(input.purchaseTime),
        },
        await callOptions(input.tenantId),
      );
      const entitlementId = res.entitlement?.entitlementId;
      if (!entitlementId) throw new Error('ledger Purchase returned no entitlement');
      return { entitlementId };
    },
    async getEntitlement(tenantId, entitlementId) {
      const res = await client.getEntitlement({ entitlementId }, await callOptions(tenantId));
      if (!res.entitlement) throw new Error('ledger GetEntitlement returned no entitlement');
      return { memberId: res.entitlement.memberId, purchaseBranchId: res.entitlement.purchaseBranchId };
    },
    async quoteUpgrade(input) {
      const res = await client.quoteUpgrade({ entitlementId: input.entitlementId, targetDefinitionId: input.targetDefinitionId }, await callOptions(input.tenantId));
      const due = res.quote?.amountDue;
      if (!due) throw new Error('ledger QuoteUpgrade returned no amount due');
      return { currency: due.currencyCode, amountDueMinor: due.amountMinor };
    },
    async upgrade(input) {
      const res = await client.upgrade(
        {
          idempotencyKey: input.paymentId,
          entitlementId: input.entitlementId,
          targetDefinitionId: input.targetDefinitionId,
          paymentReference: input.paymentId,
          branchId: input.branchId,
          expectedAmountDue: { currencyCode: input.amountDue.currency, amountMinor: input.amountDue.amountMinor },
        },
        await callOptions(input.tenantId),
      );
      const entitlementId = res.target?.entitlementId;
      if (!entitlementId) throw new Error('ledger Upgrade returned no new entitlement');
      return { entitlementId };
    },
    close() {},
  };
}
