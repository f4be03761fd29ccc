import { arrayLiteral, type Sql, UUID_MIN } from '../db/db.ts';
import type { OutboxEvent } from '../events/outbox.ts';

export type ConsentType = 'account_information' | 'payment_initiation' | 'funds_confirmation' | 'mandate';
export type ConsentStatus =
  | 'awaiting_authorisation'
  | 'authorised'
  | 'rejected'
  | 'revoked'
  | 'expired'
  | 'consumed';

export interface Consent {
  readonly id: string;
  readonly clientId: string;
  readonly customerId: string | null;
  readonly type: ConsentType;
  readonly status: ConsentStatus;
  readonly details: Record<string, unknown>;
  /** The terms as stored: sealed (consents/service.ts opens them into `details`), or null for older rows. */
  readonly detailsEnc?: string | null;
  readonly grantId: string | null;
  /** The accounts the customer chose on the consent page (null until authorised, and for plain scopes). */
  readonly accountIds: readonly string[] | null;
  readonly expiresAt: Date;
  readonly createdAt: Date;
  readonly statusUpdatedAt: Date;
}

interface Row {
  id: string;
  client_id: string;
  customer_id: string | null;
  type: ConsentType;
  status: ConsentStatus;
  details: Record<string, unknown>;
  details_enc: string | null;
  grant_id: string | null;
  account_ids: string[] | null;
  expires_at: Date;
  created_at: Date;
  status_updated_at: Date;
}

const fromRow = (row: Row): Consent => ({
  id: row.id,
  clientId: row.client_id,
  customerId: row.customer_id,
  type: row.type,
  status: row.status,
  details: row.details,
  detailsEnc: row.details_enc,
  grantId: row.grant_id,
  accountIds: row.account_ids,
  expiresAt: row.expires_at,
  createdAt: row.created_at,
  statusUpdatedAt: row.status_updated_at,
});

export async function insertConsent(sql: Sql, consent: Consent): Promise<void> {
  await sql.query(
    `insert into consents (id, client_id, customer_id, type, status, details, details_enc, grant_id, expires_at,
                           created_at, status_updated_at)
     values ($1, $2, $3, $4, $5, $6::text::jsonb, $11, $7, $8, $9, $10)`,
    [
      consent.id,
      consent.clientId,
      consent.customerId,
      consent.type,
      consent.status,
      JSON.stringify(consent.details),
      consent.grantId,
      consent.expiresAt,
      consent.createdAt,
      consent.statusUpdatedAt,
      consent.detailsEnc ?? null,
    ],
  );
}

/** The consent, with `expired` applied when its time has passed. */
export async function findConsent(sql: Sql, id: string, now: Date): Promise<Consent | undefined> {
  const [row] = await sql.query<Row>(
    `select id, client_id, customer_id, type,
            case when status in ('awaiting_authorisation', 'authorised') and expires_at <= $2 then 'expired' else status end as status,
            details, details_enc, grant_id, account_ids, expires_at, created_at, status_updated_at
       from consents where id = $1`,
    [id, now],
  );
  return row && fromRow(row);
}

/**
 * Moves a consent from one of `from` to `to` in one statement, so two racing changes cannot both win;
 * returns the updated consent, or undefined when it was not in one of `from` (or has expired).
 */
export async function transitionConsent(
  sql: Sql,
  id: string,
  from: readonly ConsentStatus[],
  to: ConsentStatus,
  changes: { customerId?: string; grantId?: string; accountIds?: readonly string[] },
  now: Date,
): Promise<Consent | undefined> {
  const [row] = await sql.query<Row>(
    `update consents set status = $3, customer_id = coalesce($4, customer_id), grant_id = coalesce($5, grant_id),
            account_ids = coalesce($7::text::uuid[], account_ids), status_updated_at = $6
      where id = $1 and status = any($2::text::text[]) and expires_at > $6
      returning *`,
    [
      id,
      arrayLiteral(from),
      to,
      changes.customerId ?? null,
      changes.grantId ?? null,
      now,
      changes.accountIds ? arrayLiteral(changes.accountIds) : null,
    ],
  );
  return row && fromRow(row);
}

/** An authorised consent to consume, with the event that reports it. */
export interface Consumption {
  readonly id: string;
  readonly event: OutboxEvent;
}

/**
 * Authorised consents consumed at `now`, each with its event, in one statement: a group's payments go as
 * one joint call (src/db/group-commit.ts). Per item, false when its consent was no longer authorised (or
 * an earlier item of the call consumed it).
 */
export async function consumeConsents(
  sql: Sql,
  now: Date,
  items: readonly Consumption[],
): Promise<boolean[]> {
  const rows = await sql.query<{ id: string }>(
    `with r as (select * from jsonb_to_recordset($2::text::jsonb) as r(o int, id uuid, type text, payload jsonb)),
     consumed as (
       update consents c set status = 'consumed', status_updated_at = $1
         from r where c.id = r.id and c.status = 'authorised' and c.expires_at > $1 returning c.id),
     evented as (
       insert into outbox_events (type, subject_id, payload, created_at)
         select distinct on (r.id) r.type, r.id::text, r.payload, $1 from r join consumed using (id)
          order by r.id, r.o)
     select id from consumed`,
    [
      now,
      JSON.stringify(items.map(({ id, event }, o) => ({ o, id, type: event.type, payload: event.payload }))),
    ],
  );
  const consumed = new Set(rows.map((row) => row.id));
  // One consent, consumed once: only its first item gets it.
  return items.map(({ id }) => consumed.delete(id));
}

/** Consents in creation order, filtered by app or by customer, and optionally by type. */
export async function listCustomerConsents(
  sql: Sql,
  customerId: string,
  type: ConsentType | undefined,
  afterId: string | undefined,
  limit: number,
  now: Date,
): Promise<Consent[]> {
  // The customer's consents through their index, from the cursor on (see UUID_MIN): filtered on the
  // customer, and not the other way round, every page read the consents of every customer before it.
  const rows = await sql.query<Row>(
    `select id, client_id, customer_id, type,
            case when status in ('awaiting_authorisation', 'authorised') and expires_at <= $5 then 'expired' else status end as status,
            details, details_enc, grant_id, account_ids, expires_at, created_at, status_updated_at
       from consents
      where customer_id = $1 and id > coalesce($2::uuid, '${UUID_MIN}') and ($3::text is null or type = $3)
      order by id limit $4`,
    [customerId, afterId ?? null, type ?? null, limit, now],
  );
  return rows.map(fromRow);
}

/**
 * The consent if it is authorised and unexpired, read in the caller's transaction under a share lock: a
 * revocation racing the caller waits until it commits, or came first and is seen here.
 */
export async function lockAuthorisedConsent(sql: Sql, id: string, now: Date): Promise<Consent | undefined> {
  const [row] = await sql.query<Row>(
    `select * from consents where id = $1 and status = 'authorised' and expires_at > $2 for share`,
    [id, now],
  );
  return row && fromRow(row);
}

/** Ends every token of a grant: the grant itself and every record issued under it. */
export async function destroyGrant(sql: Sql, grantId: string): Promise<void> {
  await sql.query(`delete from oauth_payloads where grant_id = $1 or (model = 'Grant' and id = $1)`, [
    grantId,
  ]);
}
