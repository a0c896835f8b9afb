/**
 * `pnpm start`: the whole system on this machine. Postgres and NATS (from DATABASE_URL / NATS_URL,
 * else embedded under .data/), migrations, the services as child processes, a demo tenant, and what
 * to paste to call it. Ctrl-C stops the services, then NATS and Postgres.
 */
import { bootLocal, type Booted } from './boot.js';
import { DEMO_TENANT } from './seed.js';
import { lineFormatter } from './logs.js';
import { availableServices, SERVICES } from './stack.js';

const colour = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
const bold = (s: string) => (colour ? `\u001b[1m${s}\u001b[0m` : s);
const dim = (s: string) => (colour ? `\u001b[2m${s}\u001b[0m` : s);
const say = (line: string) => process.stdout.write(`${bold('punchcard'.padEnd(19))} | ${line}\n`);
const format = lineFormatter({ colour, names: SERVICES.map((s) => s.name) });

const available = availableServices().map((s) => s.name);
const missing = SERVICES.map((s) => s.name).filter((n) => !available.includes(n));
say(`starting ${available.join(', ')}${missing.length ? dim(` (no src/main.ts yet: ${missing.join(', ')})`) : ''}`);

const boot = bootLocal({ say, onServiceLine: (service, line) => process.stdout.write(`${format(service, line)}\n`) });

let exiting: Promise<never> | undefined;
function exit(code: number): Promise<never> {
  return (exiting ??= (async () => {
    say('stopping the services, then NATS and Postgres…');
    await boot.stop();
    say('stopped; the data stays in .data/ for the next start');
    process.exit(code);
  })());
}

// The terminal or the pipe we print to went away: nobody can Ctrl-C us any more, so stop now.
process.stdout.on('error', () => void exit(1));

let signals = 0;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (++signals > 1) {
      say('second signal: exiting now (services and servers may be left running; the next start stops them)');
      process.exit(130);
    }
    void exit(0);
  });
}

try {
  const booted = await boot.ready;
  void booted.stack.exited.then(({ name, code, signal }) => {
    say(`${name} exited unexpectedly (${code ?? signal}); stopping everything`);
    void exit(1);
  });
  printSummary(booted);
  say(`up in ${booted.seconds.toFixed(1)} s; Ctrl-C stops everything`);
} catch (err) {
  if (!exiting) {
    process.stderr.write(`\n${bold('punchcard')} | failed to start: ${(err as Error).message}\n`);
    await exit(1);
  }
}

function printSummary({ stack, token, member, demo }: Booted): void {
  const services = Object.values(stack.services);
  const url = (name: string) => stack.services[name]?.apiUrl;
  const curl = (name: string, method: string, body: string) =>
    `npx buf curl --http2-prior-knowledge --protocol grpc -H "authorization: Bearer $TOKEN" \\\n    -d '${body}' ${url(name)}/${method}`;
  const nextYear = new Date(Date.now() + 366 * 86_400_000).toISOString().slice(0, 10);
  const calls: Array<[string, string, string, string]> = [
    ['the demo tenant and its plan features', 'catalogue', 'punchcard.catalogue.v1.CatalogueService/GetTenant', '{}'],
    ['the three packages on sale', 'catalogue', 'punchcard.catalogue.v1.CatalogueService/ListDefinitions', '{}'],
    [`${member}'s packages`, 'entitlement-ledger', 'punchcard.ledger.v1.LedgerService/ListEntitlements', `{"member_id":"${member}"}`],
    [
      `one session at the Singapore branch (the ledger picks ${member}'s package; a new idempotency_key each time)`,
      'entitlement-ledger',
      'punchcard.ledger.v1.LedgerService/Consume',
      `{"idempotency_key":"try-1","member_id":"${member}","service_code":"CHIRO","branch_id":"${demo.branches.singapore}"}`,
    ],
    [
      'the deferred revenue roll-forward',
      'revenue-recognition',
      'punchcard.revenue.v1.RevenueService/GetLiabilityRollForward',
      `{"period":{"start_date":"2020-01-01","end_date":"${nextYear}"}}`,
    ],
  ];
  const lines = [
    '',
    bold('Punchcard is running'),
    '',
    `  ${'service'.padEnd(20)} ${'API (Connect, gRPC, gRPC-Web)'.padEnd(31)} health`,
    ...services.map((s) => `  ${s.name.padEnd(20)} ${s.apiUrl.padEnd(31)} ${s.opsUrl}/readyz`),
    '',
    `  tenant ${DEMO_TENANT}: branches SG-ORCHARD ${demo.branches.singapore} (Asia/Singapore),`,
    `  AU-SYDNEY ${demo.branches.sydney} (Australia/Sydney); packages ${Object.values(demo.definitions)
      .map((d) => `${d.name} (${d.serviceCode})`)
      .join(', ')}`,
    '',
    '  A development token (30 days, every role; the services run with AUTH_DEV_MODE=1):',
    '',
    `export TOKEN=${token}`,
    '',
    ...calls.filter(([, name]) => url(name)).map(([what, name, method, body]) => `  # ${what}\n  ${curl(name, method, body)}\n`),
    `  ${dim('A whole scenario (purchase, visits at both branches, reversal, transfer, expiry, reports): pnpm demo')}`,
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
}
