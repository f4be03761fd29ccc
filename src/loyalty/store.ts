// Loyalty's SQL: earn rules and redemption rates (operators' data), points accounts, debits and refunds.
// A change that reports an event writes it into the outbox in the same statement (see events/outbox.ts).
import type { Sql } from '../db/db.ts';
import type { OutboxEvent } from '../events/outbox.ts';
import type { Minor } from '../money.ts';
import type { EarnRule, Points, RedemptionRate } from './rules.ts';

export type SplitStatus = 'planned' | 'applied' | 'voided';

/** Appended to a data-changing statement whose result set is `changed`: one event per changed row. */
const EVENT_FROM = (changed: string, type: number, subject: number, payload: number, at: number) =>
  `insert into outbox_events (type, subject_id, payload, created_at)
   select $${type}, $${subject}, $${payload}::text::jsonb, $${at} from ${changed}`;
const eventParams = (event: OutboxEvent) => [event.type, event.subjectId, JSON.stringify(event.payload)];

// ------------------------------------------------------------------------------------------ rules and rates

export interface StoredEarnRule extends EarnRule {
  readonly version: number;
  readonly updatedBy: string;
  readonly updatedAt: Date;
}

export interface StoredRedemptionRate extends RedemptionRate {
  readonly version: number;
  readonly updatedBy: string;
  readonly updatedAt: Date;
}

interface EarnRuleRow {
  currency: string;
  merchant_category: string;
  points: bigint | string;
  per_minor: bigint | string;
  version: number;
  updated_by: string;
  updated_at: Date | string;
}

interface RateRow {
  currency: string;
  points: bigint | string;
  amount_minor: bigint | string;
  version: number;
  updated_by: string;
  updated_at: Date | string;
}

// Rows read through row_to_json carry bigints and times as JSON numbers and text: both are read through here.
const earnRuleFromRow = (row: EarnRuleRow): StoredEarnRule => ({
  currency: row.currency,
  merchantCategory: row.merchant_category,
  points: BigInt(row.points),
  perMinor: BigInt(row.per_minor) as Minor,
  version: Number(row.version),
  updatedBy: row.updated_by,
  updatedAt: new Date(row.updated_at),
});

const rateFromRow = (row: RateRow): StoredRedemptionRate => ({
  currency: row.currency,
  points: BigInt(row.points),
  amountMinor: BigInt(row.amount_minor) as Minor,
  version: Number(row.version),
  updatedBy: row.updated_by,
  updatedAt: new Date(row.updated_at),
});

/**
 * The terms a debit in `currency` runs under, read in one round trip: the earn rule for its merchant category
 * (else the currency's default; none without a category) and the redemption rate.
 */
export async function loadTerms(
  sql: Sql,
  currency: string,
  merchantCategory: string | null,
): Promise<{ earnRule: StoredEarnRule | undefined; rate: StoredRedemptionRate | undefined }> {
  // Bigints go through text: row_to_json would make them JSON numbers, exact only up to 2^53.
  const [row] = await sql.query<{ earn: EarnRuleRow | null; rate: RateRow | null }>(
    `select (select json_build_object('currency', currency, 'merchant_category', merchant_category,
                      'points', points::text, 'per_minor', per_minor::text, 'version', version,
                      'updated_by', updated_by, 'updated_at', updated_at)
               from loyalty_earn_rules
              where currency = $1 and $2::text is not null and merchant_category in ($2, 'default')
              order by merchant_category = 'default' limit 1) as earn,
            (select json_build_object('currency', currency, 'points', points::text,
                      'amount_minor', amount_minor::text, 'version', version, 'updated_by', updated_by,
                      'updated_at', updated_at)
               from loyalty_redemption_rates where currency = $1) as rate`,
    [currency, merchantCategory],
  );
  return {
    earnRule: row?.earn ? earnRuleFromRow(row.earn) : undefined,
    rate: row?.rate ? rateFromRow(row.rate) : undefined,
  };
}

