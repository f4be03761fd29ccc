import { arrayLiteral, type Sql, UUID_MAX } from '../db/db.ts';
import type { Period } from './periods.ts';

export interface StoredMandate {
  readonly id: string;
  readonly clientId: string;
  readonly currency: string;
  readonly maxPerCharge: bigint;
  /** One per period the mandate limits, in PERIODS order. */
  readonly periodicLimits: readonly { readonly period: Period; readonly max: bigint }[];
  readonly creditorIban: string;
  readonly creditorAccountId: string;
  readonly createdAt: Date;
}

export type ChargeStatus = 'pending' | 'succeeded' | 'failed';

export interface StoredCharge {
  readonly id: string;
  readonly mandateId: string;
  readonly clientId: string;
  readonly customerId: string;
  readonly paymentId: string;
  readonly debtorAccountId: string;
  readonly idempotencyKey: string;
  readonly requestHash: string;
  readonly currency: string;
  readonly amount: bigint;
  readonly refunded: bigint;
  readonly reference: string | null;
  readonly status: ChargeStatus;
  readonly failureCode: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export type RefundStatus = 'pending' | 'succeeded' | 'failed';

export interface StoredRefund {
  readonly id: string;
  readonly chargeId: string;
  readonly mandateId: string;
  readonly clientId: string;
  readonly customerId: string;
  readonly idempotencyKey: string;
  readonly requestHash: string;
  readonly amount: bigint;
  readonly status: RefundStatus;
  readonly failureCode: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

interface MandateRow {
  id: string;
  client_id: string;
  currency: string;
  max_per_charge: bigint;
  max_per_day: bigint | null;
  max_per_week: bigint | null;
  max_per_month: bigint | null;
  creditor_iban: string;
  creditor_account_id: string;
  created_at: Date;
}

const mandateFromRow = (row: MandateRow): StoredMandate => ({
  id: row.id,
  clientId: row.client_id,
  currency: row.currency,
  maxPerCharge: row.max_per_charge,
  periodicLimits: (
    [
      ['day', row.max_per_day],
      ['week', row.max_per_week],
      ['month', row.max_per_month],
    ] as const
  ).flatMap(([period, max]) => (max === null ? [] : [{ period, max }])),
  creditorIban: row.creditor_iban,
  creditorAccountId: row.creditor_account_id,
  createdAt: row.created_at,
});

export async function insertMandate(sql: Sql, mandate: StoredMandate): Promise<void> {
  const limit = (period: Period) => mandate.periodicLimits.find((l) => l.period === period)?.max ?? null;
  await sql.query(
    `insert into mandates (id, client_id, currency, max_per_charge, max_per_day, max_per_week, max_per_month,
                           creditor_iban, creditor_account_id, created_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    [
      mandate.id,
      mandate.clientId,
      mandate.currency,
      mandate.maxPerCharge,
      limit('day'),
      limit('week'),
      limit('month'),
      mandate.creditorIban,
      mandate.creditorAccountId,
      mandate.createdAt,
    ],
  );
}

export async function findMandate(sql: Sql, id: string): Promise<StoredMandate | undefined> {
  const [row] = await sql.query<MandateRow>('select * from mandates where id = $1', [id]);
  return row && mandateFromRow(row);
}

export async function findMandates(sql: Sql, ids: readonly string[]): Promise<StoredMandate[]> {
  if (ids.length === 0) return [];
  const rows = await sql.query<MandateRow>('select * from mandates where id = any($1::text::uuid[])', [
    arrayLiteral(ids),
  ]);
  return rows.map(mandateFromRow);
}

/** Locks the mandate until the caller's transaction ends: its charges are counted one at a time. */
export async function lockMandate(sql: Sql, id: string): Promise<boolean> {
  const rows = await sql.query('select id from mandates where id = $1 for update', [id]);
  return rows.length === 1;
}

/**
 * What the mandate's pending and succeeded charges add up to in each window (failed ones moved nothing).
 * Sums of bigint are numeric in SQL: read as text, so no float ever holds money.
 */
export async function chargedIn(
  sql: Sql,
  mandateId: string,
  windows: readonly { readonly period: Period; readonly start: Date; readonly end: Date }[],
): Promise<Map<Period, bigint>> {
  const totals = new Map<Period, bigint>();
  for (const window of windows) {
    const [row] = await sql.query<{ total: string }>(
      `select coalesce(sum(amount), 0)::text as total from mandate_charges
        where mandate_id = $1 and status <> 'failed' and created_at >= $2 and created_at < $3`,
      [mandateId, window.start, window.end],
    );
    totals.set(window.period, BigInt(row?.total ?? '0'));
  }
  return totals;
}

interface ChargeRow {
  id: string;
  mandate_id: string;
  client_id: string;
  customer_id: string;
  payment_id: string;
  debtor_account_id: string;
  idempotency_key: string;
  request_hash: string;
  currency: string;
  amount: bigint;
  refunded: bigint;
  reference: string | null;
  status: ChargeStatus;
  failure_code: string | null;
  created_at: Date;
  updated_at: Date;
}

const chargeFromRow = (row: ChargeRow): StoredCharge => ({
  id: row.id,
  mandateId: row.mandate_id,
  clientId: row.client_id,
  customerId: row.customer_id,
  paymentId: row.payment_id,
  debtorAccountId: row.debtor_account_id,
  idempotencyKey: row.idempotency_key,
  requestHash: row.request_hash,
  currency: row.currency,
  amount: row.amount,
  refunded: row.refunded,
  reference: row.reference,
  status: row.status,
  failureCode: row.failure_code,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** False when the mandate has a charge under this idempotency key already (a twin request's). */
export async function insertCharge(sql: Sql, charge: StoredCharge): Promise<boolean> {
  const rows = await sql.query(
    `insert into mandate_charges (id, mandate_id, client_id, customer_id, payment_id, debtor_account_id,
                                  idempotency_key, request_hash, currency, amount, refunded, reference, status,
                                  failure_code, created_at, updated_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
     on conflict (mandate_id, idempotency_key) do nothing returning 1`,
    [
      charge.id,
      charge.mandateId,
      charge.clientId,
      charge.customerId,
      charge.paymentId,
      charge.debtorAccountId,
      charge.idempotencyKey,
      charge.requestHash,
      charge.currency,
      charge.amount,
      charge.refunded,
      charge.reference,
      charge.status,
      charge.failureCode,
      charge.createdAt,
      charge.updatedAt,
    ],
  );
  return rows.length === 1;
}

export async function findCharge(
  sql: Sql,
  mandateId: string,
  chargeId: string,
): Promise<StoredCharge | undefined> {
  const [row] = await sql.query<ChargeRow>(
    'select * from mandate_charges where id = $1 and mandate_id = $2',
    [chargeId, mandateId],
  );
  return row && chargeFromRow(row);
}

export async function findChargeByKey(
  sql: Sql,
  mandateId: string,
  key: string,
): Promise<StoredCharge | undefined> {
  const [row] = await sql.query<ChargeRow>(
    'select * from mandate_charges where mandate_id = $1 and idempotency_key = $2',
    [mandateId, key],
  );
  return row && chargeFromRow(row);
}

export async function findChargeByPayment(sql: Sql, paymentId: string): Promise<StoredCharge | undefined> {
  const [row] = await sql.query<ChargeRow>('select * from mandate_charges where payment_id = $1', [
    paymentId,
  ]);
  return row && chargeFromRow(row);
}

/** The charge, locked until the caller's transaction ends: its refunds are decided one at a time. */
export async function lockCharge(sql: Sql, chargeId: string): Promise<StoredCharge | undefined> {
  const [row] = await sql.query<ChargeRow>('select * from mandate_charges where id = $1 for update', [
    chargeId,
  ]);
  return row && chargeFromRow(row);
}

/** A mandate's charges, newest first, strictly older than `beforeId` when given. */
export async function listCharges(
  sql: Sql,
  mandateId: string,
  beforeId: string | undefined,
  limit: number,
): Promise<StoredCharge[]> {
  const rows = await sql.query<ChargeRow>(
    `select * from mandate_charges where mandate_id = $1 and id < coalesce($2::uuid, '${UUID_MAX}')
      order by id desc limit $3`,
    [mandateId, beforeId ?? null, limit],
  );
  return rows.map(chargeFromRow);
}

/** Pending charges recorded before `before`: their payment's outcome was not recorded here yet. */
export async function stalePendingCharges(sql: Sql, before: Date, limit: number): Promise<StoredCharge[]> {
  const rows = await sql.query<ChargeRow>(
    `select * from mandate_charges where status = 'pending' and created_at < $1 order by created_at limit $2`,
    [before, limit],
  );
  return rows.map(chargeFromRow);
}

/** pending -> `to` in one statement, so two workers settling the same charge cannot both win. */
export async function finishCharge(
  sql: Sql,
  id: string,
  to: 'succeeded' | 'failed',
  failureCode: string | null,
  now: Date,
): Promise<StoredCharge | undefined> {
  const [row] = await sql.query<ChargeRow>(
    `update mandate_charges set status = $2, failure_code = $3, updated_at = $4
      where id = $1 and status = 'pending' returning *`,
    [id, to, failureCode, now],
  );
  return row && chargeFromRow(row);
}

/** Adds to (or, for a failed refund, takes back from) what was refunded of a charge. */
export async function addRefunded(sql: Sql, chargeId: string, amount: bigint, now: Date): Promise<void> {
  await sql.query('update mandate_charges set refunded = refunded + $2, updated_at = $3 where id = $1', [
    chargeId,
    amount,
    now,
  ]);
}

interface RefundRow {
  id: string;
  charge_id: string;
  mandate_id: string;
  client_id: string;
  customer_id: string;
  idempotency_key: string;
  request_hash: string;
  amount: bigint;
  status: RefundStatus;
  failure_code: string | null;
  created_at: Date;
  updated_at: Date;
}

const refundFromRow = (row: RefundRow): StoredRefund => ({
  id: row.id,
  chargeId: row.charge_id,
  mandateId: row.mandate_id,
  clientId: row.client_id,
  customerId: row.customer_id,
  idempotencyKey: row.idempotency_key,
  requestHash: row.request_hash,
  amount: row.amount,
  status: row.status,
  failureCode: row.failure_code,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export async function insertRefund(sql: Sql, refund: StoredRefund): Promise<void> {
  await sql.query(
    `insert into mandate_refunds (id, charge_id, mandate_id, client_id, customer_id, idempotency_key, request_hash,
                                  amount, status, failure_code, created_at, updated_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [
      refund.id,
      refund.chargeId,
      refund.mandateId,
      refund.clientId,
      refund.customerId,
      refund.idempotencyKey,
      refund.requestHash,
      refund.amount,
      refund.status,
      refund.failureCode,
      refund.createdAt,
      refund.updatedAt,
    ],
  );
}

export async function findRefundByKey(
  sql: Sql,
  chargeId: string,
  key: string,
): Promise<StoredRefund | undefined> {
  const [row] = await sql.query<RefundRow>(
    'select * from mandate_refunds where charge_id = $1 and idempotency_key = $2',
    [chargeId, key],
  );
  return row && refundFromRow(row);
}

/** A charge's refunds, oldest first; a charge has at most REFUNDS_PER_CHARGE_MAX. */
export async function refundsOf(sql: Sql, chargeId: string, limit: number): Promise<StoredRefund[]> {
  const rows = await sql.query<RefundRow>(
    'select * from mandate_refunds where charge_id = $1 order by id limit $2',
    [chargeId, limit],
  );
  return rows.map(refundFromRow);
}

export async function stalePendingRefunds(sql: Sql, before: Date, limit: number): Promise<StoredRefund[]> {
  const rows = await sql.query<RefundRow>(
    `select * from mandate_refunds where status = 'pending' and created_at < $1 order by created_at limit $2`,
    [before, limit],
  );
  return rows.map(refundFromRow);
}

export async function finishRefund(
  sql: Sql,
  id: string,
  to: 'succeeded' | 'failed',
  failureCode: string | null,
  now: Date,
): Promise<StoredRefund | undefined> {
  const [row] = await sql.query<RefundRow>(
    `update mandate_refunds set status = $2, failure_code = $3, updated_at = $4
      where id = $1 and status = 'pending' returning *`,
    [id, to, failureCode, now],
  );
  return row && refundFromRow(row);
}
