import { arrayLiteral, type Sql, UUID_MAX } from '../db/db.ts';
import type { PayoutFormat } from './files.ts';
import type { LineError } from './lines.ts';

export type BatchStatus =
  | 'invalid'
  | 'awaiting_approval'
  | 'approved'
  | 'executing'
  | 'completed'
  | 'failed'
  | 'cancelled';
export type ItemStatus = 'pending' | 'credited' | 'accepted' | 'settled' | 'failed' | 'cancelled';

export interface StoredBatch {
  readonly id: string;
  readonly customerId: string;
  readonly debtorAccountId: string;
  readonly currency: string;
  readonly format: PayoutFormat;
  readonly contentSha256: string;
  readonly idempotencyKey: string | null;
  readonly messageId: string | null;
  readonly status: BatchStatus;
  readonly failureCode: string | null;
  readonly itemCount: number;
  readonly totalAmount: bigint;
  readonly validationErrors: readonly LineError[];
  readonly validationErrorCount: number;
  readonly uploadedBy: string;
  readonly approvedBy: string | null;
  readonly cancelledBy: string | null;
  readonly fundingAmount: bigint | null;
  readonly fundedAt: Date | null;
  readonly refundedAmount: bigint | null;
  readonly leaseUntil: Date | null;
  readonly unsettledAmount: bigint;
  readonly createdAt: Date;
  readonly approvedAt: Date | null;
  readonly startedAt: Date | null;
  readonly completedAt: Date | null;
  readonly settledAt: Date | null;
}

interface BatchRow {
  id: string;
  customer_id: string;
  debtor_account_id: string;
  currency: string;
  format: PayoutFormat;
  content_sha256: string;
  idempotency_key: string | null;
  message_id: string | null;
  status: BatchStatus;
  failure_code: string | null;
  item_count: number;
  total_amount: bigint;
  validation_errors: { count: number; errors: LineError[] };
  uploaded_by: string;
  approved_by: string | null;
  cancelled_by: string | null;
  funding_amount: bigint | null;
  funded_at: Date | null;
  refunded_amount: bigint | null;
  lease_until: Date | null;
  unsettled_amount: bigint;
  created_at: Date;
  approved_at: Date | null;
  started_at: Date | null;
  completed_at: Date | null;
  settled_at: Date | null;
}

const batchFromRow = (row: BatchRow): StoredBatch => ({
  id: row.id,
  customerId: row.customer_id,
  debtorAccountId: row.debtor_account_id,
  currency: row.currency,
  format: row.format,
  contentSha256: row.content_sha256,
  idempotencyKey: row.idempotency_key,
  messageId: row.message_id,
  status: row.status,
  failureCode: row.failure_code,
  itemCount: row.item_count,
  totalAmount: row.total_amount,
  validationErrors: row.validation_errors.errors,
  validationErrorCount: row.validation_errors.count,
  uploadedBy: row.uploaded_by,
  approvedBy: row.approved_by,
  cancelledBy: row.cancelled_by,
  fundingAmount: row.funding_amount,
  fundedAt: row.funded_at,
  refundedAmount: row.refunded_amount,
  leaseUntil: row.lease_until,
  unsettledAmount: row.unsettled_amount,
  createdAt: row.created_at,
  approvedAt: row.approved_at,
  startedAt: row.started_at,
  completedAt: row.completed_at,
  settledAt: row.settled_at,
});

export interface StoredItem {
  readonly id: string;
  readonly batchId: string;
  readonly customerId: string;
  readonly line: number;
  readonly creditorNameEnc: string;
  readonly creditorIban: string;
  readonly creditorAccountId: string | null;
  readonly amount: bigint;
  readonly reference: string | null;
  readonly endToEndId: string | null;
  readonly status: ItemStatus;
  readonly failureCode: string | null;
}

interface ItemRow {
  id: string;
  batch_id: string;
  customer_id: string;
  line: number;
  creditor_name_enc: string;
  creditor_iban: string;
  creditor_account_id: string | null;
  amount: bigint;
  reference: string | null;
  end_to_end_id: string | null;
  status: ItemStatus;
  failure_code: string | null;
}

const itemFromRow = (row: ItemRow): StoredItem => ({
  id: row.id,
  batchId: row.batch_id,
  customerId: row.customer_id,
  line: row.line,
  creditorNameEnc: row.creditor_name_enc,
  creditorIban: row.creditor_iban,
  creditorAccountId: row.creditor_account_id,
  amount: row.amount,
  reference: row.reference,
  endToEndId: row.end_to_end_id,
  status: row.status,
  failureCode: row.failure_code,
});

/** An outbox event written by the same statement as the change it reports (see events/outbox.ts). */
export interface PayoutEvent {
  readonly type: string;
  readonly payload: Readonly<Record<string, unknown>>;
}

