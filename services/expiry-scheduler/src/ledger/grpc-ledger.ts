import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport, Http2SessionManager } from '@connectrpc/connect-node';
import {
  EnterGraceRequestSchema,
  ExpireRequestSchema,
  LedgerService,
  UnfreezeRequestSchema,
} from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { traceContextInterceptor } from '@punchcard/platform';
import { LedgerCallError, type LedgerOutcome, type LedgerPort } from './port.js';

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

  async function call<T extends { entry?: unknown }>(tenantId: string, method: string, run: (headers: Headers) => Promise<T>): Promise<LedgerOutcome> {
    const headers = new Headers({ authorization: `Bearer ${await options.tokenFor(tenantId)}` });
    try {
      const response = await run(headers);
      return { changed: response.entry !== undefined };
    } catch (err) {
      const e = ConnectError.from(err);
      throw new LedgerCallError(codeName(e.code), `ledger ${method}: ${e.rawMessage || e.message}`, { cause: err });
    }
  }

  return {
    enterGrace: (c) =>
      call(c.tenantId, 'EnterGrace', (headers) =>
        client.enterGrace(
          create(EnterGraceRequestSchema, {
            idempotencyKey: c.idempotencyKey,
            entitlementId: c.entitlementId,
            expiryTime: timestampFromDate(c.expiryTime),
            graceEndTime: timestampFromDate(c.graceEndTime),
          }),
          { headers },
        ),
      ),
    expire: (c) =>
      call(c.tenantId, 'Expire', (headers) =>
        client.expire(
          create(ExpireRequestSchema, { idempotencyKey: c.idempotencyKey, entitlementId: c.entitlementId, dueTime: timestampFromDate(c.dueTime), reason: c.reason }),
          { headers },
        ),
      ),
    unfreeze: (c) =>
      call(c.tenantId, 'Unfreeze', (headers) =>
        client.unfreeze(create(UnfreezeRequestSchema, { idempotencyKey: c.idempotencyKey, entitlementId: c.entitlementId, reason: c.reason }), { headers }),
      ),
    close: () => sessions.abort(),
  };
}

/** `Code.DeadlineExceeded` -> `deadline_exceeded`, the gRPC status names. */
function codeName(code: Code): string {
  return (Code[code] ?? 'Unknown').replace(/(?<!^)([A-Z])/g, '_$1').toLowerCase();
}
