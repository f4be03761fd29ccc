import { type Sql, UUID_MIN } from '../db/db.ts';
import type { Frequency } from './schedule.ts';

export type OrderStatus = 'active' | 'completed' | 'cancelled';

export interface StoredOrder {
  readonly id: string;
  readonly kind: 'scheduled' | 'standing';
  readonly clientId: string | null;
  readonly customerId: string;
  readonly consentId: string | null;
  readonly idempotencyScope: string;
  readonly idempotencyKey: string;
  readonly requestHash: string;
  readonly debtorAccountId: string;
  readonly creditorNameEnc: string;
  readonly creditorIban: string;
  readonly currency: string;
  readonly amount: bigint;
  readonly reference: string | null;
  readonly frequency: Frequency | null;
  readonly firstDate: string;
  readonly lastDate: string | null;
  readonly runCountMax: number | null;
  readonly nextRunOn: string | null;
  readonly runsCreated: number;
  readonly status: OrderStatus;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface OrderRun {
  readonly orderId: string;
  readonly runOn: string;
  readonly status: 'pending' | 'paid' | 'failed';
  readonly paymentId: string | null;
  readonly outcome: string | null;
  /** When it last changed: created pending, then paid or failed. */
  readonly updatedAt: Date;
}

// Dates travel as text both ways: the two drivers map `date` to different JavaScript types.
const COLUMNS = `id, kind, client_id, customer_id, consent_id, idempotency_scope, idempotency_key, request_hash,
  debtor_account_id, creditor_name_enc, creditor_iban, currency, amount, reference, frequency,
  first_date::text as first_date, last_date::text as last_date, run_count_max, next_run_on::text as next_run_on,
  runs_created, status, created_at, updated_at`;

interface Row {
  id: string;
  kind: 'scheduled' | 'standing';
  client_id: string | null;
  customer_id: string;
  consent_id: string | null;
  idempotency_scope: string;
  idempotency_key: string;
  request_hash: string;
  debtor_account_id: string;
  creditor_name_enc: string;
  creditor_iban: string;
  currency: string;
  amount: bigint;
  reference: string | null;
  frequency: Frequency | null;
  first_date: string;
  last_date: string | null;
  run_count_max: number | null;
  next_run_on: string | null;
  runs_created: number;
  status: OrderStatus;
  created_at: Date;
  updated_at: Date;
}

const fromRow = (row: Row): StoredOrder => ({
  id: row.id,
  kind: row.kind,
  clientId: row.client_id,
  customerId: row.customer_id,
  consentId: row.consent_id,
  idempotencyScope: row.idempotency_scope,
  idempotencyKey: row.idempotency_key,
  requestHash: row.request_hash,
  debtorAccountId: row.debtor_account_id,
  creditorNameEnc: row.creditor_name_enc,
  creditorIban: row.creditor_iban,
  currency: row.currency,
  amount: row.amount,
  reference: row.reference,
  frequency: row.frequency,
  firstDate: row.first_date,
  lastDate: row.last_date,
  runCountMax: row.run_count_max,
  nextRunOn: row.next_run_on,
  runsCreated: row.runs_created,
  status: row.status,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** False when the caller's idempotency key is taken. */
export async function insertOrder(sql: Sql, o: StoredOrder): Promise<boolean> {
  const rows = await sql.query(
    `insert into payment_orders (id, kind, client_id, customer_id, consent_id, idempotency_scope, idempotency_key,
       request_hash, debtor_account_id, creditor_name_enc, creditor_iban, currency, amount, reference, frequency,
       first_date, last_date, run_count_max, next_run_on, runs_created, status, created_at, updated_at)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::date, $17::date, $18, $19::date,
       $20, $21, $22, $23)
     on conflict (idempotency_scope, idempotency_key) do nothing returning 1`,
    [
      o.id,
      o.kind,
      o.clientId,
      o.customerId,
      o.consentId,
      o.idempotencyScope,
      o.idempotencyKey,
      o.requestHash,
      o.debtorAccountId,
      o.creditorNameEnc,
      o.creditorIban,
      o.currency,
      o.amount,
      o.reference,
      o.frequency,
      o.firstDate,
      o.lastDate,
      o.runCountMax,
      o.nextRunOn,
      o.runsCreated,
      o.status,
      o.createdAt,
      o.updatedAt,
    ],
  );
  return rows.length === 1;
}

export async function findOrder(sql: Sql, id: string, forUpdate = false): Promise<StoredOrder | undefined> {
  const [row] = await sql.query<Row>(
    `select ${COLUMNS} from payment_orders where id = $1${forUpdate ? ' for update' : ''}`,
    [id],
  );
  return row && fromRow(row);
}

export async function findOrderByKey(sql: Sql, scope: string, key: string): Promise<StoredOrder | undefined> {
  const [row] = await sql.query<Row>(
    `select ${COLUMNS} from payment_orders where idempotency_scope = $1 and idempotency_key = $2`,
    [scope, key],
  );
  return row && fromRow(row);
}

export async function listOrders(
  sql: Sql,
  customerId: string,
  afterId: string | undefined,
  limit: number,
): Promise<StoredOrder[]> {
  const rows = await sql.query<Row>(
    `select ${COLUMNS} from payment_orders where customer_id = $1 and id > coalesce($2::uuid, '${UUID_MIN}')
      order by id limit $3`,
    [customerId, afterId ?? null, limit],
  );
  return rows.map(fromRow);
}

/** Active orders with an occurrence due on or before `today`, locked for this scheduler (SKIP LOCKED). */
export async function lockDueOrders(sql: Sql, today: string, limit: number): Promise<StoredOrder[]> {
  const rows = await sql.query<Row>(
    `select ${COLUMNS} from payment_orders where status = 'active' and next_run_on <= $1::date
      order by next_run_on limit $2 for update skip locked`,
    [today, limit],
  );
  return rows.map(fromRow);
}

export async function advanceOrder(
  sql: Sql,
  id: string,
  change: { nextRunOn: string | null; runsCreated: number; status: OrderStatus; at: Date },
): Promise<void> {
  await sql.query(
    'update payment_orders set next_run_on = $2::date, runs_created = $3, status = $4, updated_at = $5 where id = $1',
    [id, change.nextRunOn, change.runsCreated, change.status, change.at],
  );
}

export async function cancelOrder(sql: Sql, id: string, at: Date): Promise<StoredOrder | undefined> {
  const [row] = await sql.query<{ id: string }>(
    `update payment_orders set status = 'cancelled', next_run_on = null, updated_at = $2
      where id = $1 and status = 'active' returning id`,
    [id, at],
  );
  return row && findOrder(sql, row.id);
}

export async function insertRun(sql: Sql, orderId: string, runOn: string, at: Date): Promise<void> {
  await sql.query(
    `insert into payment_order_runs (order_id, run_on, status, created_at, updated_at)
     values ($1, $2::date, 'pending', $3, $3) on conflict do nothing`,
    [orderId, runOn, at],
  );
}

interface RunRow {
  order_id: string;
  run_on: string;
  status: OrderRun['status'];
  payment_id: string | null;
  outcome: string | null;
  updated_at: Date;
}

const runFromRow = (row: RunRow): OrderRun => ({
  orderId: row.order_id,
  runOn: row.run_on,
  status: row.status,
  paymentId: row.payment_id,
  outcome: row.outcome,
  updatedAt: row.updated_at,
});

export async function pendingRuns(sql: Sql, limit: number): Promise<OrderRun[]> {
  const rows = await sql.query<RunRow>(
    `select order_id, run_on::text as run_on, status, payment_id, outcome, updated_at from payment_order_runs
      where status = 'pending' order by created_at, run_on limit $1`,
    [limit],
  );
  return rows.map(runFromRow);
}

export async function finishRun(
  sql: Sql,
  run: {
    orderId: string;
    runOn: string;
    status: 'paid' | 'failed';
    paymentId: string | null;
    outcome: string | null;
    at: Date;
  },
): Promise<boolean> {
  const rows = await sql.query(
    `update payment_order_runs set status = $3, payment_id = $4, outcome = $5, updated_at = $6
      where order_id = $1 and run_on = $2::date and status = 'pending' returning 1`,
    [run.orderId, run.runOn, run.status, run.paymentId, run.outcome, run.at],
  );
  return rows.length === 1;
}

export async function runsOf(sql: Sql, orderId: string): Promise<OrderRun[]> {
  const rows = await sql.query<RunRow>(
    `select order_id, run_on::text as run_on, status, payment_id, outcome, updated_at from payment_order_runs
      where order_id = $1 order by run_on`,
    [orderId],
  );
  return rows.map(runFromRow);
}