// Rows travel as one JSON parameter and are unpacked by jsonb_to_recordset: a whole chunk of items in one
// statement, with the same text on both drivers. Amounts are strings in the JSON (it has no int64).
const ITEMS_PER_STATEMENT = 2000;

/** False when the customer's Idempotency-Key, or a live batch of the same file, is already there. */
export async function insertBatch(sql: Sql, batch: StoredBatch, event: PayoutEvent): Promise<boolean> {
  const rows = await sql.query(
    `with inserted as (
       insert into payout_batches (id, customer_id, debtor_account_id, currency, format, content_sha256,
         idempotency_key, message_id, status, item_count, total_amount, validation_errors, uploaded_by,
         created_at, updated_at)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::text::jsonb, $13, $14, $14)
       on conflict do nothing returning id)
     insert into outbox_events (type, subject_id, payload, created_at)
       select $15, id::text, $16::text::jsonb, $14 from inserted returning 1`,
    [
      batch.id,
      batch.customerId,
      batch.debtorAccountId,
      batch.currency,
      batch.format,
      batch.contentSha256,
      batch.idempotencyKey,
      batch.messageId,
      batch.status,
      batch.itemCount,
      batch.totalAmount,
      JSON.stringify({ count: batch.validationErrorCount, errors: batch.validationErrors }),
      batch.uploadedBy,
      batch.createdAt,
      event.type,
      JSON.stringify(event.payload),
    ],
  );
  return rows.length === 1;
}

export async function insertItems(sql: Sql, items: readonly StoredItem[], at: Date): Promise<void> {
  for (let start = 0; start < items.length; start += ITEMS_PER_STATEMENT) {
    const chunk = items.slice(start, start + ITEMS_PER_STATEMENT).map((item) => ({
      id: item.id,
      batch_id: item.batchId,
      customer_id: item.customerId,
      line: item.line,
      creditor_name_enc: item.creditorNameEnc,
      creditor_iban: item.creditorIban,
      creditor_account_id: item.creditorAccountId,
      amount: item.amount.toString(),
      reference: item.reference,
      end_to_end_id: item.endToEndId,
    }));
    await sql.query(
      `insert into payout_items (id, batch_id, customer_id, line, creditor_name_enc, creditor_iban,
         creditor_account_id, amount, reference, end_to_end_id, status, updated_at)
       select r.id, r.batch_id, r.customer_id, r.line, r.creditor_name_enc, r.creditor_iban, r.creditor_account_id,
              r.amount::bigint, r.reference, r.end_to_end_id, 'pending', $2
         from jsonb_to_recordset($1::text::jsonb) as r(id uuid, batch_id uuid, customer_id uuid, line int,
              creditor_name_enc text, creditor_iban text, creditor_account_id uuid, amount text, reference text,
              end_to_end_id text)`,
      [JSON.stringify(chunk), at],
    );
  }
}

export async function findBatch(sql: Sql, id: string): Promise<StoredBatch | undefined> {
  const [row] = await sql.query<BatchRow>('select * from payout_batches where id = $1', [id]);
  return row && batchFromRow(row);
}

export async function findBatchByKey(
  sql: Sql,
  customerId: string,
  key: string,
): Promise<StoredBatch | undefined> {
  const [row] = await sql.query<BatchRow>(
    'select * from payout_batches where customer_id = $1 and idempotency_key = $2',
    [customerId, key],
  );
  return row && batchFromRow(row);
}

/** The customer's live batch (one that may move or has moved money) of this file from this account. */
export async function findLiveBatchOfFile(
  sql: Sql,
  customerId: string,
  debtorAccountId: string,
  contentSha256: string,
): Promise<StoredBatch | undefined> {
  const [row] = await sql.query<BatchRow>(
    `select * from payout_batches where customer_id = $1 and debtor_account_id = $2 and content_sha256 = $3
        and status not in ('invalid', 'failed', 'cancelled')`,
    [customerId, debtorAccountId, contentSha256],
  );
  return row && batchFromRow(row);
}

/** The customer's batches, newest first, older than `beforeId` when given. */
export async function listBatches(
  sql: Sql,
  customerId: string,
  beforeId: string | undefined,
  limit: number,
): Promise<StoredBatch[]> {
  const rows = await sql.query<BatchRow>(
    `select * from payout_batches where customer_id = $1 and id < coalesce($2::uuid, '${UUID_MAX}')
      order by id desc limit $3`,
    [customerId, beforeId ?? null, limit],
  );
  return rows.map(batchFromRow);
}

