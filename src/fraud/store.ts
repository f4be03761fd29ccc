// Fraud screening's SQL: rules, block list, screenings (the history the rules read) and cases.
import { type Sql, UUID_MIN } from '../db/db.ts';
import {
  type History,
  type HistoryPlan,
  type Reason,
  type RuleAction,
  type RuleType,
  type StoredRule,
  VELOCITY_WINDOWS_MAX,
  type Verdict,
} from './rules.ts';

// ------------------------------------------------------------------------------------------------ rules

interface RuleRow {
  id: string;
  type: RuleType;
  enabled: boolean;
  action: RuleAction;
  parameters: Record<string, unknown>;
  description: string;
  version: number;
  updated_at: Date | string;
  updated_by: string | null;
}

const ruleFromRow = (row: RuleRow): StoredRule => ({
  id: row.id,
  type: row.type,
  enabled: row.enabled,
  action: row.action,
  parameters: row.parameters,
  description: row.description,
  version: Number(row.version),
  // Rows read through json_agg carry their timestamps as text.
  updatedAt: new Date(row.updated_at),
  updatedBy: row.updated_by,
});

/** Every rule with the rule set's version, read together so the two always match. */
export async function loadRules(sql: Sql): Promise<{ version: bigint; rules: StoredRule[] }> {
  const [row] = await sql.query<{ version: bigint; rules: RuleRow[] }>(
    `select (select version from fraud_rule_set) as version,
            coalesce((select json_agg(r order by r.id) from fraud_rules r), '[]'::json) as rules`,
  );
  if (!row) throw new Error('fraud_rule_set has no row');
  return { version: BigInt(row.version), rules: row.rules.map(ruleFromRow) };
}

export async function findRule(sql: Sql, id: string): Promise<StoredRule | undefined> {
  const [row] = await sql.query<RuleRow>('select * from fraud_rules where id = $1', [id]);
  return row && ruleFromRow(row);
}

export async function updateRule(
  sql: Sql,
  id: string,
  change: {
    enabled: boolean | undefined;
    action: RuleAction | undefined;
    parameters: Readonly<Record<string, unknown>> | undefined;
    by: string;
    at: Date;
  },
): Promise<StoredRule | undefined> {
  const [row] = await sql.query<RuleRow>(
    `update fraud_rules
        set enabled = coalesce($2, enabled), action = coalesce($3, action),
            parameters = coalesce($4::text::jsonb, parameters), version = version + 1,
            updated_by = $5, updated_at = $6
      where id = $1
      returning *`,
    [
      id,
      change.enabled ?? null,
      change.action ?? null,
      change.parameters === undefined ? null : JSON.stringify(change.parameters),
      change.by,
      change.at,
    ],
  );
  return row && ruleFromRow(row);
}

// ------------------------------------------------------------------------------------------- block list

export interface BlocklistEntry {
  readonly iban: string;
  readonly reason: string;
  readonly addedBy: string;
  readonly addedAt: Date;
}

interface BlocklistRow {
  iban: string;
  reason: string;
  added_by: string;
  added_at: Date;
}

const blocklistFromRow = (row: BlocklistRow): BlocklistEntry => ({
  iban: row.iban,
  reason: row.reason,
  addedBy: row.added_by,
  addedAt: row.added_at,
});

export async function listBlocklist(
  sql: Sql,
  after: string | undefined,
  limit: number,
): Promise<BlocklistEntry[]> {
  const rows = await sql.query<BlocklistRow>(
    // From the cursor on, an index condition even when absent (every IBAN sorts after '').
    "select * from fraud_blocklist where iban > coalesce($1::text, '') order by iban limit $2",
    [after ?? null, limit],
  );
  return rows.map(blocklistFromRow);
}

/** Adds the entry; an IBAN already listed keeps its first entry, which is returned with `added: false`. */
export async function addToBlocklist(
  sql: Sql,
  entry: BlocklistEntry,
): Promise<{ entry: BlocklistEntry; added: boolean }> {
  const [inserted] = await sql.query<BlocklistRow>(
    `insert into fraud_blocklist (iban, reason, added_by, added_at) values ($1, $2, $3, $4)
     on conflict (iban) do nothing returning *`,
    [entry.iban, entry.reason, entry.addedBy, entry.addedAt],
  );
  if (inserted) return { entry: blocklistFromRow(inserted), added: true };
  const [existing] = await sql.query<BlocklistRow>('select * from fraud_blocklist where iban = $1', [
    entry.iban,
  ]);
  // Deleted between the two statements: it is not listed now, and the caller may simply retry.
  if (!existing) throw new Error(`block list entry ${entry.iban} vanished while being added`);
  return { entry: blocklistFromRow(existing), added: false };
}

