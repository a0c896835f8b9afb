import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import {
  DefinitionStatus,
  DefinitionTermsSchema,
  EarningRule,
  ExpiryAnchor,
  ExpiryMode,
  PlanTier,
  RefundMethod,
  SessionOrder,
  TransferScope,
  type PackageDefinition,
} from '@punchcard/contracts/punchcard/catalogue/v1/catalogue_pb';
import type { Clients } from './clients.js';

export const DEMO_TENANT = 'demo-clinic';
export const CURRENCY = 'SGD';

export const DEMO_BRANCHES = [
  { key: 'singapore', code: 'SG-ORCHARD', name: 'Orchard (Singapore)', timeZone: 'Asia/Singapore' },
  { key: 'sydney', code: 'AU-SYDNEY', name: 'Sydney CBD', timeZone: 'Australia/Sydney' },
] as const;

export type BranchKey = (typeof DEMO_BRANCHES)[number]['key'];
export type DefinitionKey = 'chiro' | 'physio' | 'pt';

export interface DemoCatalogue {
  tenantId: string;
  branches: Record<BranchKey, string>;
  definitions: Record<DefinitionKey, { id: string; version: number; code: string; name: string; serviceCode: string }>;
}

const money = (major: number) => ({ currencyCode: CURRENCY, amountMinor: BigInt(Math.round(major * 100)) });

type Terms = MessageInitShape<typeof DefinitionTermsSchema>;

/** The three demo packages. ENTERPRISE tier, so every feature (bonus, soft expiry, multi-branch, transfer…) is allowed. */
export function demoTerms(): Record<DefinitionKey, Terms> {
  return {
    chiro: {
      code: 'CHIRO-3P1',
      name: 'Chiro 3+1',
      description: 'Buy 3 chiropractic adjustments, get the 4th free. Any branch, 90 days.',
      price: money(300),
      paidSessions: 3,
      bonusSessions: 1,
      serviceCodes: ['CHIRO'],
      standalonePricePerSession: money(95),
      deliveryCostPerSession: money(25),
      expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 90, mode: ExpiryMode.HARD, reminderOffsetsDays: [14, 3] },
      transfer: { scope: TransferScope.ANYONE, maxTransfers: 1 },
      branches: { allBranches: true },
      refund: { method: RefundMethod.PRO_RATA },
      sessionOrder: SessionOrder.PAID_FIRST,
    },
    physio: {
      code: 'PHYSIO-10',
      name: 'Physio 10-pass',
      description: 'Ten physiotherapy sessions at any branch, valid 180 days.',
      price: money(800),
      paidSessions: 10,
      serviceCodes: ['PHYSIO'],
      standalonePricePerSession: money(90),
      deliveryCostPerSession: money(30),
      expiry: { anchor: ExpiryAnchor.PURCHASE, durationDays: 180, mode: ExpiryMode.HARD, reminderOffsetsDays: [14] },
      transfer: { scope: TransferScope.HOUSEHOLD },
      branches: { allBranches: true },
      refund: { method: RefundMethod.PRO_RATA },
    },
    pt: {
      code: 'PT-20',
      name: 'PT 20-pack',
      description: 'Twenty personal-training sessions; one year, then 14 days of grace.',
      price: money(1500),
      paidSessions: 20,
      serviceCodes: ['PT'],
      standalonePricePerSession: money(90),
      deliveryCostPerSession: money(40),
      expiry: {
        anchor: ExpiryAnchor.PURCHASE,
        durationDays: 365,
        mode: ExpiryMode.SOFT,
        graceDays: 14,
        maxFreezeDays: 30,
        freezeExtendsExpiry: true,
        reminderOffsetsDays: [30, 7],
      },
      branches: { allBranches: true },
      topUp: { enabled: true, pricePerSession: money(80), extendExpiryDays: 30 },
      refund: { method: RefundMethod.USED_AT_STANDALONE_PRICE },
      expectedBreakageBps: 1000,
    },
  };
}

/**
 * Creates the demo tenant, its branches and published definitions through the catalogue API, or
 * finds them: safe to run on every start (lookups by code first, fixed idempotency keys).
 */