/** How many of each batch's items are in each status. */
export async function itemCounts(
  sql: Sql,
  batchIds: readonly string[],
): Promise<Map<string, Partial<Record<ItemStatus, number>>>> {
  const counts = new Map<string, Partial<Record<ItemStatus, number>>>();
  if (batchIds.length === 0) return counts;
  const rows = await sql.query<{ batch_id: string; status: ItemStatus; n: number }>(
    `select batch_id, status, count(*)::int as n from payout_items where batch_id = any($1::text::uuid[])
      group by batch_id, status`,
    [arrayLiteral(batchIds)],
  );
  for (const row of rows) counts.set(row.batch_id, { ...counts.get(row.batch_id), [row.status]: row.n });
  return counts;
}

/** Items in file order after line `afterLine`; `status` narrows them (the executor reads the pending ones). */
export async function listItems(
  sql: Sql,
  batchId: string,
  afterLine: number,
  limit: number,
  status?: ItemStatus,
): Promise<StoredItem[]> {
  const rows = await sql.query<ItemRow>(
    `select * from payout_items where batch_id = $1 and line > $2 and ($3::text is null or status = $3)
      order by line limit $4`,
    [batchId, afterLine, status ?? null, limit],
  );
  return rows.map(itemFromRow);
}

/**
 * The batch's next pending items, in line order: the status written in the statement, so its partial index
 * (0016) serves it. Through `listItems`, with the status a parameter, each call of the credit loop read the
 * batch's finished lines again to pass them.
 */
export async function pendingItems(sql: Sql, batchId: string, limit: number): Promise<StoredItem[]> {
  const rows = await sql.query<ItemRow>(
    `select * from payout_items where batch_id = $1 and status = 'pending' order by line limit $2`,
    [batchId, limit],
  );
  return rows.map(itemFromRow);
}

/** The total of the batch's items in these statuses. */
export async function itemsTotal(
  sql: Sql,
  batchId: string,
  statuses: readonly ItemStatus[],
): Promise<bigint> {
  const [row] = await sql.query<{ total: bigint }>(
    `select coalesce(sum(amount), 0)::bigint as total from payout_items
      where batch_id = $1 and status = any($2::text::text[])`,
    [batchId, arrayLiteral(statuses)],
  );
  return row?.total ?? 0n;
}

export interface ItemChange {
  readonly id: string;
  readonly status: Exclude<ItemStatus, 'pending'>;
  readonly failureCode: string | null;
}

/**
 * Moves items on from `from`, each with an outbox event (`payout.item.<status>`), in one statement per chunk.
 * Items already moved (by a run that died after recording them) are left as they are.
 */
export async function moveItems(
  sql: Sql,
  batchId: string,
  from: ItemStatus,
  changes: readonly ItemChange[],
  at: Date,
): Promise<number> {
  let moved = 0;
  for (let start = 0; start < changes.length; start += ITEMS_PER_STATEMENT) {
    const chunk = changes.slice(start, start + ITEMS_PER_STATEMENT).map((change) => ({
      id: change.id,
      status: change.status,
      failure_code: change.failureCode,
    }));
    const rows = await sql.query<{ n: number }>(
      `with moved as (
         update payout_items i set status = c.status, failure_code = c.failure_code, updated_at = $4
           from jsonb_to_recordset($3::text::jsonb) as c(id uuid, status text, failure_code text)
          where i.id = c.id and i.batch_id = $1 and i.status = $2
          returning i.id, i.batch_id, i.customer_id, i.line, i.status, i.failure_code),
       events as (
         insert into outbox_events (type, subject_id, payload, created_at)
         select 'payout.item.' || status, id::text,
                jsonb_strip_nulls(jsonb_build_object('batchId', batch_id, 'itemId', id, 'customerId', customer_id,
                  'line', line, 'status', status, 'code', failure_code)), $4
           from moved)
       select count(*)::int as n from moved`,
      [batchId, from, JSON.stringify(chunk), at],
    );
    moved += rows[0]?.n ?? 0;
  }
  return moved;
}

/**
 * Moves a batch on from one of `from`, with an outbox event, in one statement; undefined when it was
 * elsewhere. `set` names further columns to write (a fixed set, never caller text).
 */