export async function removeFromBlocklist(sql: Sql, iban: string): Promise<boolean> {
  const rows = await sql.query('delete from fraud_blocklist where iban = $1 returning iban', [iban]);
  return rows.length > 0;
}

// ------------------------------------------------------------------------------------------- screenings

export interface StoredScreening {
  readonly id: string;
  readonly paymentId: string;
  readonly customerId: string;
  readonly debtorAccountId: string;
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly creditorIban: string;
  readonly deviceKey: string | null;
  readonly at: Date;
  readonly verdict: Verdict;
  readonly reasons: readonly Reason[];
  readonly ruleVersions: Readonly<Record<string, number>>;
  readonly rulesVersion: bigint;
  readonly latencyUs: number;
}

interface ScreeningRow {
  id: string;
  payment_id: string;
  customer_id: string;
  debtor_account_id: string;
  amount: bigint | string;
  currency: string;
  creditor_iban: string;
  device_key: string | null;
  at: Date | string;
  verdict: Verdict;
  reasons: Reason[];
  rule_versions: Record<string, number>;
  rules_version: bigint | string;
  latency_us: number;
}

// Also read as SCREENING_JSON, where bigints and timestamps arrive as text.
const screeningFromRow = (row: ScreeningRow): StoredScreening => ({
  id: row.id,
  paymentId: row.payment_id,
  customerId: row.customer_id,
  debtorAccountId: row.debtor_account_id,
  amountMinor: BigInt(row.amount),
  currency: row.currency,
  creditorIban: row.creditor_iban,
  deviceKey: row.device_key,
  at: new Date(row.at),
  verdict: row.verdict,
  reasons: row.reasons,
  ruleVersions: row.rule_versions,
  rulesVersion: BigInt(row.rules_version),
  latencyUs: row.latency_us,
});

// A screening inside another row, with its bigints as text: a JSON number would round them past 2^53.
const SCREENING_JSON = `json_build_object('id', s.id, 'payment_id', s.payment_id, 'customer_id', s.customer_id,
  'debtor_account_id', s.debtor_account_id, 'amount', s.amount::text, 'currency', s.currency,
  'creditor_iban', s.creditor_iban, 'device_key', s.device_key, 'at', s.at, 'verdict', s.verdict,
  'reasons', s.reasons, 'rule_versions', s.rule_versions, 'rules_version', s.rules_version::text,
  'latency_us', s.latency_us)`;

export interface HistoryQuery {
  /** The payment being screened: its earlier screening, if any, comes back with the history. */
  readonly paymentId: string;
  readonly customerId: string;
  readonly currency: string;
  readonly creditorIban: string;
  readonly deviceKey: string | null;
  readonly at: Date;
  readonly plan: HistoryPlan;
}

const MINUTE_MS = 60 * 1000;
const DAY_MS = 24 * 60 * MINUTE_MS;
// Each velocity window's count and total in the payment's currency, from one scan of the widest window
// (the first). A fixed number of them keeps the statement's text constant, so it is planned once.
const VELOCITY_WINDOW_AGGREGATES = Array.from({ length: VELOCITY_WINDOWS_MAX }, (_, index) => {
  const since = `q.since[${index + 1}]`;
  return `count(*) filter (where s.at > ${since}),
          coalesce(sum(s.amount) filter (where s.currency = q.currency and s.at > ${since}), 0)::text`;
}).join(',\n          ');
// The first key of the two-key advisory locks on a customer's screening history (the second: the customer).
const CUSTOMER_HISTORY_LOCK_CLASS = 7_140_418;