/** Earn rules by currency then category, after the given pair when there is one. */
export async function listEarnRules(
  sql: Sql,
  after: { currency: string; merchantCategory: string } | undefined,
  limit: number,
): Promise<StoredEarnRule[]> {
  const rows = await sql.query<EarnRuleRow>(
    `select * from loyalty_earn_rules
      where $1::text is null or (currency, merchant_category) > ($1, $2::text)
      order by currency, merchant_category limit $3`,
    [after?.currency ?? null, after?.merchantCategory ?? null, limit],
  );
  return rows.map(earnRuleFromRow);
}

/** Creates or replaces the rule for its currency and category; `created` tells which. */
export async function putEarnRule(
  sql: Sql,
  rule: EarnRule,
  by: string,
  at: Date,
  event: OutboxEvent,
): Promise<{ rule: StoredEarnRule; created: boolean }> {
  const [row] = await sql.query<EarnRuleRow & { created: boolean }>(
    `with saved as (
       insert into loyalty_earn_rules (currency, merchant_category, points, per_minor, updated_by, updated_at)
       values ($1, $2, $3, $4, $5, $6)
       on conflict (currency, merchant_category) do update
         set points = excluded.points, per_minor = excluded.per_minor, updated_by = excluded.updated_by,
             updated_at = excluded.updated_at, version = loyalty_earn_rules.version + 1
       returning *, xmax = 0 as created),
     event as (${EVENT_FROM('saved', 7, 8, 9, 6)})
     select * from saved`,
    [rule.currency, rule.merchantCategory, rule.points, rule.perMinor, by, at, ...eventParams(event)],
  );
  if (!row) throw new Error('upserting an earn rule returned no row');
  return { rule: earnRuleFromRow(row), created: row.created };
}

export async function deleteEarnRule(
  sql: Sql,
  currency: string,
  merchantCategory: string,
  at: Date,
  event: OutboxEvent,
): Promise<boolean> {
  const rows = await sql.query(
    `with gone as (
       delete from loyalty_earn_rules where currency = $1 and merchant_category = $2 returning 1),
     event as (${EVENT_FROM('gone', 4, 5, 6, 3)})
     select 1 from gone`,
    [currency, merchantCategory, at, ...eventParams(event)],
  );
  return rows.length > 0;
}

/** Every rate: at most one per ISO 4217 currency, so a short list. */
export async function listRedemptionRates(sql: Sql): Promise<StoredRedemptionRate[]> {
  const rows = await sql.query<RateRow>('select * from loyalty_redemption_rates order by currency');
  return rows.map(rateFromRow);
}

export async function putRedemptionRate(
  sql: Sql,
  rate: RedemptionRate,
  by: string,
  at: Date,
  event: OutboxEvent,
): Promise<{ rate: StoredRedemptionRate; created: boolean }> {
  const [row] = await sql.query<RateRow & { created: boolean }>(
    `with saved as (
       insert into loyalty_redemption_rates (currency, points, amount_minor, updated_by, updated_at)
       values ($1, $2, $3, $4, $5)
       on conflict (currency) do update
         set points = excluded.points, amount_minor = excluded.amount_minor, updated_by = excluded.updated_by,
             updated_at = excluded.updated_at, version = loyalty_redemption_rates.version + 1
       returning *, xmax = 0 as created),
     event as (${EVENT_FROM('saved', 6, 7, 8, 5)})
     select * from saved`,
    [rate.currency, rate.points, rate.amountMinor, by, at, ...eventParams(event)],
  );
  if (!row) throw new Error('upserting a redemption rate returned no row');
  return { rate: rateFromRow(row), created: row.created };
}

export async function deleteRedemptionRate(
  sql: Sql,
  currency: string,
  at: Date,
  event: OutboxEvent,
): Promise<boolean> {
  const rows = await sql.query(
    `with gone as (delete from loyalty_redemption_rates where currency = $1 returning 1),
     event as (${EVENT_FROM('gone', 3, 4, 5, 2)})
     select 1 from gone`,
    [currency, at, ...eventParams(event)],
  );
  return rows.length > 0;
}

// ---------------------------------------------------------------------------------------- points accounts

export interface Wallet {
  readonly accountId: string;
  readonly customerId: string;
  readonly ledgerAccountId: string;
  readonly createdAt: Date;
}

interface WalletRow {
  account_id: string;
  customer_id: string;
  ledger_account_id: string;
  created_at: Date;
}

