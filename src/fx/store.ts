import type { Sql } from '../db/db.ts';
import type { OutboxEvent } from '../events/outbox.ts';

export interface StoredQuote {
  readonly id: string;
  readonly clientId: string | null;
  readonly customerId: string | null;
  readonly sellCurrency: string;
  readonly buyCurrency: string;
  readonly sellAmount: bigint;
  readonly buyAmount: bigint;
  readonly feeAmount: bigint;
  readonly fixedSide: 'sell' | 'buy';
  readonly midRate: string;
  readonly rate: string;
  readonly spreadBps: number;
  readonly feeBps: number;
  readonly rateSource: string;
  readonly ratesAsOf: Date;
  readonly status: 'open' | 'used';
  readonly usedBy: string | null;
  readonly expiresAt: Date;
  readonly createdAt: Date;
  readonly usedAt: Date | null;
}

interface QuoteRow {
  id: string;
  client_id: string | null;
  customer_id: string | null;
  sell_currency: string;
  buy_currency: string;
  sell_amount: bigint;
  buy_amount: bigint;
  fee_amount: bigint;
  fixed_side: 'sell' | 'buy';
  mid_rate: string;
  rate: string;
  spread_bps: number;
  fee_bps: number;
  rate_source: string;
  rates_as_of: Date;
  status: 'open' | 'used';
  used_by: string | null;
  expires_at: Date;
  created_at: Date;
  used_at: Date | null;
}

const quoteFromRow = (row: QuoteRow): StoredQuote => ({
  id: row.id,
  clientId: row.client_id,
  customerId: row.customer_id,
  sellCurrency: row.sell_currency,
  buyCurrency: row.buy_currency,
  sellAmount: row.sell_amount,
  buyAmount: row.buy_amount,
  feeAmount: row.fee_amount,
  fixedSide: row.fixed_side,
  midRate: row.mid_rate,
  rate: row.rate,
  spreadBps: row.spread_bps,
  feeBps: row.fee_bps,
  rateSource: row.rate_source,
  ratesAsOf: row.rates_as_of,
  status: row.status,
  usedBy: row.used_by,
  expiresAt: row.expires_at,
  createdAt: row.created_at,
  usedAt: row.used_at,
});

/** Inserts the quote and its event in one statement. */
export async function insertQuote(sql: Sql, q: StoredQuote, event: OutboxEvent): Promise<void> {
  await sql.query(
    `with inserted as (
       insert into fx_quotes (id, client_id, customer_id, sell_currency, buy_currency, sell_amount, buy_amount,
         fee_amount, fixed_side, mid_rate, rate, spread_bps, fee_bps, rate_source, rates_as_of, status, used_by,
         expires_at, created_at, used_at)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
       returning id)
     insert into outbox_events (type, subject_id, payload, created_at)
       select $21, $22, $23::text::jsonb, $19 from inserted`,
    [
      q.id,
      q.clientId,
      q.customerId,
      q.sellCurrency,
      q.buyCurrency,
      q.sellAmount,
      q.buyAmount,
      q.feeAmount,
      q.fixedSide,
      q.midRate,
      q.rate,
      q.spreadBps,
      q.feeBps,
      q.rateSource,
      q.ratesAsOf,
      q.status,
      q.usedBy,
      q.expiresAt,
      q.createdAt,
      q.usedAt,
      event.type,
      event.subjectId,
      JSON.stringify(event.payload),
    ],
  );
}

export async function findQuote(sql: Sql, id: string): Promise<StoredQuote | undefined> {
  const [row] = await sql.query<QuoteRow>('select * from fx_quotes where id = $1', [id]);
  return row && quoteFromRow(row);
}

export async function findQuotes(sql: Sql, ids: readonly string[]): Promise<StoredQuote[]> {
  if (ids.length === 0) return [];
  const rows = await sql.query<QuoteRow>('select * from fx_quotes where id = any($1::text::uuid[])', [
    `{${ids.join(',')}}`,
  ]);
  return rows.map(quoteFromRow);
}

/**
 * Marks an open, unexpired quote used by `usedBy`, with its event, in one statement: of two payments racing
 * for one quote, one wins. Undefined when the quote was not open or had expired at `at`.
 */
export async function useQuote(
  sql: Sql,
  id: string,
  usedBy: string,
  at: Date,
  event: Omit<OutboxEvent, 'subjectId'>,
): Promise<StoredQuote | undefined> {
  const [row] = await sql.query<QuoteRow>(
    `with used as (
       update fx_quotes set status = 'used', used_by = $2, used_at = $3
        where id = $1 and status = 'open' and expires_at > $3 returning *),
     event as (
       insert into outbox_events (type, subject_id, payload, created_at)
       select $4, id::text, $5::text::jsonb, $3 from used)
     select * from used`,
    [id, usedBy, at, event.type, JSON.stringify(event.payload)],
  );
  return row && quoteFromRow(row);
}

/** Deletes up to `limit` quotes nobody used that expired before `before`; returns how many. */
export async function pruneQuotes(sql: Sql, before: Date, limit: number): Promise<number> {
  const rows = await sql.query(
    `delete from fx_quotes where id in (
       select id from fx_quotes where status = 'open' and expires_at < $1 limit $2) returning 1`,
    [before, limit],
  );
  return rows.length;
}

export type ConversionStatus = 'received' | 'completed' | 'rejected';

