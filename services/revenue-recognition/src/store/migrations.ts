import { inboxMigration, outboxMigration, outboxSeqNotUniqueMigration, outboxDeletedOnPublishMigration, outboxKeyedBySeqMigration } from '@punchcard/bus';
import { roomForUpdatesMigration, type Migration, type Migrations } from '@punchcard/db';
import { sql } from 'kysely';

// Frozen here rather than imported: a migration must mean the same thing forever.
const ACCOUNTS = [
  'CASH',
  'DEFERRED_REVENUE',
  'PACKAGE_REVENUE',
  'BREAKAGE_REVENUE',
  'REFUNDS_PAYABLE',
  'DUE_FROM_BRANCH',
  'DUE_TO_BRANCH',
  'VISIT_REVENUE',
  'REFUND_GAIN_OR_LOSS',
  'TRANSFER_CLEARING',
];
const MOVEMENTS = ['SALE', 'TOP_UP', 'RECOGNISED', 'BREAKAGE', 'REFUND', 'TRANSFER'];
const list = (values: string[]) => sql.raw(values.map((v) => `'${v}'`).join(', '));

/** What revenue knows of the catalogue: tenants, branches and definition versions. */
const catalogue: Migration = {
  async up(db) {
    await sql`
      create table tenant (
        tenant_id text primary key,
        currency text not null,
        earning_rule text not null check (earning_rule in ('DELIVERING_BRANCH', 'PURCHASING_BRANCH')),
        updated_at timestamptz not null
      )`.execute(db);
    await sql`
      create table branch (
        tenant_id text not null,
        branch_id text not null,
        time_zone text not null,
        updated_at timestamptz not null,
        primary key (tenant_id, branch_id)
      )`.execute(db);
    await sql`
      create table definition (
        tenant_id text not null,
        definition_id text not null,
        version integer not null,
        code text not null,
        name text not null,
        -- punchcard.catalogue.v1.DefinitionTerms, as published.
        terms bytea not null,
        primary key (tenant_id, definition_id, version)
      )`.execute(db);
  },
};

/** Contracts and the per-entitlement version applied so far. */
const contracts: Migration = {
  async up(db) {
    await sql`
      create table entitlement_progress (
        tenant_id text not null,
        entitlement_id text not null,
        applied_version bigint not null check (applied_version >= 0),
        primary key (tenant_id, entitlement_id)
      )`.execute(db);
    await sql`
      create table contract (
        tenant_id text not null,
        entitlement_id text not null,
        definition_id text not null,
        definition_version integer not null,
        member_id text not null,
        currency text not null,
        liability_branch_id text not null,
        breakage_bps integer not null check (breakage_bps between 0 and 10000),
        session_order text not null,
        standalone_price_minor bigint not null,
        costs jsonb not null,
        status text not null,
        lines jsonb not null,
        sessions jsonb not null,
        package_recognised_minor bigint not null,
        breakage_recognised_minor bigint not null,
        updated_at timestamptz not null,
        primary key (tenant_id, entitlement_id)
      )`.execute(db);
  },
};

/**
 * The double-entry journal. Lines carry their entry's tenant, date, package and currency (checked by
 * a composite foreign key) so reports aggregate lines without a join. Balance is checked at commit
 * by deferred constraint triggers; update, delete and truncate are refused: corrections are new entries.
 */
