import type { Sql } from '../db/db.ts';

export type PaymentStatus =
  | 'received'
  | 'awaiting_sca'
  | 'accepted'
  | 'settling'
  | 'settled'
  | 'returning'
  | 'rejected'
  | 'returned';
// cross_border: to another bank, in another currency than the debtor's, at an FX quote (src/fx/).
export type PaymentType = 'internal' | 'domestic' | 'cross_border';

export interface StatusChange {
  readonly status: PaymentStatus;
  readonly at: string;
  readonly code?: string;
}

/** A payment's move to `status` at `at`, as its history keeps it; `code` is why, when it has one. */
export const statusChange = (status: PaymentStatus, code: string | null, at: Date): StatusChange => ({
  status,
  at: at.toISOString(),
  ...(code === null ? {} : { code }),
});

export interface StoredPayment {
  readonly id: string;
  readonly clientId: string | null;
  readonly customerId: string;
  readonly consentId: string | null;
  readonly idempotencyScope: string;
  readonly idempotencyKey: string;
  readonly requestHash: string;
  readonly debtorAccountId: string;
  readonly type: PaymentType;
  readonly creditorNameEnc: string;
  readonly creditorIban: string;
  readonly creditorAccountId: string | null;
  readonly currency: string;
  readonly amount: bigint;
  readonly reference: string | null;
  /** The FX quote a payment in another currency converts at: what it debits and credits are the quote's. */
  readonly quoteId: string | null;
  readonly status: PaymentStatus;
  readonly rejectionCode: string | null;
  readonly statusHistory: readonly StatusChange[];
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

interface Row {
  id: string;
  client_id: string | null;
  customer_id: string;
  consent_id: string | null;
  idempotency_scope: string;
  idempotency_key: string;
  request_hash: string;
  debtor_account_id: string;
  type: PaymentType;
  creditor_name_enc: string;
  creditor_iban: string;
  creditor_account_id: string | null;
  currency: string;
  amount: bigint;
  reference: string | null;
  quote_id: string | null;
  status: PaymentStatus;
  rejection_code: string | null;
  status_history: StatusChange[];
  created_at: Date;
  updated_at: Date;
}

const fromRow = (row: Row): StoredPayment => ({
  id: row.id,
  clientId: row.client_id,
  customerId: row.customer_id,
  consentId: row.consent_id,
  idempotencyScope: row.idempotency_scope,
  idempotencyKey: row.idempotency_key,
  requestHash: row.request_hash,
  debtorAccountId: row.debtor_account_id,
  type: row.type,
  creditorNameEnc: row.creditor_name_enc,
  creditorIban: row.creditor_iban,
  creditorAccountId: row.creditor_account_id,
  currency: row.currency,
  amount: row.amount,
  reference: row.reference,
  quoteId: row.quote_id,
  status: row.status,
  rejectionCode: row.rejection_code,
  statusHistory: row.status_history,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** An outbox event written by the same statement as the change it reports (see events/outbox.ts). */
export interface PaymentEvent {
  readonly type: string;
  readonly payload: Readonly<Record<string, unknown>>;
}

// Payments write their events into the outbox in the statement that changes the payment: one round trip
// where a transaction around two statements would take four (measured: bench/payments.ts).

/** A payment to record, with its events: its status changes so far, in order. */
export interface NewPayment {
  readonly payment: StoredPayment;
  readonly events: readonly PaymentEvent[];
}

/**
 * Records payments with their events, each event at the time its payment's history gives, in one statement:
 * a group's payments go as one joint call (src/db/group-commit.ts). Per payment, false when its
 * idempotency key is taken (by this request, another, or an earlier payment of the same call).
 */
export async function insertPayments(sql: Sql, items: readonly NewPayment[]): Promise<boolean[]> {
  const rows = await sql.query<{ id: string }>(
    `with r as (
       select * from jsonb_to_recordset($1::text::jsonb) as r(o int, id uuid, client_id uuid, customer_id uuid,
         consent_id uuid, idempotency_scope text, idempotency_key text, request_hash text, debtor_account_id uuid,
         type text, creditor_name_enc text, creditor_iban text, creditor_account_id uuid, currency text,
         amount bigint, reference text, status text, rejection_code text, status_history jsonb,
         created_at timestamptz, updated_at timestamptz, quote_id uuid, events jsonb)),
     inserted as (
       insert into payments (id, client_id, customer_id, consent_id, idempotency_scope, idempotency_key, request_hash,
         debtor_account_id, type, creditor_name_enc, creditor_iban, creditor_account_id, currency, amount, reference,
         status, rejection_code, status_history, created_at, updated_at, quote_id)
       select id, client_id, customer_id, consent_id, idempotency_scope, idempotency_key, request_hash,
              debtor_account_id, type, creditor_name_enc, creditor_iban, creditor_account_id, currency, amount,
              reference, status, rejection_code, status_history, created_at, updated_at, quote_id
         from r order by o
       on conflict (idempotency_scope, idempotency_key) do nothing returning id),
     evented as (
       insert into outbox_events (type, subject_id, payload, created_at)
       select e.event->>'type', r.id::text, e.event->'payload', (e.event->>'at')::timestamptz
         from r join inserted using (id), jsonb_array_elements(r.events) with ordinality as e(event, eo)
        order by r.o, e.eo)
     select id from inserted`,
    [
      JSON.stringify(
        items.map(({ payment: p, events }, o) => ({
          o,
          id: p.id,
          client_id: p.clientId,
          customer_id: p.customerId,
          consent_id: p.consentId,
          idempotency_scope: p.idempotencyScope,
          idempotency_key: p.idempotencyKey,
          request_hash: p.requestHash,
          debtor_account_id: p.debtorAccountId,
          type: p.type,
          creditor_name_enc: p.creditorNameEnc,
          creditor_iban: p.creditorIban,
          creditor_account_id: p.creditorAccountId,
          currency: p.currency,
          amount: p.amount.toString(),
          reference: p.reference,
          status: p.status,
          rejection_code: p.rejectionCode,
          status_history: p.statusHistory,
          created_at: p.createdAt,
          updated_at: p.updatedAt,
          quote_id: p.quoteId,
          events: events.map(({ type, payload }, i) => ({
            type,
            payload,
            at: p.statusHistory[i]?.at ?? p.updatedAt.toISOString(),
          })),
        })),
      ),
    ],
  );
  const inserted = new Set(rows.map((row) => row.id));
  return items.map(({ payment }) => inserted.has(payment.id));
}

/** A payee the customer paid from one account: the latest payment to it, and the first one's id. */
export interface StoredPayee {
  readonly firstPaymentId: string;
  readonly latest: StoredPayment;
}

/**
 * The distinct payees (debtor account, creditor IBAN) of the customer's payments that left `accountIds`
 * (accepted, settling or settled), in (account, IBAN) order after `after`, at most `limit`. Mandate charges
 * are left out: the merchant takes them, the customer did not choose to pay that payee (idempotencyScopeOf).
 * One index range of the customer's payments (payments_customer).
 */
export async function listPayees(
  sql: Sql,
  customerId: string,
  accountIds: readonly string[],
  after: { accountId: string; iban: string } | undefined,
  limit: number,
): Promise<StoredPayee[]> {
  const rows = await sql.query<Row & { first_payment_id: string }>(
    `select * from (
       select distinct on (debtor_account_id, creditor_iban) *,
              first_value(id) over (partition by debtor_account_id, creditor_iban order by id) as first_payment_id
         from payments
        where customer_id = $1 and debtor_account_id = any($2::uuid[])
          and status in ('accepted', 'settling', 'settled') and idempotency_scope not like 'mandate:%'
        order by debtor_account_id, creditor_iban, id desc) payees
      where $3::uuid is null or (debtor_account_id, creditor_iban) > ($3::uuid, $4::text)
      order by debtor_account_id, creditor_iban
      limit $5`,
    [customerId, accountIds, after?.accountId ?? null, after?.iban ?? null, limit],
  );
  return rows.map((row) => ({ firstPaymentId: row.first_payment_id, latest: fromRow(row) }));
}

export async function findPayment(sql: Sql, id: string): Promise<StoredPayment | undefined> {
  const [row] = await sql.query<Row>('select * from payments where id = $1', [id]);
  return row && fromRow(row);
}

export async function findPaymentByKey(
  sql: Sql,
  scope: string,
  key: string,
): Promise<StoredPayment | undefined> {
  const [row] = await sql.query<Row>(
    'select * from payments where idempotency_scope = $1 and idempotency_key = $2',
    [scope, key],
  );
  return row && fromRow(row);
}

/** Moves a payment on from one of `from`, appending to its history; undefined when it was elsewhere. */
export async function transitionPayment(
  sql: Sql,
  id: string,
  from: readonly PaymentStatus[],
  to: PaymentStatus,
  code: string | null,
  at: Date,
  event: PaymentEvent,
): Promise<StoredPayment | undefined> {
  const change = statusChange(to, code, at);
  const [row] = await sql.query<Row>(
    `with moved as (
       update payments set status = $3, updated_at = $5,
              -- A reason stays while the payment is refused or going back; a payment that goes on (a held
              -- one confirmed, a return that failed) sheds the reason it was held or returned for.
              rejection_code = case when $4::text is not null then $4
                                    when $3 in ('rejected', 'returning', 'returned') then rejection_code end,
              status_history = status_history || $6::text::jsonb
        where id = $1 and status = any($2::text::text[]) returning *),
     event as (
       insert into outbox_events (type, subject_id, payload, created_at)
       select $7, id::text, $8::text::jsonb, $5 from moved)
     select * from moved`,
    [
      id,
      `{${from.join(',')}}`,
      to,
      code,
      at,
      JSON.stringify([change]),
      event.type,
      JSON.stringify(event.payload),
    ],
  );
  return row && fromRow(row);
}

/** The statuses a payment only passes through; the recovery sweep finishes those that stay too long. */
export type PassingStatus = 'received' | 'awaiting_sca' | 'returning';

/** Payments in `status` created before `before`, oldest first. */
export async function listPayments(
  sql: Sql,
  status: PassingStatus,
  before: Date,
  limit: number,
): Promise<StoredPayment[]> {
  // One statement per status, the status written in it: a partial index per status serves each (see
  // migrations 0012 and 0025), where a status given as a parameter would be a scan of every payment.
  const rows = await sql.query<Row>(
    `select * from payments where status = '${status}' and created_at < $1 order by created_at limit $2`,
    [before, limit],
  );
  return rows.map(fromRow);
}

/**
 * Claims up to `limit` outbound payments for one settlement cycle, in one statement: accepted ones, and
 * ones a cycle claimed before `staleBefore` and never finished (its process died). SKIP LOCKED keeps two
 * cycles from claiming the same payment.
 */
export async function claimForSettlement(
  sql: Sql,
  at: Date,
  staleBefore: Date,
  limit: number,
): Promise<StoredPayment[]> {
  const change: StatusChange = { status: 'settling', at: at.toISOString() };
  const rows = await sql.query<Row>(
    `update payments set status = 'settling', updated_at = $1, status_history = status_history || $2::text::jsonb
      where id in (select id from payments
                    where type in ('domestic', 'cross_border')
                      and (status = 'accepted' or (status = 'settling' and updated_at < $3))
                    order by created_at limit $4 for update skip locked)
      returning *`,
    [at, JSON.stringify([change]), staleBefore, limit],
  );
  return rows.map(fromRow);
}
