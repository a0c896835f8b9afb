import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import {
  ExpireBatchRequestSchema,
  LedgerService,
  UnfreezeRequestSchema,
  type ExpireBatchItemSchema,
} from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { traceContextInterceptor } from '@punchcard/platform';
import { LedgerCallError, type ExpiryCall, type LedgerOutcome, type LedgerPort } from './port.js';

export interface GrpcLedgerOptions {
  /** The ledger's API, e.g. `http://entitlement-ledger:7102`. */
  baseUrl: string;
  /** A bearer token for the tenant with role `system` (the ledger takes the tenant from it). */
  tokenFor: (tenantId: string) => string | Promise<string>;
  /** Per call; default 10 s. */
  timeoutMs?: number;
}

/** The ledger over plain gRPC (HTTP/2), one multiplexed connection. */
export function grpcLedger(options: GrpcLedgerOptions): LedgerPort & { close(): void } {
  const sessions = new Http2SessionManager(options.baseUrl);
  const client = createClient(
    LedgerService,
    createGrpcTransport({
      baseUrl: options.baseUrl,
      sessionManager: sessions,
      defaultTimeoutMs: options.timeoutMs ?? 10_000,
      interceptors: [traceContextInterceptor()],
    }),
  );

  async function call<T>(tenantId: string, method: string, run: (headers: Headers) => Promise<T>): Promise<T> {
    const headers = new Headers({ authorization: `Bearer ${await options.tokenFor(tenantId)}` });
    try {
      return await run(headers);
    } catch (err) {
      const e = ConnectError.from(err);
      throw new LedgerCallError(codeName(e.code), `ledger ${method}: ${e.rawMessage || e.message}`, { cause: err });
    }
  }

  return {
    async expireBatch(tenantId, calls) {
      const response = await call(tenantId, 'ExpireBatch', (headers) =>
        // Whether each changed something is all the sweep reads: no entitlements to send and decode.
        client.expireBatch(create(ExpireBatchRequestSchema, { items: calls.map(itemOf), omitEntitlements: true }), { headers }),
      );
      if (response.results.length !== calls.length) {
        throw new LedgerCallError('internal', `ledger ExpireBatch: ${response.results.length} results for ${calls.length} items`);
      }
      return response.results.map(({ result: r }, i): LedgerOutcome | LedgerCallError => {
        const method = calls[i]!.action === 'expire' ? 'Expire' : 'EnterGrace';
        if (r.case === 'error') return new LedgerCallError(codeName(r.value.code), `ledger ${method}: ${r.value.message}`);
        if (r.case === undefined) return new LedgerCallError('internal', `ledger ${method}: no result`);
        return { changed: r.value.entry !== undefined };
      });
    },
    async unfreeze(c) {
      const response = await call(c.tenantId, 'Unfreeze', (headers) =>
        client.unfreeze(create(UnfreezeRequestSchema, { idempotencyKey: c.idempotencyKey, entitlementId: c.entitlementId, reason: c.reason }), { headers }),
      );
      return { changed: response.entry !== undefined };
    },
    close: () => sessions.abort(),
  };
}

function itemOf(c: ExpiryCall): MessageInitShape<typeof ExpireBatchItemSchema> {
  return c.action === 'expire'
    ? { call: { case: 'expire', value: { idempotencyKey: c.idempotencyKey, entitlementId: c.entitlementId, dueTime: timestampFromDate(c.dueTime), reason: c.reason } } }
    : {
        call: {
          case: 'enterGrace',
          value: { idempotencyKey: c.idempotencyKey, entitlementId: c.entitlementId, expiryTime: timestampFromDate(c.expiryTime), graceEndTime: timestampFromDate(c.graceEndTime) },
        },
      };
}

/** `Code.DeadlineExceeded` -> `deadline_exceeded`, the gRPC status names. */
function codeName(code: Code): string {
  return (Code[code] ?? 'Unknown').replace(/(?<!^)([A-Z])/g, '_$1').toLowerCase();
}