/**
 * Holds each customer's screening history until the transaction ends, in one statement for many customers
 * (a group's payments go as one joint call, src/db/group-commit.ts), in the customers' order, so two
 * transactions that lock some of the same customers never wait on each other in a circle. A statement of
 * its own, before the read: a statement's snapshot is taken when it starts, so a lock inside the read would
 * not show it what the previous holder committed.
 */
export async function lockCustomerHistories(sql: Sql, customerIds: readonly string[]): Promise<undefined[]> {
  await sql.query('select pg_advisory_xact_lock($1, hashtext(c)) from unnest($2::text[]) as c', [
    CUSTOMER_HISTORY_LOCK_CLASS,
    [...customerIds].sort(),
  ]);
  return customerIds.map(() => undefined);
}

/** The statement `readHistories` sends: its queries are its one parameter, as JSON. */
export const READ_HISTORIES = `select
       (select version from fraud_rule_set) as rules_version,
       (select json_build_array(${VELOCITY_WINDOW_AGGREGATES})
          from fraud_screenings s
         where s.customer_id = q.customer_id and s.in_history and s.at > q.since[1] and s.at <= q.at
       ) as windows,
       (select coalesce(json_agg(json_build_array(a.amount::text, a.at)), '[]'::json)
          from (select s.amount, s.at from fraud_screenings s
                 where s.customer_id = q.customer_id and s.in_history and s.currency = q.currency
                   and s.at > q.amounts_since and s.at <= q.at
                 order by s.at desc limit q.amounts_max) a) as amounts,
       coalesce((select true from fraud_screenings s
                  where s.customer_id = q.customer_id and s.creditor_iban = q.creditor_iban and s.in_history
                  limit 1), false) as payee_known,
       coalesce((select true from fraud_blocklist b where b.iban = q.creditor_iban), false) as payee_blocklisted,
       (select max(s.at) from fraud_screenings s
         where s.customer_id = q.customer_id and s.device_key = q.device_key and s.in_history
           and s.device_key is not null and s.at <= q.at) as device_last_seen,
       (select max(s.at) from fraud_screenings s
         where s.customer_id = q.customer_id and s.in_history and s.device_key is not null
           and s.at <= q.at) as any_device_last_seen,
       (select ${SCREENING_JSON} from fraud_screenings s where s.payment_id = q.payment_id) as screened
     from jsonb_to_recordset($1::text::jsonb) as q(o int, payment_id uuid, customer_id uuid, currency text,
       creditor_iban text, device_key text, at timestamptz, amounts_since timestamptz, amounts_max int,
       since timestamptz[])
     order by q.o`;

/**
 * Everything screenings read, in one statement for many (a group's payments go as one joint call): per
 * query, the rule set's version (so a change is noticed at once), the payment's own screening if it was
 * screened before, and the customer's history as its `plan` needs it. Each part is an index lookup on the
 * customer (see the migration's indexes), bounded by time or by a limit, or on the payment, and made per
 * query: the payee checks are scalar subqueries, not `exists`, which PostgreSQL may turn into one read of
 * every screening, hashed. Amounts come back as text, so no driver turns a bigint into a float.
 */
export async function readHistories(
  sql: Sql,
  queries: readonly HistoryQuery[],
): Promise<{ rulesVersion: bigint; history: History; screened: StoredScreening | undefined }[]> {
  const rows = await sql.query<{
    rules_version: bigint;
    windows: (number | string)[];
    amounts: [string, string][];
    payee_known: boolean;
    payee_blocklisted: boolean;
    device_last_seen: Date | null;
    any_device_last_seen: Date | null;
    screened: ScreeningRow | null;
  }>(READ_HISTORIES, [
    JSON.stringify(
      queries.map((query, o) => ({
        o,
        payment_id: query.paymentId,
        customer_id: query.customerId,
        currency: query.currency,
        creditor_iban: query.creditorIban,
        device_key: query.deviceKey,
        at: query.at,
        amounts_since: new Date(query.at.getTime() - query.plan.amountLookbackDays * DAY_MS),
        amounts_max: query.plan.amountsMax,
        // Padded with the narrowest window, whose figures are then read and ignored; none: an empty range.
        since: Array.from({ length: VELOCITY_WINDOWS_MAX }, (_, index) => {
          const minutes = query.plan.windowMinutes[index] ?? query.plan.windowMinutes.at(-1) ?? 0;
          return new Date(query.at.getTime() - minutes * MINUTE_MS);
        }),
      })),
    ),
  ]);
  if (rows.length !== queries.length)
    throw new Error(`the history query returned ${rows.length} rows for ${queries.length} queries`);
  return rows.map((row, index) => ({
    rulesVersion: BigInt(row.rules_version),
    history: {
      windows: (queries[index] as HistoryQuery).plan.windowMinutes.map((_, window) => ({
        count: Number(row.windows[2 * window]),
        amountMinor: BigInt(row.windows[2 * window + 1] ?? 0),
      })),
      amounts: row.amounts.map(([amount, at]) => ({ amountMinor: BigInt(amount), at: new Date(at) })),
      payeeKnown: row.payee_known,
      payeeBlocklisted: row.payee_blocklisted,
      deviceLastSeen: row.device_last_seen ?? undefined,
      anyDeviceLastSeen: row.any_device_last_seen ?? undefined,
    },
    screened: row.screened ? screeningFromRow(row.screened) : undefined,
  }));
}

