import pg from 'pg';

/**
 * The expiry-sweep backlog made from a real one: a few hundred packages bought through the ledger,
 * planned by the scheduler and booked by revenue, then copied in SQL with new ids until there are
 * `n`, consistently across the three services' schemas (what each holds of an entitlement), so
 * every copy is what a real purchase would have left behind.
 *
 * Laid out as the services lay out their own rows: ids are time-ordered (UUIDv7) and rows are
 * appended in id order, so the packages that fall due together sit together in every table and
 * index. A copy's id keeps its template's time and adds its generation, and each template's copies
 * are inserted together, in template order.
 */

const LEDGER = 'entitlement_ledger';
const SCHEDULER = 'expiry_scheduler';
const REVENUE = 'revenue_recognition';

/**
 * A copy's id: the same in every schema, so the copies agree with each other. As a UUIDv7 made
 * then would be: the template's 48-bit time, the version, the generation (24 bits, so a template's
 * copies sort in generation order) and 48 bits of hash that keep ids of equal time and generation apart.
 */
export const copyOf = (expr: string) => {
  const id = `(${expr})::text`;
  return `(substr(replace(${id}, '-', ''), 1, 12) || '7' || lpad(to_hex((g >> 12) & 4095), 3, '0') || 'a' || lpad(to_hex(g & 4095), 3, '0') || substr(md5(${id} || ':' || g), 1, 12))::uuid`;
};
const ENTITLEMENT = copyOf('t.entitlement_id');
const PURCHASE_ENTRY = copyOf('tpl.entry_id');

/** Per table: the columns a copy changes (every other column is copied as is; serials fill themselves). */
const TABLES: { schema: string; table: string; overrides: Record<string, string> }[] = [
  {
    schema: LEDGER,
    table: 'entitlements',
    overrides: { entitlement_id: ENTITLEMENT, member_id: `t.member_id || ':' || g`, payment_reference: `t.payment_reference || ':' || g` },
  },
  {
    schema: LEDGER,
    table: 'entries',
    overrides: { entry_id: copyOf('t.entry_id'), entitlement_id: ENTITLEMENT, member_id: `t.member_id || ':' || g`, request_id: `t.request_id || ':' || g` },
  },
  { schema: SCHEDULER, table: 'entitlements', overrides: { entitlement_id: `${ENTITLEMENT}::text`, member_id: `t.member_id || ':' || g` } },
  { schema: SCHEDULER, table: 'timers', overrides: { timer_id: copyOf('t.timer_id'), entitlement_id: `${ENTITLEMENT}::text` } },
  { schema: REVENUE, table: 'entitlement_progress', overrides: { entitlement_id: `${ENTITLEMENT}::text` } },
  {
    schema: REVENUE,
    table: 'contract',
    overrides: {
      entitlement_id: `${ENTITLEMENT}::text`,
      member_id: `t.member_id || ':' || g`,
      // Its lines name the purchase entry they came from.
      lines: `replace(t.lines::text, tpl.entry_id::text, ${PURCHASE_ENTRY}::text)::jsonb`,
    },
  },
  {
    schema: REVENUE,
    table: 'journal_entry',
    overrides: { journal_entry_id: copyOf('t.journal_entry_id'), entitlement_id: `${ENTITLEMENT}::text`, source_id: `${PURCHASE_ENTRY}::text` },
  },
  { schema: REVENUE, table: 'journal_line', overrides: { journal_entry_id: copyOf('t.journal_entry_id'), entitlement_id: `${ENTITLEMENT}::text` } },
];

async function copyStatement(client: pg.Client, schema: string, table: string, overrides: Record<string, string>): Promise<string> {
  const { rows } = await client.query<{ column_name: string; is_generated: string; column_default: string | null }>(
    `select column_name, is_generated, column_default from information_schema.columns
      where table_schema = $1 and table_name = $2 order by ordinal_position`,
    [schema, table],
  );
  if (rows.length === 0) throw new Error(`${schema}.${table} does not exist`);
  const cols = rows.filter((r) => r.is_generated !== 'ALWAYS' && !(r.column_default ?? '').startsWith('nextval(')).map((r) => r.column_name);
  const exprs = cols.map((c) => overrides[c] ?? `t.${c}`);
  // Copy g of template package idx exists while (g - 1) * templates + idx < copies wanted ($4);
  // templates $1 to $2, each one's copies together, in id order.
  return `insert into ${schema}.${table} (${cols.join(', ')})
          select ${exprs.join(', ')}
            from ${schema}.${table} t
            join bench_template tpl on tpl.entitlement_id::text = t.entitlement_id::text
            cross join generate_series(1, $6::int) g
           where t.tenant_id = $3 and tpl.idx between $1::int and $2::int and (g - 1) * $5::int + tpl.idx < $4::int
           order by tpl.idx, g`;
}

export interface BacklogCopy {
  templates: number;
  copies: number;
  seconds: number;
}

