import { create, type MessageShape } from '@bufbuild/protobuf';
import {
  ExportReportResponseSchema,
  GetContractResponseSchema,
  GetLiabilityRollForwardResponseSchema,
  GetPackageProfitResponseSchema,
  GetRecognisedRevenueResponseSchema,
  GetRevenueSplitResponseSchema,
  GetSettlementResponseSchema,
  ListJournalEntriesResponseSchema,
  Report,
  type ExportReportRequest,
  type GetContractRequest,
  type GetLiabilityRollForwardRequest,
  type GetPackageProfitRequest,
  type GetRecognisedRevenueRequest,
  type GetRevenueSplitRequest,
  type GetSettlementRequest,
  type ListJournalEntriesRequest,
  type Period,
  type RevenueService,
} from '@punchcard/contracts/punchcard/revenue/v1/revenue_pb';
import { invalidArgument, notFound, permissionDenied, type Caller } from '@punchcard/platform';
import type { Kysely } from 'kysely';
import { parsePeriod, type DateRange } from '../domain/calendar.js';
import { marginBps, type RollForward } from '../domain/reports.js';
import { contractToProto, journalEntryToProto, money } from '../mapping.js';
import { getTenant } from '../store/catalogue.js';
import { loadContract } from '../store/contracts.js';
import {
  journalPage,
  profitPage,
  recognisedPage,
  revenueSplit,
  rollForwardPage,
  rollForwardTotal,
  settlement,
  type ReportScope,
} from '../store/reports.js';
import type { RevenueDb } from '../store/schema.js';
import { toConnectError } from './errors.js';
import { journalCsv, profitCsv, recognisedCsv, rollForwardCsv, settlementCsv, splitCsv } from './export.js';
import { decodePageToken, encodePageToken, MAX_PAGE_SIZE, pageSize } from './pagination.js';

/** Revenue figures are for finance: managers, admins, finance staff and system integrations. */
export const READ_ROLES = ['manager', 'admin', 'finance', 'system'] as const;

type Methods = (typeof RevenueService)['method'];
type Out<K extends keyof Methods> = MessageShape<Methods[K]['output']>;

export interface HandlerDeps {
  db: Kysely<RevenueDb>;
}

export type RevenueHandlers = {
  [K in keyof Methods]: (caller: Caller, request: MessageShape<Methods[K]['input']>) => Promise<Out<K>>;
};

function authorise(caller: Caller, branchId: string | null): void {
  if (!READ_ROLES.some((r) => caller.roles.includes(r))) {
    throw permissionDenied(`requires role ${READ_ROLES.join(' or ')}; caller ${caller.subject} has ${caller.roles.join(', ') || 'no roles'}`);
  }
  // A caller limited to some branches sees only those branches' figures (null: checked by the handler).
  if (caller.branchIds && branchId !== null) {
    if (!branchId) throw permissionDenied(`caller ${caller.subject} is limited to branches ${caller.branchIds.join(', ')}: set branch_id`);
    if (!caller.branchIds.includes(branchId)) throw permissionDenied(`caller ${caller.subject} may not see branch ${branchId}`);
  }
}

function requirePeriod(period: Period | undefined): DateRange {
  if (!period) throw invalidArgument('period', 'is required (start_date inclusive, end_date exclusive, YYYY-MM-DD)');
  return parsePeriod(period.startDate, period.endDate);
}

/** A page's rows plus one, to know whether there is a next page without counting. */
async function paged<T>(size: number, fetch: (limit: number) => Promise<T[]>, keyOf: (row: T) => string[], filters: unknown): Promise<{ rows: T[]; next: string }> {
  const rows = await fetch(size + 1);
  if (rows.length <= size) return { rows, next: '' };
  const page = rows.slice(0, size);
  return { rows: page, next: encodePageToken(keyOf(page[page.length - 1]!), filters) };
}

async function tenantCurrency(db: Kysely<RevenueDb>, tenantId: string): Promise<string> {
  const tenant = await getTenant(db, tenantId);
  if (!tenant) throw notFound('tenant', tenantId);
  return tenant.currency;
}

function rollForwardToProto(currency: string, r: RollForward) {
  const m = (v: bigint) => money(currency, v);
  return {
    opening: m(r.opening),
    sales: m(r.sales),
    topUps: m(r.topUps),
    recognised: m(r.recognised),
    breakage: m(r.breakage),
    refunds: m(r.refunds),
    transfers: m(r.transfers),
    closing: m(r.closing),
  };
}

/**
 * Read-only report RPCs. Every query is scoped to the caller's tenant (from the token, never the
 * request) and reported in the tenant's currency.
 */
