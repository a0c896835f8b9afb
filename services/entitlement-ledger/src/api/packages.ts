import type { ServiceImpl } from '@connectrpc/connect';
import {
  AddHouseholdMemberResponseSchema,
  ApproveRefundResponseSchema,
  CreateHouseholdResponseSchema,
  LedgerService,
  RejectRefundResponseSchema,
  RemoveHouseholdMemberResponseSchema,
  RequestRefundResponseSchema,
  ShareEntitlementResponseSchema,
  TopUpResponseSchema,
  TransferResponseSchema,
  UndoTransferResponseSchema,
  UnshareEntitlementResponseSchema,
  UpgradeResponseSchema,
} from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import { invalid, notFound } from '../domain/errors.js';
import { createHousehold, addHouseholdMember, removeHouseholdMember } from '../operations/households.js';
import { requireUuid } from '../operations/ledger.js';
import {
  quoteUpgradeFor,
  shareEntitlement,
  topUpEntitlement,
  transferEntitlement,
  undoTransfer,
  unshareEntitlement,
  upgradeEntitlement,
  type Moved,
} from '../operations/packages.js';
import { approveRefund, quoteRefundFor, rejectRefund, requestRefund } from '../operations/refunds.js';
import { refundQuoteToProto, upgradeQuoteToProto } from '../proto/detail.js';
import { entitlementToProto, entryToProto, householdKindFromProto, householdToProto, refundStateFromProto, refundToProto } from '../proto/mapping.js';
import { getHousehold, listHouseholds } from '../store/households.js';
import { getRefund, listRefunds } from '../store/refunds.js';
import { ANY_ROLE, atBranch, authorise, MANAGERS, type LedgerApiDeps, type Once } from './handlers.js';
import { decodeToken, encodeToken, pageSize } from './pagination.js';

type PackageMethods =
  | 'createHousehold'
  | 'getHousehold'
  | 'listHouseholds'
  | 'addHouseholdMember'
  | 'removeHouseholdMember'
  | 'shareEntitlement'
  | 'unshareEntitlement'
  | 'transfer'
  | 'undoTransfer'
  | 'topUp'
  | 'quoteUpgrade'
  | 'upgrade'
  | 'quoteRefund'
  | 'requestRefund'
  | 'approveRefund'
  | 'rejectRefund'
  | 'getRefund'
  | 'listRefunds';

const M = LedgerService.method;

function moved(r: Moved) {
  return {
    source: entitlementToProto(r.source.entitlement),
    target: entitlementToProto(r.target.entitlement),
  };
}

function seqCursor(token: string): bigint {
  const cursor = decodeToken(token, ['s']);
  if (!cursor) return 0n;
  if (!/^\d+$/.test(cursor.s)) throw invalid('page_token', 'is not a token this list returned');
  return BigInt(cursor.s);
}

