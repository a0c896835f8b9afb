import { randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { EntitlementSchema, LedgerService, PurchaseResponseSchema, type PurchaseRequest, type PurchaseResponse } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { verifyJwt } from './jwt.js';

export interface PurchaseCall {
  tenantId: string;
  roles: string[];
  request: PurchaseRequest;
}

/**
 * A stand-in for the entitlement ledger's Purchase: a real Connect/gRPC server (h2c), idempotent by
 * (tenant, idempotency_key) as the ledger promises, requiring a `system` token. `failNext` makes the
 * next calls fail; `applyThenFail` applies a purchase but answers Unavailable (a lost response).
 */
export async function startFakeLedger(secret: string) {
  const entitlements = new Map<string, PurchaseResponse>();
  const calls: PurchaseCall[] = [];
  const state = { failNext: 0, applyThenFail: 0 };

  const routes = (router: ConnectRouter) =>
    router.service(LedgerService, {
      async purchase(req, ctx) {
        const token = /^Bearer (.+)$/.exec(ctx.requestHeader.get('authorization') ?? '')?.[1];
        const claims = token ? verifyJwt(token, secret) : undefined;
        if (!claims) throw new ConnectError('bad token', Code.Unauthenticated);
        const roles = claims.roles as string[];
        const tenantId = claims.tenant_id as string;
        calls.push({ tenantId, roles, request: req });
        if (!roles.includes('system')) throw new ConnectError('requires role system', Code.PermissionDenied);
        if (state.failNext > 0) {
          state.failNext--;
          throw new ConnectError('ledger is restarting', Code.Unavailable);
        }
        const key = `${tenantId}/${req.idempotencyKey}`;
        let res = entitlements.get(key);
        if (!res) {
          res = create(PurchaseResponseSchema, {
            entitlement: create(EntitlementSchema, { tenantId, entitlementId: randomUUID(), memberId: req.memberId, paymentReference: req.paymentReference, purchaseBranchId: req.branchId, version: 1n }),
          });
          entitlements.set(key, res);
        }
        if (state.applyThenFail > 0) {
          state.applyThenFail--;
          throw new ConnectError('connection reset after commit', Code.Unavailable);
        }
        return res;
      },
    });

  const server = http2.createServer(connectNodeAdapter({ routes }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    state,
    /** Entitlements created (distinct purchases), by tenant/idempotency key. */
    entitlements,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) s.destroy();
      }),
  };
}

export type FakeLedger = Awaited<ReturnType<typeof startFakeLedger>>;