/** A screening to record and, for a verdict other than allow, the case it opens. */
export interface ScreeningRecord {
  readonly screening: StoredScreening;
  readonly openCase: { readonly id: string; readonly at: Date } | undefined;
}

/**
 * Records screenings, each with the case it opens, in one statement, so a screening and its case exist
 * together or not at all; a group's payments go as one joint call (src/db/group-commit.ts). Per item,
 * false when its payment was already screened (a twin call won the race).
 */
export async function recordScreenings(sql: Sql, items: readonly ScreeningRecord[]): Promise<boolean[]> {
  const rows = await sql.query<{ id: string }>(
    `with r as (
       select * from jsonb_to_recordset($1::text::jsonb) as r(o int, id uuid, payment_id uuid, customer_id uuid,
         debtor_account_id uuid, amount bigint, currency text, creditor_iban text, device_key text,
         at timestamptz, verdict text, reasons jsonb, rule_versions jsonb, rules_version bigint, latency_us int,
         case_id uuid, case_opened_at timestamptz)),
     screened as (
       insert into fraud_screenings (id, payment_id, customer_id, debtor_account_id, amount, currency, creditor_iban,
         device_key, at, verdict, reasons, rule_versions, rules_version, latency_us, in_history)
       select id, payment_id, customer_id, debtor_account_id, amount, currency, creditor_iban, device_key, at,
              verdict, reasons, rule_versions, rules_version, latency_us, verdict <> 'block'
         from r order by o
       on conflict (payment_id) do nothing returning id),
     opened as (
       insert into fraud_cases (id, screening_id, payment_id, customer_id, verdict, status, opened_at)
       select r.case_id, r.id, r.payment_id, r.customer_id, r.verdict, 'open', r.case_opened_at
         from r join screened using (id) where r.case_id is not null)
     select id from screened`,
    [
      JSON.stringify(
        items.map(({ screening: s, openCase }, o) => ({
          o,
          id: s.id,
          payment_id: s.paymentId,
          customer_id: s.customerId,
          debtor_account_id: s.debtorAccountId,
          amount: s.amountMinor.toString(),
          currency: s.currency,
          creditor_iban: s.creditorIban,
          device_key: s.deviceKey,
          at: s.at,
          verdict: s.verdict,
          reasons: s.reasons,
          rule_versions: s.ruleVersions,
          rules_version: s.rulesVersion.toString(),
          latency_us: s.latencyUs,
          case_id: openCase?.id ?? null,
          case_opened_at: openCase?.at ?? null,
        })),
      ),
    ],
  );
  const recorded = new Set(rows.map((row) => row.id));
  return items.map(({ screening }) => recorded.has(screening.id));
}

// ------------------------------------------------------------------------------------------------ cases

export const CASE_STATUSES = ['open', 'claimed', 'resolved'] as const;
export type CaseStatus = (typeof CASE_STATUSES)[number];
export const CASE_OUTCOMES = ['confirmed_fraud', 'legitimate'] as const;
export type CaseOutcome = (typeof CASE_OUTCOMES)[number];