/** Households, sharing, transfer, top-up, upgrade and the refund workflow (issue 7). */
export function packageHandlers(deps: LedgerApiDeps, once: Once): Pick<ServiceImpl<typeof LedgerService>, PackageMethods> {
  const { db } = deps;
  return {
    async createHousehold(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'CreateHousehold');
      return once('CreateHousehold', M.createHousehold.input, req, CreateHouseholdResponseSchema, caller, async (tx) => {
        const h = await createHousehold(tx, deps, caller, {
          name: req.name,
          kind: householdKindFromProto(req.kind),
          ownerMemberId: req.ownerMemberId,
          memberIds: req.memberIds,
        });
        return { household: householdToProto(h) };
      });
    },

    async getHousehold(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'GetHousehold');
      const id = requireUuid('household_id', req.householdId);
      const h = await getHousehold(db, caller.tenantId, id);
      if (!h) throw notFound('household', id);
      return { household: householdToProto(h) };
    },

    async listHouseholds(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'ListHouseholds');
      const limit = pageSize(req.pageSize);
      const rows = await listHouseholds(db, caller.tenantId, req.memberId || undefined, seqCursor(req.pageToken), limit + 1);
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        households: page.map(householdToProto),
        nextPageToken: rows.length > limit && last ? encodeToken({ s: last.seq.toString() }) : '',
      };
    },

    async addHouseholdMember(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'AddHouseholdMember');
      return once('AddHouseholdMember', M.addHouseholdMember.input, req, AddHouseholdMemberResponseSchema, caller, async (tx) => ({
        household: householdToProto(await addHouseholdMember(tx, deps, caller, { householdId: req.householdId, memberId: req.memberId })),
      }));
    },

    async removeHouseholdMember(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'RemoveHouseholdMember');
      return once('RemoveHouseholdMember', M.removeHouseholdMember.input, req, RemoveHouseholdMemberResponseSchema, caller, async (tx) => ({
        household: householdToProto(await removeHouseholdMember(tx, deps, caller, { householdId: req.householdId, memberId: req.memberId })),
      }));
    },

    async shareEntitlement(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'ShareEntitlement');
      return once('ShareEntitlement', M.shareEntitlement.input, req, ShareEntitlementResponseSchema, caller, async (tx) => ({
        entitlement: entitlementToProto(await shareEntitlement(tx, deps, caller, { entitlementId: req.entitlementId, householdId: req.householdId })),
      }));
    },

    async unshareEntitlement(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'UnshareEntitlement');
      return once('UnshareEntitlement', M.unshareEntitlement.input, req, UnshareEntitlementResponseSchema, caller, async (tx) => ({
        entitlement: entitlementToProto(await unshareEntitlement(tx, deps, caller, { entitlementId: req.entitlementId })),
      }));
    },

    async transfer(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'Transfer');
      return once('Transfer', M.transfer.input, req, TransferResponseSchema, caller, async (tx, key) => {
        const r = await transferEntitlement(tx, deps, caller, { entitlementId: req.entitlementId, toMemberId: req.toMemberId, reason: req.reason }, key);
        return { ...moved(r), transferOut: entryToProto(r.source.entry), transferIn: entryToProto(r.target.entry) };
      });
    },

    async undoTransfer(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'UndoTransfer');
      return once('UndoTransfer', M.undoTransfer.input, req, UndoTransferResponseSchema, caller, async (tx, key) => {
        const r = await undoTransfer(tx, deps, caller, { transferId: req.transferId, reason: req.reason }, key);
        return { ...moved(r), transferOut: entryToProto(r.source.entry), transferIn: entryToProto(r.target.entry) };
      });
    },

    async topUp(req, ctx) {
      const auth = deps.callerOf(ctx);
      const caller = authorise(auth, ANY_ROLE, 'TopUp');
      atBranch(auth, req.branchId, 'branch_id');
      return once('TopUp', M.topUp.input, req, TopUpResponseSchema, caller, async (tx, key) => {
        const r = await topUpEntitlement(
          tx,
          deps,
          caller,
          { entitlementId: req.entitlementId, sessions: req.sessions, paymentReference: req.paymentReference, branchId: req.branchId, reason: req.reason },
          key,
        );
        return r.encoded;
      });
    },

    async quoteUpgrade(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'QuoteUpgrade');
      const quote = await quoteUpgradeFor(db, deps, caller, { entitlementId: req.entitlementId, targetDefinitionId: req.targetDefinitionId });
      return { quote: upgradeQuoteToProto(quote) };
    },

    async upgrade(req, ctx) {
      const auth = deps.callerOf(ctx);
      const caller = authorise(auth, ANY_ROLE, 'Upgrade');
      atBranch(auth, req.branchId, 'branch_id');
      return once('Upgrade', M.upgrade.input, req, UpgradeResponseSchema, caller, async (tx, key) => {
        const r = await upgradeEntitlement(
          tx,
          deps,
          caller,
          {
            entitlementId: req.entitlementId,
            targetDefinitionId: req.targetDefinitionId,
            paymentReference: req.paymentReference,
            branchId: req.branchId,
            reason: req.reason,
            expectedAmountDue: req.expectedAmountDue && { currency: req.expectedAmountDue.currencyCode, amountMinor: req.expectedAmountDue.amountMinor },
          },
          key,
        );
        return { ...moved(r), upgradeOut: entryToProto(r.source.entry), upgradeIn: entryToProto(r.target.entry), quote: upgradeQuoteToProto(r.quote) };
      });
    },

    async quoteRefund(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'QuoteRefund');
      return { quote: refundQuoteToProto(await quoteRefundFor(db, deps, caller, { entitlementId: req.entitlementId })) };
    },

    async requestRefund(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'RequestRefund');
      return once('RequestRefund', M.requestRefund.input, req, RequestRefundResponseSchema, caller, async (tx) => {
        const r = await requestRefund(tx, deps, caller, { entitlementId: req.entitlementId, reason: req.reason });
        return { refund: refundToProto(r.refund), entitlement: entitlementToProto(r.entitlement) };
      });
    },

    async approveRefund(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), MANAGERS, 'ApproveRefund');
      return once('ApproveRefund', M.approveRefund.input, req, ApproveRefundResponseSchema, caller, async (tx) => ({
        refund: refundToProto(await approveRefund(tx, deps, caller, { refundId: req.refundId, note: req.note })),
      }));
    },

    async rejectRefund(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), MANAGERS, 'RejectRefund');
      return once('RejectRefund', M.rejectRefund.input, req, RejectRefundResponseSchema, caller, async (tx, key) => {
        const r = await rejectRefund(tx, deps, caller, { refundId: req.refundId, reason: req.reason }, key);
        return { refund: refundToProto(r.refund), entitlement: entitlementToProto(r.entitlement) };
      });
    },

    async getRefund(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'GetRefund');
      const id = requireUuid('refund_id', req.refundId);
      const r = await getRefund(db, caller.tenantId, id);
      if (!r) throw notFound('refund', id);
      return { refund: refundToProto(r) };
    },

    async listRefunds(req, ctx) {
      const caller = authorise(deps.callerOf(ctx), ANY_ROLE, 'ListRefunds');
      const limit = pageSize(req.pageSize);
      const entitlementId = req.entitlementId ? requireUuid('entitlement_id', req.entitlementId) : undefined;
      const state = refundStateFromProto(req.state);
      const rows = await listRefunds(
        db,
        caller.tenantId,
        { ...(entitlementId ? { entitlementId } : {}), ...(state ? { state } : {}) },
        seqCursor(req.pageToken),
        limit + 1,
      );
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        refunds: page.map(refundToProto),
        nextPageToken: rows.length > limit && last ? encodeToken({ s: last.seq.toString() }) : '',
      };
    },
  };
}