const journal: Migration = {
  async up(db) {
    await sql`
      create table journal_entry (
        journal_entry_id uuid primary key,
        seq bigserial not null unique,
        tenant_id text not null,
        cause text not null,
        source_id text not null,
        entitlement_id text not null,
        definition_id text not null,
        currency text not null check (currency ~ '^[A-Z]{3}$'),
        accounting_date date not null,
        posted_at timestamptz not null,
        description text not null,
        unique (tenant_id, cause, source_id),
        unique (journal_entry_id, tenant_id, accounting_date, definition_id, currency)
      )`.execute(db);
    await sql`
      create table journal_line (
        journal_entry_id uuid not null,
        line_no smallint not null,
        tenant_id text not null,
        accounting_date date not null,
        definition_id text not null,
        currency text not null,
        entitlement_id text not null,
        account text not null check (account in (${list(ACCOUNTS)})),
        branch_id text not null,
        counterparty_branch_id text not null,
        debit_minor bigint not null check (debit_minor >= 0),
        credit_minor bigint not null check (credit_minor >= 0),
        movement text check (movement in (${list(MOVEMENTS)})),
        sessions integer not null,
        delivery_cost_minor bigint not null,
        primary key (journal_entry_id, line_no),
        foreign key (journal_entry_id, tenant_id, accounting_date, definition_id, currency)
          references journal_entry (journal_entry_id, tenant_id, accounting_date, definition_id, currency),
        constraint journal_line_one_sided check ((debit_minor > 0) <> (credit_minor > 0)),
        constraint journal_line_movement_on_deferred check ((account = 'DEFERRED_REVENUE') = (movement is not null)),
        constraint journal_line_due_counterparty check (account not in ('DUE_TO_BRANCH', 'DUE_FROM_BRANCH') or counterparty_branch_id <> '')
      )`.execute(db);
    await sql`create index journal_entry_tenant_date on journal_entry (tenant_id, accounting_date, seq)`.execute(db);
    await sql`create index journal_entry_tenant_entitlement on journal_entry (tenant_id, entitlement_id, seq)`.execute(db);
    await sql`create index journal_line_tenant_account_date on journal_line (tenant_id, account, accounting_date)`.execute(db);

    await sql`
      create function journal_entry_must_balance() returns trigger language plpgsql as $$
      declare
        entry uuid := coalesce(new.journal_entry_id, old.journal_entry_id);
        lines integer;
        unbalanced text;
      begin
        select count(*) into lines from journal_line where journal_entry_id = entry;
        if lines < 2 then
          raise exception 'journal entry % has % line(s); an entry needs at least two', entry, lines
            using errcode = 'check_violation';
        end if;
        select string_agg(branch_id || ' (' || net || ')', ', ') into unbalanced from (
          select branch_id, sum(debit_minor) - sum(credit_minor) as net
          from journal_line where journal_entry_id = entry group by branch_id
        ) b where net <> 0;
        if unbalanced is not null then
          raise exception 'journal entry % does not balance: debits - credits at %', entry, unbalanced
            using errcode = 'check_violation';
        end if;
        return null;
      end $$`.execute(db);
    await sql`
      create constraint trigger journal_entry_balanced after insert on journal_entry
      deferrable initially deferred for each row execute function journal_entry_must_balance()`.execute(db);
    await sql`
      create constraint trigger journal_line_balanced after insert on journal_line
      deferrable initially deferred for each row execute function journal_entry_must_balance()`.execute(db);

    await sql`
      create function journal_is_immutable() returns trigger language plpgsql as $$
      begin
        raise exception '% is append-only: % refused; post a correcting entry instead', tg_table_name, tg_op
          using errcode = 'restrict_violation';
      end $$`.execute(db);
    for (const table of ['journal_entry', 'journal_line']) {
      await sql`create trigger ${sql.raw(`${table}_immutable`)} before update or delete on ${sql.table(table)}
        for each row execute function journal_is_immutable()`.execute(db);
      await sql`create trigger ${sql.raw(`${table}_no_truncate`)} before truncate on ${sql.table(table)}
        for each statement execute function journal_is_immutable()`.execute(db);
    }
  },
};

/**
 * Deferred revenue per (tenant, currency, selling branch, package) and accounting day per movement, and
 * per month, so the liability roll-forward reads balances the size of the period and of the groups,
 * not every line since the first sale. A statement-level trigger on journal_line keeps both in the
 * transaction of every insert, whatever path inserts; the journal being append-only, nothing else can
 * change them. It upserts in key order (days, then months) so concurrent posters take row locks in
 * the same order. Rows whose lines net to zero stay: a day row says that lines were posted that day.
 */