export async function seedCatalogue(clients: Clients, log: (line: string) => void): Promise<DemoCatalogue> {
  const { catalogue } = clients;
  let tenant = await catalogue.getTenant({}).then(
    (r) => r.tenant,
    (err: unknown) => {
      if (ConnectError.from(err).code === Code.NotFound) return undefined;
      throw err;
    },
  );
  if (!tenant) {
    tenant = (
      await catalogue.createTenant({
        idempotencyKey: 'seed:tenant',
        name: 'Demo Clinics',
        planTier: PlanTier.ENTERPRISE,
        defaultCurrency: CURRENCY,
        earningRule: EarningRule.DELIVERING_BRANCH,
      })
    ).tenant;
    log(`created tenant ${DEMO_TENANT} (ENTERPRISE, ${CURRENCY})`);
  } else if (tenant.planTier !== PlanTier.ENTERPRISE) {
    tenant = (await catalogue.updateTenant({ idempotencyKey: 'seed:tenant-tier', planTier: PlanTier.ENTERPRISE })).tenant;
    log('raised the demo tenant to ENTERPRISE');
  }

  const branchList = (await catalogue.listBranches({ pageSize: 200 })).branches;
  const branches = {} as Record<BranchKey, string>;
  for (const b of DEMO_BRANCHES) {
    let branch = branchList.find((x) => x.code === b.code);
    if (!branch) {
      branch = (await catalogue.createBranch({ idempotencyKey: `seed:branch:${b.code}`, code: b.code, name: b.name, timeZone: b.timeZone })).branch;
      log(`created branch ${b.code} (${b.timeZone})`);
    }
    branches[b.key] = branch!.branchId;
  }

  const existing = await listAllDefinitions(clients);
  const definitions = {} as DemoCatalogue['definitions'];
  for (const [key, terms] of Object.entries(demoTerms()) as Array<[DefinitionKey, Terms]>) {
    let def = existing.find((d) => d.terms?.code === terms.code);
    if (!def) {
      def = (await catalogue.createDefinition({ idempotencyKey: `seed:definition:${terms.code}`, terms })).definition!;
      log(`created definition ${terms.code} "${terms.name}"`);
    }
    if (def.status === DefinitionStatus.DRAFT) {
      def = (await catalogue.publishDefinition({ idempotencyKey: `seed:publish:${terms.code}`, definitionId: def.definitionId })).definition!;
      log(`published ${terms.code} v${def.version}`);
    }
    definitions[key] = {
      id: def.definitionId,
      version: def.version,
      code: terms.code!,
      name: terms.name!,
      serviceCode: terms.serviceCodes![0]!,
    };
  }
  return { tenantId: tenant!.tenantId, branches, definitions };
}

async function listAllDefinitions(clients: Clients): Promise<PackageDefinition[]> {
  const all: PackageDefinition[] = [];
  let pageToken = '';
  do {
    const page = await clients.catalogue.listDefinitions({ pageSize: 200, pageToken });
    all.push(...page.definitions);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}

/** A chart of accounts for the demo tenant's accounting export (our account -> its code). */
const DEMO_ACCOUNT_CODES: Record<string, string> = {
  ACCOUNT_CASH: '1000',
  ACCOUNT_DUE_FROM_BRANCH: '1400',
  ACCOUNT_DEFERRED_REVENUE: '2100',
  ACCOUNT_REFUNDS_PAYABLE: '2200',
  ACCOUNT_DUE_TO_BRANCH: '2400',
  ACCOUNT_PACKAGE_REVENUE: '4000',
  ACCOUNT_BREAKAGE_REVENUE: '4100',
  ACCOUNT_VISIT_REVENUE: '4200',
  ACCOUNT_REFUND_GAIN_OR_LOSS: '4900',
};

/**
 * Billing keeps and forwards journal entries only for tenants with an enabled accounting connector:
 * the demo tenant gets the `json` file connector (one file per entry under .data/exports/).
 */
export async function seedBilling(clients: Clients, log: (line: string) => void): Promise<void> {
  if (!clients.billing) return;
  const billing = clients.billing;
  const { connectors } = await billing.listConnectors({});
  if (connectors.some((c) => c.connector === 'json' && c.enabled)) return;
  await whenLedgerKnows(
    () => billing.configureConnector({ idempotencyKey: 'seed:connector:json', config: { connector: 'json', enabled: true, accountCodes: DEMO_ACCOUNT_CODES } }),
    30_000,
    /not in this tenant's plan|not known/i,
  );
  log('enabled the json accounting export (billing writes every journal entry to .data/exports/)');
}

/**
 * Retries `fn` while a service has not yet received the catalogue events it needs (the ledger and
 * billing learn tenants, branches and definitions from the CATALOGUE stream, a moment after the
 * catalogue commits).
 */
export async function whenLedgerKnows<T>(fn: () => Promise<T>, timeoutMs = 30_000, pending = /not known|unknown|not received|has not/i): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code !== Code.FailedPrecondition || Date.now() > deadline || !pending.test(e.rawMessage)) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** One member with a Chiro 3+1 bought at the Singapore branch, so the printed calls show something. */
export async function seedMember(clients: Clients, demo: DemoCatalogue, log: (line: string) => void): Promise<string> {
  const memberId = 'member-ava';
  const res = await whenLedgerKnows(() =>
    clients.ledger.purchase({
      idempotencyKey: 'seed:purchase:member-ava',
      memberId,
      definitionId: demo.definitions.chiro.id,
      branchId: demo.branches.singapore,
      paymentReference: 'seed',
    }),
  );
  // A repeated start replays the first purchase's response: read what is left now.
  const now = (await clients.ledger.getEntitlement({ entitlementId: res.entitlement!.entitlementId })).entitlement!;
  log(`${memberId} holds ${demo.definitions.chiro.name} ${now.entitlementId} (${now.remaining} sessions left)`);
  return memberId;
}