export function revenueHandlers(deps: HandlerDeps): RevenueHandlers {
  const { db } = deps;

  const scope = async (caller: Caller, period: Period | undefined, branchId: string, definitionId: string): Promise<ReportScope> => {
    authorise(caller, branchId);
    const range = requirePeriod(period);
    const currency = await tenantCurrency(db, caller.tenantId);
    return { tenantId: caller.tenantId, currency, period: range, ...(branchId ? { branchId } : {}), ...(definitionId ? { definitionId } : {}) };
  };

  const handlers: RevenueHandlers = {
    async getContract(caller, req: GetContractRequest) {
      authorise(caller, null);
      if (!req.entitlementId) throw invalidArgument('entitlement_id', 'is required');
      const contract = await loadContract(db, caller.tenantId, req.entitlementId);
      if (!contract) throw notFound('entitlement', req.entitlementId);
      if (caller.branchIds && !caller.branchIds.includes(contract.liabilityBranchId)) throw notFound('entitlement', req.entitlementId);
      return create(GetContractResponseSchema, { contract: contractToProto(contract) });
    },

    async listJournalEntries(caller, req: ListJournalEntriesRequest) {
      authorise(caller, req.branchId);
      const period = req.period && (req.period.startDate || req.period.endDate) ? parsePeriod(req.period.startDate, req.period.endDate) : undefined;
      const filters = { r: 'journal', period, b: req.branchId, e: req.entitlementId };
      const size = pageSize(req.pageSize);
      const key = decodePageToken(req.pageToken, filters, 2);
      if (key && !/^\d+$/.test(key[1]!)) throw invalidArgument('page_token', 'is not a token this service issued');
      const { rows, next } = await paged(
        size,
        (limit) =>
          journalPage(db, {
            tenantId: caller.tenantId,
            ...(period ? { period } : {}),
            ...(req.branchId ? { branchId: req.branchId } : {}),
            ...(req.entitlementId ? { entitlementId: req.entitlementId } : {}),
            ...(key ? { after: [key[0]!, BigInt(key[1]!)] as const } : {}),
            limit,
          }),
        (e) => [e.accountingDate, e.seq.toString()],
        filters,
      );
      return create(ListJournalEntriesResponseSchema, { entries: rows.map(journalEntryToProto), nextPageToken: next });
    },

    async getLiabilityRollForward(caller, req: GetLiabilityRollForwardRequest) {
      const s = await scope(caller, req.period, req.branchId, req.definitionId);
      const filters = { r: 'roll-forward', ...s };
      const key = decodePageToken(req.pageToken, filters, 2);
      const { rows, next } = await paged(
        pageSize(req.pageSize),
        (limit) => rollForwardPage(db, s, { ...(key ? { after: [key[0]!, key[1]!] as const } : {}), limit }),
        (r) => [r.branchId, r.definitionId],
        filters,
      );
      const total = await rollForwardTotal(db, s);
      return create(GetLiabilityRollForwardResponseSchema, {
        rows: rows.map((r) => ({ branchId: r.branchId, definitionId: r.definitionId, ...rollForwardToProto(s.currency, r.rollForward) })),
        total: { branchId: s.branchId ?? '', definitionId: s.definitionId ?? '', ...rollForwardToProto(s.currency, total) },
        nextPageToken: next,
      });
    },

    async getRecognisedRevenue(caller, req: GetRecognisedRevenueRequest) {
      const s = await scope(caller, req.period, req.branchId, req.definitionId);
      const filters = { r: 'recognised', ...s };
      const key = decodePageToken(req.pageToken, filters, 3);
      const { rows, next } = await paged(
        pageSize(req.pageSize),
        (limit) => recognisedPage(db, s, { ...(key ? { after: [key[0]!, key[1]!, key[2]!] as const } : {}), limit }),
        (r) => [r.accountingDate, r.branchId, r.definitionId],
        filters,
      );
      return create(GetRecognisedRevenueResponseSchema, {
        rows: rows.map((r) => ({
          branchId: r.branchId,
          definitionId: r.definitionId,
          accountingDate: r.accountingDate,
          packageRevenue: money(s.currency, r.packageRevenue),
          breakageRevenue: money(s.currency, r.breakageRevenue),
          sessions: r.sessions,
        })),
        nextPageToken: next,
      });
    },

    async getRevenueSplit(caller, req: GetRevenueSplitRequest) {
      const s = await scope(caller, req.period, req.branchId, '');
      const split = await revenueSplit(db, s);
      return create(GetRevenueSplitResponseSchema, {
        packageRevenue: money(s.currency, split.packageRevenue),
        breakageRevenue: money(s.currency, split.breakageRevenue),
        oneOffVisitRevenue: money(s.currency, split.oneOffVisitRevenue),
        packageSessions: split.packageSessions,
        oneOffVisits: split.oneOffVisits,
      });
    },

    async getPackageProfit(caller, req: GetPackageProfitRequest) {
      const s = await scope(caller, req.period, req.branchId, req.definitionId);
      const filters = { r: 'profit', ...s };
      const key = decodePageToken(req.pageToken, filters, 2);
      const { rows, next } = await paged(
        pageSize(req.pageSize),
        (limit) => profitPage(db, s, { ...(key ? { after: [key[0]!, key[1]!] as const } : {}), limit }),
        (r) => [r.definitionId, r.branchId],
        filters,
      );
      return create(GetPackageProfitResponseSchema, {
        rows: rows.map((r) => {
          const recognised = r.packageRevenue + r.breakageRevenue;
          const profit = recognised - r.deliveryCost;
          return {
            definitionId: r.definitionId,
            branchId: r.branchId,
            recognised: money(s.currency, recognised),
            deliveryCost: money(s.currency, r.deliveryCost),
            profit: money(s.currency, profit),
            marginBps: marginBps(profit, recognised),
            sessions: r.sessions,
            packageRevenue: money(s.currency, r.packageRevenue),
            breakageRevenue: money(s.currency, r.breakageRevenue),
          };
        }),
        nextPageToken: next,
      });
    },

    async getSettlement(caller, req: GetSettlementRequest) {
      const s = await scope(caller, req.period, req.branchId, '');
      const rows = await settlement(db, s);
      return create(GetSettlementResponseSchema, {
        rows: rows.map((r) => ({
          fromBranchId: r.fromBranchId,
          toBranchId: r.toBranchId,
          amount: money(s.currency, r.amount),
          sessions: r.sessions,
          dueFrom: money(s.currency, r.dueFrom),
        })),
      });
    },

    async exportReport(caller, req: ExportReportRequest) {
      const s = await scope(caller, req.period, req.branchId, req.definitionId);
      const all = async <T>(fetch: (after: string[] | undefined, limit: number) => Promise<T[]>, keyOf: (row: T) => string[]): Promise<T[]> => {
        const out: T[] = [];
        for (let after: string[] | undefined; ; ) {
          const rows = await fetch(after, MAX_PAGE_SIZE);
          out.push(...rows);
          if (rows.length < MAX_PAGE_SIZE) return out;
          after = keyOf(rows[rows.length - 1]!);
        }
      };
      let csv: string;
      switch (req.report) {
        case Report.LIABILITY_ROLL_FORWARD: {
          const rows = await all((a, limit) => rollForwardPage(db, s, { ...(a ? { after: [a[0]!, a[1]!] as const } : {}), limit }), (r) => [r.branchId, r.definitionId]);
          csv = rollForwardCsv(s.currency, rows, await rollForwardTotal(db, s));
          break;
        }
        case Report.RECOGNISED_REVENUE:
          csv = recognisedCsv(
            s.currency,
            await all((a, limit) => recognisedPage(db, s, { ...(a ? { after: [a[0]!, a[1]!, a[2]!] as const } : {}), limit }), (r) => [r.accountingDate, r.branchId, r.definitionId]),
          );
          break;
        case Report.REVENUE_SPLIT:
          csv = splitCsv(s.currency, await revenueSplit(db, s));
          break;
        case Report.PACKAGE_PROFIT:
          csv = profitCsv(s.currency, await all((a, limit) => profitPage(db, s, { ...(a ? { after: [a[0]!, a[1]!] as const } : {}), limit }), (r) => [r.definitionId, r.branchId]));
          break;
        case Report.JOURNAL: {
          const entries = await all(
            (a, limit) =>
              journalPage(db, {
                tenantId: s.tenantId,
                period: s.period,
                ...(s.branchId ? { branchId: s.branchId } : {}),
                ...(s.definitionId ? { definitionId: s.definitionId } : {}),
                ...(a ? { after: [a[0]!, BigInt(a[1]!)] as const } : {}),
                limit,
              }),
            (e) => [e.accountingDate, e.seq.toString()],
          );
          csv = journalCsv(entries);
          break;
        }
        case Report.SETTLEMENT:
          csv = settlementCsv(s.currency, await settlement(db, s));
          break;
        default:
          throw invalidArgument('report', `must name a report, got ${req.report}`);
      }
      const name = Report[req.report].toLowerCase().replaceAll('_', '-');
      return create(ExportReportResponseSchema, {
        fileName: `${name}_${s.period.start}_${s.period.end}${s.branchId ? `_${s.branchId}` : ''}.csv`,
        csv: new TextEncoder().encode(csv),
      });
    },
  };

  // Domain rule errors (a malformed period) become InvalidArgument naming the field.
  const wrapped = {} as Record<string, unknown>;
  for (const [name, fn] of Object.entries(handlers)) {
    wrapped[name] = async (caller: Caller, req: unknown) => {
      try {
        return await (fn as (c: Caller, r: unknown) => Promise<unknown>)(caller, req);
      } catch (err) {
        throw toConnectError(err);
      }
    };
  }
  return wrapped as RevenueHandlers;
}