/**
 * Copies the tenant's packages (all of them: the template) until it has `n`. Triggers and foreign
 * keys are off for the copy (`session_replication_role = replica`: copies of consistent rows are
 * consistent); revenue's deferred balances are recounted afterwards, as its README prescribes for
 * lines inserted that way. `onProgress` gets the packages copied so far.
 */
export async function copyBacklog(databaseUrl: string, tenantId: string, n: number, onProgress: (done: number) => void): Promise<BacklogCopy> {
  const started = performance.now();
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(
      `create temp table bench_template as
         select e.entitlement_id, p.entry_id, (row_number() over (order by e.entitlement_id) - 1)::int as idx
           from ${LEDGER}.entitlements e
           join ${LEDGER}.entries p on p.tenant_id = e.tenant_id and p.entitlement_id = e.entitlement_id and p.kind = 'PURCHASE'
          where e.tenant_id = $1`,
      [tenantId],
    );
    const { rows } = await client.query<{ n: number }>('select count(*)::int as n from bench_template');
    const templates = rows[0]!.n;
    const copies = Math.max(0, n - templates);
    const statements = [];
    for (const t of TABLES) statements.push(await copyStatement(client, t.schema, t.table, t.overrides));
    await client.query('set session_replication_role = replica');
    // About 50,000 packages per transaction: progress to show, and no transaction of hours.
    const generations = Math.ceil(copies / Math.max(1, templates));
    const step = Math.max(1, Math.floor(50_000 / Math.max(1, generations)));
    let done = 0;
    for (let first = 0; first < templates && done < copies; first += step) {
      const last = Math.min(templates, first + step) - 1;
      await client.query('begin');
      for (const [i, s] of statements.entries()) {
        const { rowCount } = await client.query(s, [first, last, tenantId, copies, templates, generations]);
        // The first table holds one row per package.
        if (i === 0) done += rowCount ?? 0;
      }
      await client.query('commit');
      onProgress(done);
    }
    await client.query('set session_replication_role = origin');
    const { rows: rebuild } = await client.query<{ n: number }>(
      `select count(*)::int as n from pg_proc p join pg_namespace s on s.oid = p.pronamespace where s.nspname = $1 and p.proname = 'rebuild_deferred_revenue_balances'`,
      [REVENUE],
    );
    if ((rebuild[0]?.n ?? 0) > 0) {
      // It reads revenue's tables by their unqualified names, as the service's connections see them.
      await client.query(`set search_path = ${REVENUE}`);
      await client.query('select rebuild_deferred_revenue_balances($1)', [tenantId]);
    }
    for (const t of TABLES) await client.query(`analyze ${t.schema}.${t.table}`);
    return { templates, copies, seconds: (performance.now() - started) / 1000 };
  } finally {
    await client.end();
  }
}

export interface BacklogCheck {
  entitlements: number;
  expired: number;
  /** Σ sessions_delta over the tenant's entries: 0 once every package forfeited what remained. */
  sessionsLeft: number;
  timersFired: number;
  timersPending: number;
  breakageMinor: bigint;
  journalDebitMinor: bigint;
  journalCreditMinor: bigint;
}

/** What the three services hold of the tenant's packages once the sweep is over. */
export async function checkBacklog(databaseUrl: string, tenantId: string): Promise<BacklogCheck> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const one = async <T>(text: string): Promise<T> => (await client.query<T & pg.QueryResultRow>(text, [tenantId])).rows[0]!;
    const ledger = await one<{ entitlements: number; expired: number }>(
      `select count(*)::int as entitlements, count(*) filter (where status = 'EXPIRED')::int as expired from ${LEDGER}.entitlements where tenant_id = $1`,
    );
    const entries = await one<{ left: string }>(`select coalesce(sum(sessions_delta), 0) as left from ${LEDGER}.entries where tenant_id = $1`);
    const timers = await one<{ fired: number; pending: number }>(
      `select count(*) filter (where state = 'FIRED')::int as fired, count(*) filter (where state = 'PENDING')::int as pending from ${SCHEDULER}.timers where tenant_id = $1`,
    );
    const journal = await one<{ breakage: string; debit: string; credit: string }>(
      `select coalesce(sum(credit_minor) filter (where account = 'BREAKAGE_REVENUE'), 0) - coalesce(sum(debit_minor) filter (where account = 'BREAKAGE_REVENUE'), 0) as breakage,
              coalesce(sum(debit_minor), 0) as debit, coalesce(sum(credit_minor), 0) as credit
         from ${REVENUE}.journal_line where tenant_id = $1`,
    );
    return {
      entitlements: ledger.entitlements,
      expired: ledger.expired,
      sessionsLeft: Number(entries.left),
      timersFired: timers.fired,
      timersPending: timers.pending,
      breakageMinor: BigInt(journal.breakage),
      journalDebitMinor: BigInt(journal.debit),
      journalCreditMinor: BigInt(journal.credit),
    };
  } finally {
    await client.end();
  }
}