export interface StoredCase {
  readonly id: string;
  readonly screeningId: string;
  readonly paymentId: string;
  readonly customerId: string;
  readonly verdict: Exclude<Verdict, 'allow'>;
  readonly status: CaseStatus;
  readonly claimedBy: string | null;
  readonly claimedAt: Date | null;
  readonly outcome: CaseOutcome | null;
  readonly resolvedBy: string | null;
  readonly resolutionNote: string | null;
  readonly resolvedAt: Date | null;
  readonly openedAt: Date;
}

interface CaseRow {
  id: string;
  screening_id: string;
  payment_id: string;
  customer_id: string;
  verdict: Exclude<Verdict, 'allow'>;
  status: CaseStatus;
  claimed_by: string | null;
  claimed_at: Date | null;
  outcome: CaseOutcome | null;
  resolved_by: string | null;
  resolution_note: string | null;
  resolved_at: Date | null;
  opened_at: Date;
}

const caseFromRow = (row: CaseRow): StoredCase => ({
  id: row.id,
  screeningId: row.screening_id,
  paymentId: row.payment_id,
  customerId: row.customer_id,
  verdict: row.verdict,
  status: row.status,
  claimedBy: row.claimed_by,
  claimedAt: row.claimed_at,
  outcome: row.outcome,
  resolvedBy: row.resolved_by,
  resolutionNote: row.resolution_note,
  resolvedAt: row.resolved_at,
  openedAt: row.opened_at,
});

/** Oldest first (ids are time-ordered), after the cursor's id. */
export async function listCases(
  sql: Sql,
  status: CaseStatus | undefined,
  after: string | undefined,
  limit: number,
): Promise<StoredCase[]> {
  // One statement for each case, the cursor an index condition even when absent: by status through
  // (status, id), else through the key.
  const rows =
    status === undefined
      ? await sql.query<CaseRow>(
          `select * from fraud_cases where id > coalesce($1::uuid, '${UUID_MIN}') order by id limit $2`,
          [after ?? null, limit],
        )
      : await sql.query<CaseRow>(
          `select * from fraud_cases where status = $1 and id > coalesce($2::uuid, '${UUID_MIN}')
            order by id limit $3`,
          [status, after ?? null, limit],
        );
  return rows.map(caseFromRow);
}

export async function findCase(
  sql: Sql,
  id: string,
  forUpdate = false,
): Promise<{ case: StoredCase; screening: StoredScreening } | undefined> {
  const [row] = await sql.query<CaseRow & { screening: ScreeningRow }>(
    `select c.*, ${SCREENING_JSON} as screening
       from fraud_cases c join fraud_screenings s on s.id = c.screening_id
      where c.id = $1${forUpdate ? ' for update of c' : ''}`,
    [id],
  );
  return row && { case: caseFromRow(row), screening: screeningFromRow(row.screening) };
}

/** Claims a case nobody holds, or whose claim went stale; the holder claiming again renews it. */
export async function claimCase(
  sql: Sql,
  id: string,
  reviewer: string,
  at: Date,
  staleBefore: Date,
): Promise<StoredCase | undefined> {
  const [row] = await sql.query<CaseRow>(
    `update fraud_cases set status = 'claimed', claimed_by = $2, claimed_at = $3
      where id = $1 and status <> 'resolved'
        and (claimed_by is null or claimed_by = $2 or claimed_at < $4)
      returning *`,
    [id, reviewer, at, staleBefore],
  );
  return row && caseFromRow(row);
}

/** Resolves the case; a confirmed fraud also leaves the customer's history, as the customer never made it. */
export async function resolveCase(
  sql: Sql,
  id: string,
  resolution: { reviewer: string; outcome: CaseOutcome; note: string; at: Date },
): Promise<StoredCase> {
  const [row] = await sql.query<CaseRow>(
    `with resolved as (
       update fraud_cases
          set status = 'resolved', outcome = $2, resolved_by = $3, resolution_note = $4, resolved_at = $5
        where id = $1
        returning *
     ), forgotten as (
       update fraud_screenings s set in_history = false
         from resolved r where s.id = r.screening_id and r.outcome = 'confirmed_fraud'
     )
     select * from resolved`,
    [id, resolution.outcome, resolution.reviewer, resolution.note, resolution.at],
  );
  if (!row) throw new Error(`case ${id} vanished while being resolved`);
  return caseFromRow(row);
}