export async function findWallet(sql: Sql, accountId: string): Promise<Wallet | undefined> {
  const [row] = await sql.query<WalletRow>('select * from loyalty_wallets where account_id = $1', [
    accountId,
  ]);
  return (
    row && {
      accountId: row.account_id,
      customerId: row.customer_id,
      ledgerAccountId: row.ledger_account_id,
      createdAt: row.created_at,
    }
  );
}

/** The caller holds the account's lock: no other wallet for it can be inserted meanwhile. */
export async function insertWallet(sql: Sql, wallet: Wallet, event: OutboxEvent): Promise<void> {
  await sql.query(
    `with inserted as (
       insert into loyalty_wallets (account_id, customer_id, ledger_account_id, created_at)
       values ($1, $2, $3, $4) returning 1),
     event as (${EVENT_FROM('inserted', 5, 6, 7, 4)})
     select 1 from inserted`,
    [wallet.accountId, wallet.customerId, wallet.ledgerAccountId, wallet.createdAt, ...eventParams(event)],
  );
}

// ------------------------------------------------------------------------------------------------ debits

export interface StoredDebit {
  readonly id: string;
  readonly accountId: string;
  readonly customerId: string;
  readonly currency: string;
  readonly amount: Minor;
  readonly points: Points;
  readonly pointsValue: Minor;
  readonly pointsPerMinor: bigint | null;
  readonly pointsEarned: Points;
  readonly merchantCategory: string | null;
  readonly status: SplitStatus;
  readonly refundedAmount: Minor;
  readonly refundedValue: Minor;
  readonly earnedReversed: Points;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

interface DebitRow {
  id: string;
  account_id: string;
  customer_id: string;
  currency: string;
  amount: bigint;
  points: bigint;
  points_value: bigint;
  points_per_minor: bigint | null;
  points_earned: bigint;
  merchant_category: string | null;
  status: SplitStatus;
  refunded_amount: bigint;
  refunded_value: bigint;
  earned_reversed: bigint;
  created_at: Date;
  updated_at: Date;
}

const debitFromRow = (row: DebitRow): StoredDebit => ({
  id: row.id,
  accountId: row.account_id,
  customerId: row.customer_id,
  currency: row.currency,
  amount: row.amount as Minor,
  points: row.points as Points,
  pointsValue: row.points_value as Minor,
  pointsPerMinor: row.points_per_minor,
  pointsEarned: row.points_earned as Points,
  merchantCategory: row.merchant_category,
  status: row.status,
  refundedAmount: row.refunded_amount as Minor,
  refundedValue: row.refunded_value as Minor,
  earnedReversed: row.earned_reversed as Points,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** False when a debit with this id exists already (a twin request recorded it). */
export async function insertDebit(sql: Sql, debit: StoredDebit, event: OutboxEvent): Promise<boolean> {
  const rows = await sql.query(
    `with inserted as (
       insert into loyalty_debits (id, account_id, customer_id, currency, amount, points, points_value,
         points_per_minor, points_earned, merchant_category, status, created_at, updated_at)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
       on conflict (id) do nothing returning 1),
     event as (${EVENT_FROM('inserted', 13, 14, 15, 12)})
     select 1 from inserted`,
    [
      debit.id,
      debit.accountId,
      debit.customerId,
      debit.currency,
      debit.amount,
      debit.points,
      debit.pointsValue,
      debit.pointsPerMinor,
      debit.pointsEarned,
      debit.merchantCategory,
      debit.status,
      debit.createdAt,
      ...eventParams(event),
    ],
  );
  return rows.length === 1;
}

export async function findDebit(sql: Sql, id: string, forUpdate = false): Promise<StoredDebit | undefined> {
  const [row] = await sql.query<DebitRow>(
    `select * from loyalty_debits where id = $1${forUpdate ? ' for update' : ''}`,
    [id],
  );
  return row && debitFromRow(row);
}

/** Moves a planned debit to `to`; false when it was not planned (settled before, or never recorded). */
export async function settleDebit(
  sql: Sql,
  id: string,
  to: 'applied' | 'voided',
  at: Date,
  event: OutboxEvent,
): Promise<boolean> {
  const rows = await sql.query(
    `with moved as (
       update loyalty_debits set status = $2, updated_at = $3 where id = $1 and status = 'planned' returning 1),
     event as (${EVENT_FROM('moved', 4, 5, 6, 3)})
     select 1 from moved`,
    [id, to, at, ...eventParams(event)],
  );
  return rows.length > 0;
}

// ------------------------------------------------------------------------------------------------ refunds

export interface StoredRefund {
  readonly id: string;
  readonly debitId: string;
  readonly accountId: string;
  readonly amount: Minor;
  readonly money: Minor;
  readonly pointsValue: Minor;
  readonly points: Points;
  readonly clawback: Points;
  readonly waived: Points;
  readonly status: SplitStatus;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

interface RefundRow {
  id: string;
  debit_id: string;
  account_id: string;
  amount: bigint;
  money: bigint;
  points_value: bigint;
  points: bigint;
  clawback: bigint;
  waived: bigint;
  status: SplitStatus;
  created_at: Date;
  updated_at: Date;
}

const refundFromRow = (row: RefundRow): StoredRefund => ({
  id: row.id,
  debitId: row.debit_id,
  accountId: row.account_id,
  amount: row.amount as Minor,
  money: row.money as Minor,
  pointsValue: row.points_value as Minor,
  points: row.points as Points,
  clawback: row.clawback as Points,
  waived: row.waived as Points,
  status: row.status,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export async function findRefund(sql: Sql, id: string): Promise<StoredRefund | undefined> {
  const [row] = await sql.query<RefundRow>('select * from loyalty_refunds where id = $1', [id]);
  return row && refundFromRow(row);
}

/**
 * Records a planned refund and adds it to its debit's refunded sums, in one statement. The caller holds the
 * debit's row lock and knows the refund id is new or voided (a voided refund is planned again in place).
 */
export async function planRefund(sql: Sql, refund: StoredRefund, event: OutboxEvent): Promise<void> {
  const [row] = await sql.query(
    `with planned as (
       insert into loyalty_refunds (id, debit_id, account_id, amount, money, points_value, points, clawback, waived,
         status, created_at, updated_at)
       values ($1, $2, $13, $3, $4, $5, $6, $7, $8, 'planned', $9, $9)
       on conflict (id) do update
         set amount = excluded.amount, money = excluded.money, points_value = excluded.points_value,
             points = excluded.points, clawback = excluded.clawback, waived = excluded.waived, status = 'planned',
             updated_at = excluded.updated_at
         where loyalty_refunds.status = 'voided' and loyalty_refunds.debit_id = excluded.debit_id
       returning *),
     counted as (
       update loyalty_debits d
          set refunded_amount = d.refunded_amount + p.amount, refunded_value = d.refunded_value + p.points_value,
              earned_reversed = d.earned_reversed + p.clawback + p.waived, updated_at = p.updated_at
         from planned p where d.id = p.debit_id),
     event as (${EVENT_FROM('planned', 10, 11, 12, 9)})
     select 1 from planned`,
    [
      refund.id,
      refund.debitId,
      refund.amount,
      refund.money,
      refund.pointsValue,
      refund.points,
      refund.clawback,
      refund.waived,
      refund.updatedAt,
      ...eventParams(event),
      refund.accountId,
    ],
  );
  if (!row) throw new Error(`refund ${refund.id} is already planned or applied, or belongs to another debit`);
}

/**
 * Moves a planned refund to `to`; a voided one gives its sums back to its debit, so it can be planned again.
 * False when it was not planned.
 */
export async function settleRefund(
  sql: Sql,
  id: string,
  to: 'applied' | 'voided',
  at: Date,
  event: OutboxEvent,
): Promise<boolean> {
  const rows = await sql.query(
    `with moved as (
       update loyalty_refunds set status = $2, updated_at = $3 where id = $1 and status = 'planned' returning *),
     given_back as (
       update loyalty_debits d
          set refunded_amount = d.refunded_amount - m.amount, refunded_value = d.refunded_value - m.points_value,
              earned_reversed = d.earned_reversed - m.clawback - m.waived, updated_at = $3
         from moved m where $2 = 'voided' and d.id = m.debit_id),
     event as (${EVENT_FROM('moved', 4, 5, 6, 3)})
     select 1 from moved`,
    [id, to, at, ...eventParams(event)],
  );
  return rows.length > 0;
}
