/**
 * `pnpm demo`: one member's packages through the whole system, through the public APIs and the
 * VISITS stream as a booking system would use them: a purchase paid at the front desk, visits at two
 * branches in different time zones, a reversal, a transfer, an expiry with breakage, then the
 * history and the deferred revenue roll-forward. Uses the stack `pnpm start` runs, or starts one.
 */
import { openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import { connectBus, publishEvent, type Bus } from '@punchcard/bus';
import { PaymentStatus } from '@punchcard/contracts/punchcard/billing/v1/billing_pb';
import { VisitCompletedSchema } from '@punchcard/contracts/punchcard/events/v1/visit_events_pb';
import { EntitlementStatus, EntryKind, VisitState, type LedgerEntry } from '@punchcard/contracts/punchcard/ledger/v1/ledger_pb';
import type { Money } from '@punchcard/contracts/punchcard/common/v1/common_pb';
import { bootLocal, type Booting } from './boot.js';
import { clientsFor, devToken, type Clients } from './clients.js';
import { DATA_DIR, readState, type LocalState } from './local-state.js';
import { progress, Skip, table } from './progress.js';
import { DEMO_BRANCHES, DEMO_TENANT, whenLedgerKnows, type BranchKey, type DemoCatalogue } from './seed.js';

const ui = progress();
/** Ledger entries that move money, so revenue journals each of them. */
const MONEY_KINDS = new Set([EntryKind.PURCHASE, EntryKind.CONSUME, EntryKind.REVERSAL, EntryKind.EXPIRE, EntryKind.TOP_UP, EntryKind.TRANSFER_OUT, EntryKind.TRANSFER_IN]);
const DAY = 86_400_000;

async function ready(opsUrl: string): Promise<boolean> {
  try {
    return (await fetch(`${opsUrl}/readyz`, { signal: AbortSignal.timeout(2000) })).ok;
  } catch {
    return false;
  }
}

/** The running stack from `pnpm start`, else one started here (its logs go to .data/demo-services.log). */
async function attachOrBoot(): Promise<{ state: LocalState; booting?: Booting }> {
  const state = readState();
  if (state && (await Promise.all(Object.values(state.services).map((s) => ready(s.opsUrl)))).every(Boolean)) {
    ui.print(`Using the system \`pnpm start\` runs (${Object.keys(state.services).length} services).`);
    return { state };
  }
  const logPath = path.join(DATA_DIR, 'demo-services.log');
  ui.print(`Nothing is running yet: starting the system for this demo (service logs in ${path.relative(process.cwd(), logPath)}).`);
  let log: number | undefined;
  const booting = bootLocal({
    say: () => undefined,
    onServiceLine: (service, line) => {
      log ??= openSync(logPath, 'a');
      writeSync(log, `${service} ${line}\n`);
    },
  });
  try {
    await ui.step('Start Postgres, NATS, migrations and the services', () => booting.ready, (b) => `ready in ${b.seconds.toFixed(1)} s`);
  } catch (err) {
    await booting.stop();
    throw err;
  }
  return { state: readState()!, booting };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const codeOf = (err: unknown) => ConnectError.from(err).code;

function money(m: Money | undefined): string {
  const minor = m?.amountMinor ?? 0n;
  const sign = minor < 0n ? '-' : '';
  const abs = minor < 0n ? -minor : minor;
  return `${sign}${abs / 100n}.${String(abs % 100n).padStart(2, '0')}`;
}

async function main(): Promise<void> {
  ui.heading('Punchcard demo');
  const { state, booting } = await attachOrBoot();
  const stopOnSignal = () => void (booting?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  const bus = await connectBus({ url: state.natsUrl, name: 'punchcard-demo' });
  try {
    const urls = Object.fromEntries(Object.entries(state.services).map(([name, s]) => [name, s.apiUrl]));
    const clients = clientsFor(urls, await devToken(DEMO_TENANT));
    await scenario(clients, bus, state);
  } finally {
    await bus.close();
    if (booting) {
      ui.print('\nStopping the system started for this demo (the data stays in .data/).');
      await booting.stop();
    }
  }
}

async function scenario(c: Clients, bus: Bus, state: LocalState): Promise<void> {
  const demo = state.demo;
  const run = Date.now().toString(36);
  const ava = `ava-${run}`;
  const ben = `ben-${run}`;
  const chloe = `chloe-${run}`;
  const branchName = (id: string) => DEMO_BRANCHES.find((b) => demo.branches[b.key] === id)?.code ?? id.slice(0, 8);
  const zoneOf = (id: string) => DEMO_BRANCHES.find((b) => demo.branches[b.key] === id)?.timeZone ?? 'UTC';
  const chiro = demo.definitions.chiro;
  ui.print(`Tenant ${DEMO_TENANT}; members ${ava}, ${ben} and ${chloe} are new in this run.\n`);

  // 1. Purchase: paid at the front desk through billing (which creates the entitlement), or straight at the ledger.
  const avaPackage = await ui.step(
    `${ava} buys a ${chiro.name} (SGD 300.00) at ${DEMO_BRANCHES[0].name}`,
    async (update) => {
      if (!c.billing) {
        const res = await whenLedgerKnows(() =>
          c.ledger.purchase({ idempotencyKey: `demo:${run}:purchase`, memberId: ava, definitionId: chiro.id, branchId: demo.branches.singapore, paymentReference: `demo-${run}` }),
        );
        return res.entitlement!;
      }
      const checkout = await c.billing.createCheckout({
        idempotencyKey: `demo:${run}:checkout`,
        memberId: ava,
        definitionId: chiro.id,
        branchId: demo.branches.singapore,
        provider: 'manual',
        amount: { currencyCode: 'SGD', amountMinor: 30000n },
      });
      const paymentId = checkout.payment!.paymentId;
      update(`payment ${paymentId.slice(0, 8)} pending; the front desk confirms the card-terminal receipt`);
      await c.billing.confirmManualPayment({ idempotencyKey: `demo:${run}:confirm`, paymentId, reference: `terminal-${run}` });
      update('payment captured; billing asks the ledger for the entitlement');
      const payment = await until('billing to fulfil the payment', async () => {
        const p = (await c.billing!.getPayment({ paymentId })).payment!;
        return p.status === PaymentStatus.FULFILLED ? p : undefined;
      });
      return (await c.ledger.getEntitlement({ entitlementId: payment.entitlementId })).entitlement!;
    },
    (e) => `entitlement ${e.entitlementId.slice(0, 8)}: ${e.paidSessions} paid + ${e.bonusSessions} free sessions, expires ${localTime(e.expiryTime && timestampDate(e.expiryTime), e.terms!.timeZone)}`,
  );

  // 2-3. Visits reported by the booking system on the VISITS stream: the ledger deducts them.
  const visit = async (branch: BranchKey, update: (t: string) => void) => {
    const visitId = `visit-${run}-${branch}`;
    await publishEvent(bus.js, {
      namespace: state.busNamespace,
      producer: 'visits',
      event: 'visit_completed',
      tenantId: DEMO_TENANT,
      aggregateId: visitId,
      id: visitId,
      source: '/booking/demo',
      schema: VisitCompletedSchema,
      message: {
        tenantId: DEMO_TENANT,
        visitId,
        memberId: ava,
        serviceCode: chiro.serviceCode,
        branchId: demo.branches[branch],
        occurredTime: timestampFromDate(new Date()),
      },
    });
    update(`published visits.visit_completed ${visitId}; waiting for the ledger`);
    const v = await until('the ledger to handle the visit', async () => {
      try {
        const found = (await c.ledger.getVisit({ visitId })).visit!;
        return found.state === VisitState.UNSPECIFIED ? undefined : found;
      } catch (err) {
        if (codeOf(err) === Code.NotFound) return undefined;
        throw err;
      }
    });
    if (v.state !== VisitState.CONSUMED) throw new Error(`the ledger did not deduct visit ${visitId}: ${VisitState[v.state]} ${v.reason}`);
    return (await c.ledger.getEntitlement({ entitlementId: v.entitlementId })).entitlement!;
  };
  for (const b of DEMO_BRANCHES) {
    await ui.step(
      `${ava} visits ${b.code} (${b.timeZone}); the booking system reports it on the VISITS stream`,
      (update) => visit(b.key, update),
      (e) => `1 session deducted automatically, ${e.remaining} left`,
    );
  }

  // 4. A deduction made by mistake, and its reversal (a new entry naming the one it reverses).
  await ui.step(
    `The Sydney front desk deducts a session twice by mistake, then reverses it`,
    async (update) => {
      const wrong = await c.ledger.consume({
        idempotencyKey: `demo:${run}:double-tap`,
        entitlementId: avaPackage.entitlementId,
        memberId: ava,
        branchId: demo.branches.sydney,
        reason: 'front desk: second tap',
      });
      update(`entry ${wrong.entry!.entryId.slice(0, 8)} consumed, ${wrong.entitlement!.remaining} left; reversing`);
      const undone = await c.ledger.reverse({ idempotencyKey: `demo:${run}:reverse`, entryId: wrong.entry!.entryId, reason: 'deducted twice for one visit' });
      return undone.entitlement!;
    },
    (e) => `restored: ${e.remaining} left`,
  );

  // 5. Transfer what is left to another member, when the ledger offers it.
  const transferredTo = await ui.optionalStep(
    `${ava} moves abroad and transfers what is left to ${ben}`,
    async () => {
      try {
        return (await c.ledger.transfer({ idempotencyKey: `demo:${run}:transfer`, entitlementId: avaPackage.entitlementId, toMemberId: ben, reason: 'member relocating' })).target!;
      } catch (err) {
        if (codeOf(err) === Code.Unimplemented) throw new Skip('this ledger does not implement Transfer yet');
        throw err;
      }
    },
    (e) => `${ben} now holds ${e.entitlementId.slice(0, 8)} with ${e.remaining} sessions`,
  );

  // 6. Expiry: a package bought long ago, partly used, runs out; the unused value becomes breakage.
  const physio = demo.definitions.physio;
  const chloePackage = await ui.step(
    `${chloe} bought a ${physio.name} at ${DEMO_BRANCHES[1].name} 200 days ago and came twice`,
    async (update) => {
      const bought = await c.ledger.purchase({
        idempotencyKey: `demo:${run}:physio`,
        memberId: chloe,
        definitionId: physio.id,
        branchId: demo.branches.sydney,
        paymentReference: `demo-${run}-physio`,
        purchaseTime: timestampFromDate(new Date(Date.now() - 200 * DAY)),
      });
      const e = bought.entitlement!;
      for (const [i, branch] of (['sydney', 'singapore'] as const).entries()) {
        try {
          await c.ledger.consume({
            idempotencyKey: `demo:${run}:physio-visit-${i}`,
            entitlementId: e.entitlementId,
            memberId: chloe,
            branchId: demo.branches[branch],
            occurredTime: timestampFromDate(new Date(Date.now() - (195 - 5 * i) * DAY)),
            reason: 'visit',
          });
        } catch (err) {
          // The scheduler may already have expired it (its sweep runs every second).
          if (codeOf(err) !== Code.FailedPrecondition) throw err;
          update('the scheduler expired it before the back-dated visits were recorded');
        }
      }
      return (await c.ledger.getEntitlement({ entitlementId: e.entitlementId })).entitlement!;
    },
    (e) => `valid until ${localTime(e.expiryTime && timestampDate(e.expiryTime), e.terms!.timeZone)}, ${e.remaining} sessions unused`,
  );
  await ui.step(
    c.expiry ? 'The expiry scheduler fires the due timer (RunDue) and the ledger expires the package' : 'Expire the package at the ledger (no expiry scheduler running)',
    async (update) => {
      if (!c.expiry) {
        await c.ledger.expire({ idempotencyKey: `demo:${run}:expire`, entitlementId: chloePackage.entitlementId, dueTime: chloePackage.expiryTime!, reason: 'expired' });
      }
      return until('the entitlement to expire', async () => {
        if (c.expiry) {
          const ran = await c.expiry.runDue({ idempotencyKey: `demo:${run}:run-due:${Date.now()}` });
          if (ran.fired > 0) update(`${ran.fired} timer(s) fired`);
        }
        const e = (await c.ledger.getEntitlement({ entitlementId: chloePackage.entitlementId })).entitlement!;
        return e.status === EntitlementStatus.EXPIRED ? e : (await sleep(300), undefined);
      });
    },
    () => 'EXPIRED; its unused sessions are forfeited',
  );

  const entitlements = [avaPackage, ...(transferredTo ? [transferredTo] : []), chloePackage];

  // 7. Revenue recognition learns all of it from LEDGER events; wait until it has journalled every movement.
  if (c.revenue) {
    await ui.step('Revenue recognition journals every movement (from the LEDGER stream)', async (update) => {
      let total = 0;
      const behind: string[] = [];
      for (const e of entitlements) {
        const entries = await allEntries(c, e.entitlementId);
        const moves = entries.filter((x) => MONEY_KINDS.has(x.kind));
        let missing = moves;
        const posted = await until(
          `revenue to journal ${e.entitlementId}`,
          async () => {
            const journal = (await c.revenue!.listJournalEntries({ entitlementId: e.entitlementId, pageSize: 500 })).entries;
            const sources = new Set(journal.map((j) => j.sourceId));
            missing = moves.filter((x) => !sources.has(x.entryId));
            update(`${e.entitlementId.slice(0, 8)}: ${moves.length - missing.length}/${moves.length} movements journalled`);
            return missing.length === 0 ? journal : undefined;
          },
          10_000,
        ).catch(() => undefined);
        total += posted?.length ?? moves.length - missing.length;
        if (!posted) behind.push(`${e.entitlementId.slice(0, 8)} ${missing.map((x) => EntryKind[x.kind]).join(', ')}`);
      }
      return `${total} balanced journal entries${behind.length ? `; not journalled yet (see the DEADLETTER stream and the revenue log): ${behind.join('; ')}` : ''}`;
    });
  }

  // 8. What happened, as the member's history.
  for (const e of entitlements) {
    const entries = await allEntries(c, e.entitlementId);
    const current = (await c.ledger.getEntitlement({ entitlementId: e.entitlementId })).entitlement!;
    ui.heading(`History of ${current.memberId}'s ${current.terms?.terms?.name ?? 'package'} ${e.entitlementId.slice(0, 8)} (${EntitlementStatus[current.status]}, ${current.remaining} left)`);
    ui.print(
      table(
        ['v', 'when (branch local time)', 'branch', 'entry', 'sessions', 'left', 'by', 'reason'],
        entries.map((x) => [
          String(x.entitlementVersion),
          localTime(x.occurredTime && timestampDate(x.occurredTime), zoneOf(x.branchId || current.purchaseBranchId)),
          branchName(x.branchId || current.purchaseBranchId),
          EntryKind[x.kind],
          x.sessionsDelta > 0 ? `+${x.sessionsDelta}` : String(x.sessionsDelta),
          String(x.balanceAfter),
          x.actor?.subject ?? '',
          x.reason,
        ]),
        new Set([0, 4, 5]),
      ),
    );
  }

  if (c.revenue) await reports(c, demo, branchName);
  if (c.billing) {
    const exported = await c.billing.exportJournalEntries({ format: 'json' }).catch((err: unknown) => ConnectError.from(err));
    ui.heading('Billing');
    ui.print(
      exported instanceof ConnectError
        ? `  ExportJournalEntries: ${exported.message}`
        : `  billing-integration holds ${exported.entries} journal entries of ${DEMO_TENANT} for its accounting connectors (ExportJournalEntries); the json connector writes them to .data/exports/${DEMO_TENANT}/.`,
    );
  }
  ui.print('');
}

async function reports(c: Clients, demo: DemoCatalogue, branchName: (id: string) => string): Promise<void> {
  const period = { startDate: '2020-01-01', endDate: new Date(Date.now() + 2 * DAY).toISOString().slice(0, 10) };
  const definitionName = (id: string) => Object.values(demo.definitions).find((d) => d.id === id)?.name ?? id.slice(0, 8);
  const roll = await c.revenue!.getLiabilityRollForward({ period, pageSize: 1000 });
  ui.heading(`Deferred revenue roll-forward, ${period.startDate} to ${period.endDate} (SGD, all of ${DEMO_TENANT})`);
  const cells = (r: (typeof roll.rows)[number] | undefined) =>
    [r?.opening, r?.sales, r?.topUps, r?.recognised, r?.breakage, r?.refunds, r?.transfers, r?.closing].map(money);
  ui.print(
    table(
      ['branch', 'package', 'opening', '+ sales', '+ top-ups', '- recognised', '- breakage', '- refunds', '± transfers', '= closing'],
      [...roll.rows.map((r) => [branchName(r.branchId), definitionName(r.definitionId), ...cells(r)]), ['total', '', ...cells(roll.total)]],
      new Set([2, 3, 4, 5, 6, 7, 8, 9]),
    ),
  );
  const settlement = await c.revenue!.getSettlement({ period });
  if (settlement.rows.length > 0) {
    ui.heading('Inter-branch settlement (sold at one branch, delivered at another)');
    ui.print(
      table(
        ['owes (sold)', 'is owed (delivered)', 'amount', 'sessions'],
        settlement.rows.map((r) => [
          branchName(r.fromBranchId),
          branchName(r.toBranchId),
          money(r.amount),
          String(r.sessions),
        ]),
        new Set([2, 3]),
      ),
    );
  }
}

async function allEntries(c: Clients, entitlementId: string): Promise<LedgerEntry[]> {
  const all: LedgerEntry[] = [];
  let pageToken = '';
  do {
    const page = await c.ledger.listEntries({ entitlementId, pageSize: 500, pageToken });
    all.push(...page.entries);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}

function localTime(t: Date | undefined, timeZone: string): string {
  if (!t) return '-';
  return new Intl.DateTimeFormat('en-GB', { timeZone, dateStyle: 'medium', timeStyle: 'short' }).format(t) + ` ${shortZone(timeZone)}`;
}

function shortZone(timeZone: string): string {
  return timeZone.split('/').pop()!.replace('_', ' ');
}

try {
  await main();
  process.exit(0);
} catch (err) {
  process.stderr.write(`\ndemo failed: ${err instanceof ConnectError ? `${Code[err.code]}: ${err.rawMessage}` : (err as Error).stack}\n`);
  process.exit(1);
}