const deferredRevenueBalances: Migration = {
  async up(db) {
    await sql`
      create table deferred_revenue_day (
        tenant_id text not null,
        currency text not null,
        accounting_date date not null,
        branch_id text not null,
        definition_id text not null,
        movement text not null,
        -- credit - debit: the liability's increase.
        net_credit_minor bigint not null,
        primary key (tenant_id, currency, accounting_date, branch_id, definition_id, movement)
      )`.execute(db);
    await sql`
      create table deferred_revenue_month (
        tenant_id text not null,
        currency text not null,
        branch_id text not null,
        definition_id text not null,
        month date not null check (month = date_trunc('month', month)::date),
        net_credit_minor bigint not null,
        primary key (tenant_id, currency, branch_id, definition_id, month)
      )`.execute(db);

    await sql`
      create function deferred_revenue_balances_add() returns trigger language plpgsql as $$
      begin
        insert into deferred_revenue_day as d (tenant_id, currency, accounting_date, branch_id, definition_id, movement, net_credit_minor)
        select tenant_id, currency, accounting_date, branch_id, definition_id, movement, sum(credit_minor - debit_minor)
          from inserted where account = 'DEFERRED_REVENUE'
         group by tenant_id, currency, accounting_date, branch_id, definition_id, movement
         order by tenant_id, currency, accounting_date, branch_id, definition_id, movement
        on conflict (tenant_id, currency, accounting_date, branch_id, definition_id, movement)
        do update set net_credit_minor = d.net_credit_minor + excluded.net_credit_minor;
        insert into deferred_revenue_month as m (tenant_id, currency, branch_id, definition_id, month, net_credit_minor)
        select tenant_id, currency, branch_id, definition_id, date_trunc('month', accounting_date)::date, sum(credit_minor - debit_minor)
          from inserted where account = 'DEFERRED_REVENUE'
         group by 1, 2, 3, 4, 5
         order by 1, 2, 3, 4, 5
        on conflict (tenant_id, currency, branch_id, definition_id, month)
        do update set net_credit_minor = m.net_credit_minor + excluded.net_credit_minor;
        return null;
      end $$`.execute(db);
    await sql`
      create trigger journal_line_deferred_revenue_balances after insert on journal_line
      referencing new table as inserted for each statement execute function deferred_revenue_balances_add()`.execute(db);

    // For lines inserted with triggers off (a restore, a bulk copy under session_replication_role =
    // replica): recomputes one tenant's balances, or every tenant's with null. The share lock waits
    // for open posters and holds new ones back, so the journal cannot move under the recount.
    await sql`
      create function rebuild_deferred_revenue_balances(only_tenant text) returns void language plpgsql as $$
      begin
        lock table journal_line in share mode;
        delete from deferred_revenue_day where only_tenant is null or tenant_id = only_tenant;
        delete from deferred_revenue_month where only_tenant is null or tenant_id = only_tenant;
        insert into deferred_revenue_day (tenant_id, currency, accounting_date, branch_id, definition_id, movement, net_credit_minor)
        select tenant_id, currency, accounting_date, branch_id, definition_id, movement, sum(credit_minor - debit_minor)
          from journal_line where account = 'DEFERRED_REVENUE' and (only_tenant is null or tenant_id = only_tenant)
         group by tenant_id, currency, accounting_date, branch_id, definition_id, movement;
        insert into deferred_revenue_month (tenant_id, currency, branch_id, definition_id, month, net_credit_minor)
        select tenant_id, currency, branch_id, definition_id, date_trunc('month', accounting_date)::date, sum(net_credit_minor)
          from deferred_revenue_day where only_tenant is null or tenant_id = only_tenant
         group by 1, 2, 3, 4, 5;
      end $$`.execute(db);
    await sql`select rebuild_deferred_revenue_balances(null)`.execute(db);
  },
};

/**
 * A line names its entry by the entry's key alone. The composite key it referenced (the id with the
 * tenant, date, package and currency the line repeats) let the planner check each line through a
 * tenant index: planned while journal_entry had no statistics (a new table, and no analyze since),
 * every line's check read all the tenant's entries, quadratic in the journal (about 1,900 rows read
 * per line at 3,600 entries). The repeated columns are now checked with the balance, at commit.
 */