export async function transitionBatch(
  sql: Sql,
  id: string,
  from: readonly BatchStatus[],
  to: BatchStatus,
  at: Date,
  event: PayoutEvent,
  set: Partial<{
    approvedBy: string;
    cancelledBy: string;
    failureCode: string;
    refundedAmount: bigint;
    unsettledAmount: bigint;
  }> = {},
  condition: { notUploadedBy?: string } = {},
): Promise<StoredBatch | undefined> {
  const [row] = await sql.query<BatchRow>(
    `with moved as (
       update payout_batches set status = $3, updated_at = $4,
              approved_by = coalesce($7, approved_by), approved_at = case when $7::uuid is null then approved_at else $4 end,
              cancelled_by = coalesce($8, cancelled_by), failure_code = coalesce($9, failure_code),
              refunded_amount = coalesce($10, refunded_amount), unsettled_amount = coalesce($11, unsettled_amount),
              completed_at = case when $3 in ('completed', 'failed') then $4 else completed_at end,
              lease_until = case when $3 = 'executing' then lease_until else null end
        where id = $1 and status = any($2::text::text[]) and ($12::uuid is null or uploaded_by <> $12)
        returning *),
     event as (
       insert into outbox_events (type, subject_id, payload, created_at)
       select $5, id::text, $6::text::jsonb, $4 from moved)
     select * from moved`,
    [
      id,
      arrayLiteral(from),
      to,
      at,
      event.type,
      JSON.stringify(event.payload),
      set.approvedBy ?? null,
      set.cancelledBy ?? null,
      set.failureCode ?? null,
      set.refundedAmount ?? null,
      set.unsettledAmount ?? null,
      condition.notUploadedBy ?? null,
    ],
  );
  return row && batchFromRow(row);
}

/**
 * Claims one batch to execute, in one statement: an approved one, or one whose executor's lease lapsed (its
 * process died mid-run). SKIP LOCKED keeps two executors off the same batch; the lease keeps a second one
 * off it while the first still works. Taking over an approved batch is a state change, with its event.
 */
export async function claimBatch(
  sql: Sql,
  at: Date,
  leaseUntil: Date,
): Promise<{ batch: StoredBatch; resumed: boolean } | undefined> {
  const [row] = await sql.query<BatchRow & { previous_status: BatchStatus }>(
    `with claimed as (
       update payout_batches b set status = 'executing', lease_until = $2, started_at = coalesce(b.started_at, $1),
              updated_at = $1
         from (select id, status from payout_batches
                where status = 'approved' or (status = 'executing' and lease_until < $1)
                order by approved_at limit 1 for update skip locked) due
        where b.id = due.id
        returning b.*, due.status as previous_status),
     event as (
       insert into outbox_events (type, subject_id, payload, created_at)
       select 'payout.batch.executing', id::text,
              jsonb_build_object('batchId', id, 'customerId', customer_id, 'status', 'executing'), $1
         from claimed where previous_status = 'approved')
     select * from claimed`,
    [at, leaseUntil],
  );
  return row && { batch: batchFromRow(row), resumed: row.previous_status === 'executing' };
}

/** Extends the executor's lease; false when the batch is no longer its to run. */
export async function renewLease(sql: Sql, id: string, leaseUntil: Date): Promise<boolean> {
  const rows = await sql.query(
    `update payout_batches set lease_until = $2 where id = $1 and status = 'executing' returning 1`,
    [id, leaseUntil],
  );
  return rows.length === 1;
}

/** Records what the payer will be debited, once: a run that finds it decided keeps the first decision. */
export async function decideFunding(sql: Sql, id: string, amount: bigint, at: Date): Promise<bigint> {
  await sql.query(
    'update payout_batches set funding_amount = $2, updated_at = $3 where id = $1 and funding_amount is null',
    [id, amount, at],
  );
  const [row] = await sql.query<{ funding_amount: bigint }>(
    'select funding_amount from payout_batches where id = $1',
    [id],
  );
  if (row?.funding_amount == null) throw new Error(`payout batch ${id} has no funding amount`);
  return row.funding_amount;
}

export async function markFunded(sql: Sql, id: string, at: Date): Promise<void> {
  await sql.query(
    'update payout_batches set funded_at = coalesce(funded_at, $2), updated_at = $2 where id = $1',
    [id, at],
  );
}

/**
 * Claims up to `limit` completed batches whose payments to other banks are still in clearing, for one
 * settlement cycle: unclaimed ones, and ones a cycle claimed before `staleBefore` and never finished.
 */
export async function claimUnsettled(
  sql: Sql,
  at: Date,
  staleBefore: Date,
  limit: number,
): Promise<StoredBatch[]> {
  const rows = await sql.query<BatchRow>(
    `update payout_batches set settling_since = $1
      where id in (select id from payout_batches
                    where unsettled_amount > 0 and (settling_since is null or settling_since < $2)
                    order by completed_at limit $3 for update skip locked)
      returning *`,
    [at, staleBefore, limit],
  );
  return rows.map(batchFromRow);
}

/** Ends a settlement claim: settled (the money left clearing) or deferred to the next cycle. */
export async function finishSettlement(sql: Sql, id: string, settled: boolean, at: Date): Promise<void> {
  await sql.query(
    settled
      ? `update payout_batches set unsettled_amount = 0, settling_since = null, settled_at = $2, updated_at = $2
          where id = $1`
      : 'update payout_batches set settling_since = null where id = $1',
    [id, at],
  );
}