export interface StoredConversion {
  readonly id: string;
  readonly customerId: string;
  readonly idempotencyScope: string;
  readonly idempotencyKey: string;
  readonly requestHash: string;
  readonly fromAccountId: string;
  readonly toAccountId: string;
  readonly quoteId: string;
  readonly status: ConversionStatus;
  readonly rejectionCode: string | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

interface ConversionRow {
  id: string;
  customer_id: string;
  idempotency_scope: string;
  idempotency_key: string;
  request_hash: string;
  from_account_id: string;
  to_account_id: string;
  quote_id: string;
  status: ConversionStatus;
  rejection_code: string | null;
  created_at: Date;
  updated_at: Date;
}

const conversionFromRow = (row: ConversionRow): StoredConversion => ({
  id: row.id,
  customerId: row.customer_id,
  idempotencyScope: row.idempotency_scope,
  idempotencyKey: row.idempotency_key,
  requestHash: row.request_hash,
  fromAccountId: row.from_account_id,
  toAccountId: row.to_account_id,
  quoteId: row.quote_id,
  status: row.status,
  rejectionCode: row.rejection_code,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** False when the caller's idempotency key is taken (by this request or a twin). */
export async function insertConversion(sql: Sql, c: StoredConversion, event: OutboxEvent): Promise<boolean> {
  const rows = await sql.query(
    `with inserted as (
       insert into fx_conversions (id, customer_id, idempotency_scope, idempotency_key, request_hash,
         from_account_id, to_account_id, quote_id, status, rejection_code, created_at, updated_at)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
       on conflict (idempotency_scope, idempotency_key) do nothing returning id)
     insert into outbox_events (type, subject_id, payload, created_at)
       select $13, id::text, $14::text::jsonb, $11 from inserted returning 1`,
    [
      c.id,
      c.customerId,
      c.idempotencyScope,
      c.idempotencyKey,
      c.requestHash,
      c.fromAccountId,
      c.toAccountId,
      c.quoteId,
      c.status,
      c.rejectionCode,
      c.createdAt,
      c.updatedAt,
      event.type,
      JSON.stringify(event.payload),
    ],
  );
  return rows.length === 1;
}

export async function findConversion(sql: Sql, id: string): Promise<StoredConversion | undefined> {
  const [row] = await sql.query<ConversionRow>('select * from fx_conversions where id = $1', [id]);
  return row && conversionFromRow(row);
}

export async function findConversionByKey(
  sql: Sql,
  scope: string,
  key: string,
): Promise<StoredConversion | undefined> {
  const [row] = await sql.query<ConversionRow>(
    'select * from fx_conversions where idempotency_scope = $1 and idempotency_key = $2',
    [scope, key],
  );
  return row && conversionFromRow(row);
}

/** Moves a received conversion to its outcome, with its event; undefined when another worker did first. */
export async function finishConversion(
  sql: Sql,
  id: string,
  status: 'completed' | 'rejected',
  code: string | null,
  at: Date,
  event: Omit<OutboxEvent, 'subjectId'>,
): Promise<StoredConversion | undefined> {
  const [row] = await sql.query<ConversionRow>(
    `with moved as (
       update fx_conversions set status = $2, rejection_code = $3, updated_at = $4
        where id = $1 and status = 'received' returning *),
     event as (
       insert into outbox_events (type, subject_id, payload, created_at)
       select $5, id::text, $6::text::jsonb, $4 from moved)
     select * from moved`,
    [id, status, code, at, event.type, JSON.stringify(event.payload)],
  );
  return row && conversionFromRow(row);
}

/** Conversions still `received` that were recorded before `before` (their process died mid-way). */
export async function staleConversions(sql: Sql, before: Date, limit: number): Promise<StoredConversion[]> {
  const rows = await sql.query<ConversionRow>(
    `select * from fx_conversions where status = 'received' and created_at < $1 order by created_at limit $2`,
    [before, limit],
  );
  return rows.map(conversionFromRow);
}

export interface StoredMessage {
  readonly id: string;
  readonly messageId: string;
  readonly uetr: string;
  readonly xmlEnc: string;
  readonly createdAt: Date;
}

/** Records a payment's message once (a second call for the same payment keeps the first); with its event. */
export async function insertMessage(sql: Sql, m: StoredMessage, event: OutboxEvent): Promise<void> {
  await sql.query(
    `with inserted as (
       insert into fx_payment_messages (id, message_id, uetr, xml_enc, created_at)
       values ($1, $2, $3, $4, $5) on conflict (id) do nothing returning id)
     insert into outbox_events (type, subject_id, payload, created_at)
       select $6, $7, $8::text::jsonb, $5 from inserted`,
    [
      m.id,
      m.messageId,
      m.uetr,
      m.xmlEnc,
      m.createdAt,
      event.type,
      event.subjectId,
      JSON.stringify(event.payload),
    ],
  );
}

export async function findMessage(sql: Sql, id: string): Promise<StoredMessage | undefined> {
  const [row] = await sql.query<{
    id: string;
    message_id: string;
    uetr: string;
    xml_enc: string;
    created_at: Date;
  }>('select * from fx_payment_messages where id = $1', [id]);
  return (
    row && {
      id: row.id,
      messageId: row.message_id,
      uetr: row.uetr,
      xmlEnc: row.xml_enc,
      createdAt: row.created_at,
    }
  );
}
