import { randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import type { HandlerContext } from '@connectrpc/connect';
import {
  EntitlementSchema,
  EntitlementStatus,
  LedgerService,
  PurchaseResponseSchema,
  UpgradeResponseSchema,
  type Entitlement,
  type PurchaseRequest,
  type PurchaseResponse,
  type UpgradeRequest,
  type UpgradeResponse,
} from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { verifyJwt } from './jwt.js';

export interface PurchaseCall {
  tenantId: string;
  roles: string[];
  request: PurchaseRequest;
}

export interface UpgradeCall {
  tenantId: string;
  roles: string[];
  request: UpgradeRequest;
}

/**
 * A stand-in for the entitlement ledger's Purchase, GetEntitlement, QuoteUpgrade and Upgrade: a real
 * Connect/gRPC server (h2c), idempotent by (tenant, idempotency_key) as the ledger promises,
 * requiring a `system` token. `failNext` makes the next Purchase or Upgrade calls fail;
 * `applyThenFail` applies one but answers Unavailable (a lost response). An upgrade costs what
 * `amountDue` says for the entitlement (tests change it, as sessions used would), and like the real
 * ledger refuses one whose `expected_amount_due` differs.
 */
export async function startFakeLedger(secret: string) {
  const entitlements = new Map<string, PurchaseResponse>();
  const calls: PurchaseCall[] = [];
  const upgradeCalls: UpgradeCall[] = [];
  const upgrades = new Map<string, UpgradeResponse>();
  /** Every entitlement by tenant/entitlement id: purchased, upgraded to, or added by a test. */
  const held = new Map<string, Entitlement>();
  /** What upgrading an entitlement costs now, by tenant/entitlement id. */
  const amountDue = new Map<string, bigint>();
  const state = { failNext: 0, applyThenFail: 0 };

  const caller = (ctx: HandlerContext) => {
    const token = /^Bearer (.+)$/.exec(ctx.requestHeader.get('authorization') ?? '')?.[1];
    const claims = token ? verifyJwt(token, secret) : undefined;
    if (!claims) throw new ConnectError('bad token', Code.Unauthenticated);
    return { roles: claims.roles as string[], tenantId: claims.tenant_id as string };
  };
  const system = (roles: string[]) => {
    if (!roles.includes('system')) throw new ConnectError('requires role system', Code.PermissionDenied);
  };
  const entitlement = (tenantId: string, entitlementId: string) => {
    const e = held.get(`${tenantId}/${entitlementId}`);
    if (!e) throw new ConnectError(`entitlement ${entitlementId} not found`, Code.NotFound);
    return e;
  };
  const quoteOf = (tenantId: string, e: Entitlement, target: string) => {
    if (e.status !== EntitlementStatus.ACTIVE) throw new ConnectError(`entitlement ${e.entitlementId} is ${EntitlementStatus[e.status]}; cannot upgrade`, Code.FailedPrecondition);
    const due = amountDue.get(`${tenantId}/${e.entitlementId}`);
    if (due === undefined) throw new ConnectError(`definition ${e.terms?.definitionId ?? '?'} cannot be upgraded to ${target}`, Code.FailedPrecondition);
    return { currencyCode: 'SGD', amountMinor: due };
  };

  /** An entitlement the ledger holds (bought elsewhere, or arrived by a transfer); `due` = what upgrading it costs. */
  function add(tenantId: string, o: { memberId: string; branchId?: string; due?: bigint; entitlementId?: string }): string {
    const entitlementId = o.entitlementId ?? randomUUID();
    held.set(`${tenantId}/${entitlementId}`, create(EntitlementSchema, { tenantId, entitlementId, memberId: o.memberId, purchaseBranchId: o.branchId ?? 'b1', status: EntitlementStatus.ACTIVE, version: 1n }));
    if (o.due !== undefined) amountDue.set(`${tenantId}/${entitlementId}`, o.due);
    return entitlementId;
  }

  const routes = (router: ConnectRouter) =>
    router.service(LedgerService, {
      async getEntitlement(req, ctx) {
        const { roles, tenantId } = caller(ctx);
        system(roles);
        return { entitlement: entitlement(tenantId, req.entitlementId) };
      },
      async quoteUpgrade(req, ctx) {
        const { roles, tenantId } = caller(ctx);
        system(roles);
        const e = entitlement(tenantId, req.entitlementId);
        return { quote: { entitlementId: e.entitlementId, toDefinitionId: req.targetDefinitionId, amountDue: quoteOf(tenantId, e, req.targetDefinitionId) } };
      },
      async upgrade(req, ctx) {
        const { roles, tenantId } = caller(ctx);
        upgradeCalls.push({ tenantId, roles, request: req });
        system(roles);
        if (state.failNext > 0) {
          state.failNext--;
          throw new ConnectError('ledger is restarting', Code.Unavailable);
        }
        const key = `${tenantId}/${req.idempotencyKey}`;
        let res = upgrades.get(key);
        if (!res) {
          const source = entitlement(tenantId, req.entitlementId);
          const due = quoteOf(tenantId, source, req.targetDefinitionId);
          if (req.expectedAmountDue && req.expectedAmountDue.amountMinor !== due.amountMinor) {
            throw new ConnectError(`expected_amount_due: upgrading entitlement ${source.entitlementId} costs ${due.amountMinor} SGD now, not ${req.expectedAmountDue.amountMinor} SGD`, Code.FailedPrecondition);
          }
          source.status = EntitlementStatus.UPGRADED;
          const target = create(EntitlementSchema, {
            tenantId,
            entitlementId: randomUUID(),
            memberId: source.memberId,
            purchaseBranchId: req.branchId || source.purchaseBranchId,
            status: EntitlementStatus.ACTIVE,
            paymentReference: req.paymentReference,
            originEntitlementId: source.entitlementId,
            version: 1n,
          });
          held.set(`${tenantId}/${target.entitlementId}`, target);
          res = create(UpgradeResponseSchema, { source, target });
          upgrades.set(key, res);
        }
        if (state.applyThenFail > 0) {
          state.applyThenFail--;
          throw new ConnectError('connection reset after commit', Code.Unavailable);
        }
        return res;
      },
      async purchase(req, ctx) {
        const { roles, tenantId } = caller(ctx);
        calls.push({ tenantId, roles, request: req });
        system(roles);
        if (state.failNext > 0) {
          state.failNext--;
          throw new ConnectError('ledger is restarting', Code.Unavailable);
        }
        const key = `${tenantId}/${req.idempotencyKey}`;
        let res = entitlements.get(key);
        if (!res) {
          res = create(PurchaseResponseSchema, {
            entitlement: create(EntitlementSchema, {
              tenantId,
              entitlementId: randomUUID(),
              memberId: req.memberId,
              paymentReference: req.paymentReference,
              purchaseBranchId: req.branchId,
              status: EntitlementStatus.ACTIVE,
              version: 1n,
            }),
          });
          entitlements.set(key, res);
          held.set(`${tenantId}/${res.entitlement!.entitlementId}`, res.entitlement!);
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
    upgradeCalls,
    /** Upgrades made, by tenant/idempotency key. */
    upgrades,
    state,
    add,
    amountDue,
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