const lineNamesItsEntry: Migration = {
  async up(db) {
    await sql`
      do $$
      declare
        c record;
      begin
        for c in
          select conrelid::regclass as tbl, conname from pg_constraint
          where (conrelid = 'journal_line'::regclass and contype = 'f')
             or (conrelid = 'journal_entry'::regclass and contype = 'u' and cardinality(conkey) = 5)
          order by contype -- the foreign key ('f') before the key it references ('u')
        loop
          execute format('alter table %s drop constraint %I', c.tbl, c.conname);
        end loop;
      end $$`.execute(db);
    await sql`alter table journal_line add constraint journal_line_entry foreign key (journal_entry_id) references journal_entry (journal_entry_id)`.execute(db);
    await sql`
      create or replace function journal_entry_must_balance() returns trigger language plpgsql as $$
      declare
        entry uuid := coalesce(new.journal_entry_id, old.journal_entry_id);
        lines integer;
        astray integer;
        unbalanced text;
      begin
        select count(*),
               count(*) filter (where (l.tenant_id, l.accounting_date, l.definition_id, l.currency)
                 is distinct from (e.tenant_id, e.accounting_date, e.definition_id, e.currency))
          into lines, astray
          from journal_line l join journal_entry e on e.journal_entry_id = l.journal_entry_id
          where l.journal_entry_id = entry;
        if lines < 2 then
          raise exception 'journal entry % has % line(s); an entry needs at least two', entry, lines
            using errcode = 'check_violation';
        end if;
        if astray > 0 then
          raise exception 'journal entry % has % line(s) of another tenant, accounting date, package or currency', entry, astray
            using errcode = 'check_violation';
        end if;
        select string_agg(branch_id || ' (' || net || ')', ', ') into unbalanced from (
          select branch_id, sum(debit_minor) - sum(credit_minor) as net
          from journal_line where journal_entry_id = entry group by branch_id
        ) b where net <> 0;
        if unbalanced is not null then
          raise exception 'journal entry % does not balance: debits - credits at %', entry, unbalanced
            using errcode = 'check_violation';
        end if;
        return null;
      end $$`.execute(db);
  },
};

/**
 * An entry's balance is checked once, at commit, by the trigger on journal_entry. The trigger on
 * journal_line checked the same entry again for each of its lines: three runs of the check for a
 * two-line entry, each a PL/pgSQL call with two queries (the line triggers were about half of the
 * checks' cost, measured on the bench's VM). Lines added to an entry by later statements of the
 * transaction that inserts it are still checked with it at commit; a line for an entry committed
 * before is refused at once, checked per statement in one query: the journal is append-only, and an
 * entry is whole when it commits. An entry's transaction is told by its xmin, so one inserted under a
 * savepoint would read as another transaction's and its lines be refused (revenue sets none).
 */
const balanceCheckedOncePerEntry: Migration = {
  async up(db) {
    await sql`drop trigger journal_line_balanced on journal_line`.execute(db);
    await sql`
      create function journal_line_entry_is_open() returns trigger language plpgsql as $$
      declare
        -- xmin is the 32-bit transaction id; pg_current_xact_id() carries the epoch above it.
        own xid := (pg_current_xact_id()::text::bigint % 4294967296)::text::xid;
        closed uuid;
      begin
        select i.journal_entry_id into closed
          from inserted i join journal_entry e on e.journal_entry_id = i.journal_entry_id
         where e.xmin <> own
         limit 1;
        if closed is not null then
          raise exception 'journal entry % was posted by an earlier transaction: no line can be added to it', closed
            using errcode = 'restrict_violation';
        end if;
        return null;
      end $$`.execute(db);
    await sql`
      create trigger journal_line_entry_open after insert on journal_line
      referencing new table as inserted for each statement execute function journal_line_entry_is_open()`.execute(db);
  },
};

export const migrations: Migrations = {
  '0001_outbox': outboxMigration,
  '0002_inbox': inboxMigration,
  '0003_catalogue': catalogue,
  '0004_contracts': contracts,
  '0005_journal': journal,
  '0006_deferred_revenue_balances': deferredRevenueBalances,
  '0007_journal_line_names_its_entry': lineNamesItsEntry,
  '0008_outbox_seq_not_unique': outboxSeqNotUniqueMigration,
  '0009_journal_entry_seq_not_unique': {
    async up(db) {
      // seq comes from its sequence and is read only with the tenant (journal_entry_tenant_date,
      // journal_entry_tenant_entitlement); the unique index took an entry at every posting.
      await sql`alter table journal_entry drop constraint journal_entry_seq_key`.execute(db);
    },
  },
  '0010_outbox_deleted_on_publish': outboxDeletedOnPublishMigration,
  '0011_balance_checked_once_per_entry': balanceCheckedOncePerEntry,
  '0012_outbox_keyed_by_seq': outboxKeyedBySeqMigration,
  // Every ledger event updates its entitlement's progress row (the version applied); only the key indexes it.
  '0013_progress_room_for_updates': roomForUpdatesMigration('entitlement_progress'),
};
