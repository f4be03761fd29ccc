// SQL for webhook endpoints and deliveries, and the dispatcher's reads of the transactional outbox.
import { arrayLiteral, type Sql, UUID_MAX } from '../db/db.ts';

export type DisabledReason = 'developer' | 'failing' | 'gone';
export type DeliveryStatus = 'pending' | 'sending' | 'delivered' | 'failed';

export interface StoredEndpoint {
  readonly id: string;
  readonly appId: string;
  readonly url: string;
  readonly eventTypes: readonly string[];
  readonly description: string | null;
  readonly enabled: boolean;
  readonly disabledReason: DisabledReason | null;
  readonly secretEnc: string;
  readonly previousSecretEnc: string | null;
  readonly previousSecretExpiresAt: Date | null;
  readonly failingSince: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface Delivery {
  readonly id: string;
  readonly endpointId: string;
  readonly appId: string;
  readonly eventId: bigint;
  readonly eventType: string;
  readonly messageId: string;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  readonly nextAttemptAt: Date | null;
  readonly lastAttemptAt: Date | null;
  readonly responseStatus: number | null;
  readonly error: string | null;
  readonly durationMs: number | null;
  readonly deliveredAt: Date | null;
  readonly replayOf: string | null;
  readonly createdAt: Date;
}

interface EndpointRow {
  id: string;
  app_id: string;
  url: string;
  event_types: string[];
  description: string | null;
  enabled: boolean;
  disabled_reason: DisabledReason | null;
  secret_enc: string;
  previous_secret_enc: string | null;
  previous_secret_expires_at: Date | null;
  failing_since: Date | null;
  created_at: Date;
  updated_at: Date;
}

interface DeliveryRow {
  id: string;
  endpoint_id: string;
  app_id: string;
  event_id: bigint;
  event_type: string;
  message_id: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: Date | null;
  last_attempt_at: Date | null;
  response_status: number | null;
  error: string | null;
  duration_ms: number | null;
  delivered_at: Date | null;
  replay_of: string | null;
  created_at: Date;
}

const ENDPOINT_COLUMNS = `id, app_id, url, event_types, description, enabled, disabled_reason, secret_enc,
  previous_secret_enc, previous_secret_expires_at, failing_since, created_at, updated_at`;
const DELIVERY_COLUMNS = `id, endpoint_id, app_id, event_id, event_type, message_id, status, attempts,
  next_attempt_at, last_attempt_at, response_status, error, duration_ms, delivered_at, replay_of, created_at`;

const endpointOf = (row: EndpointRow): StoredEndpoint => ({
  id: row.id,
  appId: row.app_id,
  url: row.url,
  eventTypes: row.event_types,
  description: row.description,
  enabled: row.enabled,
  disabledReason: row.disabled_reason,
  secretEnc: row.secret_enc,
  previousSecretEnc: row.previous_secret_enc,
  previousSecretExpiresAt: row.previous_secret_expires_at,
  failingSince: row.failing_since,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const deliveryOf = (row: DeliveryRow): Delivery => ({
  id: row.id,
  endpointId: row.endpoint_id,
  appId: row.app_id,
  eventId: BigInt(row.event_id),
  eventType: row.event_type,
  messageId: row.message_id,
  status: row.status,
  attempts: Number(row.attempts),
  nextAttemptAt: row.next_attempt_at,
  lastAttemptAt: row.last_attempt_at,
  responseStatus: row.response_status === null ? null : Number(row.response_status),
  error: row.error,
  durationMs: row.duration_ms === null ? null : Number(row.duration_ms),
  deliveredAt: row.delivered_at,
  replayOf: row.replay_of,
  createdAt: row.created_at,
});

// ---- endpoints

/** Inserts the endpoint unless the app already has `max`; the per-app lock makes count and insert one act. */
export async function insertEndpoint(tx: Sql, endpoint: StoredEndpoint, max: number): Promise<boolean> {
  await tx.query('select pg_advisory_xact_lock(hashtext($1))', [`webhook_endpoints:${endpoint.appId}`]);
  const [count] = await tx.query<{ n: bigint }>(
    'select count(*) as n from webhook_endpoints where app_id = $1',
    [endpoint.appId],
  );
  if (Number(count?.n ?? 0) >= max) return false;
  await tx.query(
    `insert into webhook_endpoints (${ENDPOINT_COLUMNS})
     values ($1, $2, $3, $4::text[], $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
    [
      endpoint.id,
      endpoint.appId,
      endpoint.url,
      arrayLiteral(endpoint.eventTypes),
      endpoint.description,
      endpoint.enabled,
      endpoint.disabledReason,
      endpoint.secretEnc,
      endpoint.previousSecretEnc,
      endpoint.previousSecretExpiresAt,
      endpoint.failingSince,
      endpoint.createdAt,
      endpoint.updatedAt,
    ],
  );
  return true;
}

export async function findEndpoint(sql: Sql, appId: string, id: string): Promise<StoredEndpoint | undefined> {
  const [row] = await sql.query<EndpointRow>(
    `select ${ENDPOINT_COLUMNS} from webhook_endpoints where app_id = $1 and id = $2`,
    [appId, id],
  );
  return row && endpointOf(row);
}

export async function listEndpoints(
  sql: Sql,
  appId: string,
  afterId: string | undefined,
  limit: number,
): Promise<StoredEndpoint[]> {
  const rows = await sql.query<EndpointRow>(
    `select ${ENDPOINT_COLUMNS} from webhook_endpoints
     where app_id = $1 and ($2::uuid is null or id > $2::uuid) order by id limit $3`,
    [appId, afterId ?? null, limit],
  );
  return rows.map(endpointOf);
}

export async function saveEndpointSettings(
  sql: Sql,
  id: string,
  settings: { url: string; eventTypes: readonly string[]; description: string | null },
  at: Date,
): Promise<void> {
  await sql.query(
    `update webhook_endpoints set url = $2, event_types = $3::text[], description = $4, updated_at = $5
     where id = $1`,
    [id, settings.url, arrayLiteral(settings.eventTypes), settings.description, at],
  );
}

export async function enableEndpoint(sql: Sql, id: string, at: Date): Promise<void> {
  // A fresh start: the failures that disabled it are forgiven.
  await sql.query(
    `update webhook_endpoints set enabled = true, disabled_reason = null, failing_since = null, updated_at = $2
     where id = $1 and not enabled`,
    [id, at],
  );
}

/**
 * Disables an enabled endpoint and fails its waiting deliveries (they stay in the log, replayable). Returns
 * the app it belongs to when this call disabled it; undefined when it was already disabled or is gone.
 */
export async function disableEndpoint(
  tx: Sql,
  id: string,
  reason: DisabledReason,
  at: Date,
): Promise<string | undefined> {
  const [row] = await tx.query<{ app_id: string }>(
    `update webhook_endpoints set enabled = false, disabled_reason = $2, updated_at = $3
     where id = $1 and enabled returning app_id`,
    [id, reason, at],
  );
  if (!row) return undefined;
  await tx.query(
    `update webhook_deliveries set status = 'failed', next_attempt_at = null, error = 'endpoint_disabled'
     where endpoint_id = $1 and status = 'pending'`,
    [id],
  );
  return row.app_id;
}

export async function saveSecrets(
  sql: Sql,
  id: string,
  secrets: { secretEnc: string; previousSecretEnc: string | null; previousSecretExpiresAt: Date | null },
  at: Date,
): Promise<void> {
  await sql.query(
    `update webhook_endpoints
     set secret_enc = $2, previous_secret_enc = $3, previous_secret_expires_at = $4, updated_at = $5
     where id = $1`,
    [id, secrets.secretEnc, secrets.previousSecretEnc, secrets.previousSecretExpiresAt, at],
  );
}

export async function deleteEndpoint(sql: Sql, appId: string, id: string): Promise<boolean> {
  const rows = await sql.query('delete from webhook_endpoints where app_id = $1 and id = $2 returning id', [
    appId,
    id,
  ]);
  return rows.length > 0;
}

// ---- the delivery log

export async function listDeliveries(
  sql: Sql,
  endpointId: string,
  beforeId: string | undefined,
  status: DeliveryStatus | undefined,
  limit: number,
): Promise<Delivery[]> {
  // Newest first: the log is read to see what just happened. One statement for each case, the cursor an
  // index condition even when absent: by status through (endpoint_id, status, id) (migration 0033).
  const rows =
    status === undefined
      ? await sql.query<DeliveryRow>(
          `select ${DELIVERY_COLUMNS} from webhook_deliveries
            where endpoint_id = $1 and id < coalesce($2::uuid, '${UUID_MAX}')
            order by id desc limit $3`,
          [endpointId, beforeId ?? null, limit],
        )
      : await sql.query<DeliveryRow>(
          `select ${DELIVERY_COLUMNS} from webhook_deliveries
            where endpoint_id = $1 and status = $3 and id < coalesce($2::uuid, '${UUID_MAX}')
            order by id desc limit $4`,
          [endpointId, beforeId ?? null, status, limit],
        );
  return rows.map(deliveryOf);
}

export async function findDelivery(sql: Sql, endpointId: string, id: string): Promise<Delivery | undefined> {
  const [row] = await sql.query<DeliveryRow>(
    `select ${DELIVERY_COLUMNS} from webhook_deliveries where endpoint_id = $1 and id = $2`,
    [endpointId, id],
  );
  return row && deliveryOf(row);
}

/** A waiting delivery becomes due now; one being sent is left alone. Returns it as it is after. */
export async function hurryDelivery(sql: Sql, id: string, at: Date): Promise<Delivery | undefined> {
  await sql.query(
    `update webhook_deliveries set next_attempt_at = $2
     where id = $1 and status = 'pending' and next_attempt_at > $2`,
    [id, at],
  );
  const [row] = await sql.query<DeliveryRow>(
    `select ${DELIVERY_COLUMNS} from webhook_deliveries where id = $1`,
    [id],
  );
  return row && deliveryOf(row);
}

/** A finished delivery sent again: a new delivery of the same message, due now. */
export async function insertReplay(sql: Sql, original: Delivery, id: string, at: Date): Promise<Delivery> {
  const [row] = await sql.query<DeliveryRow>(
    `insert into webhook_deliveries
       (id, endpoint_id, app_id, event_id, event_type, message_id, body, status, attempts, next_attempt_at,
        replay_of, created_at)
     select $1, endpoint_id, app_id, event_id, event_type, message_id, body, 'pending', 0, $3, id, $3
     from webhook_deliveries where id = $2
     returning ${DELIVERY_COLUMNS}`,
    [id, original.id, at],
  );
  if (!row) throw new Error(`delivery ${original.id} vanished while being replayed`);
  return deliveryOf(row);
}

/** Finished deliveries older than `before`, in bounded batches; returns how many went. */
export async function pruneDeliveries(sql: Sql, before: Date, limit: number): Promise<number> {
  const rows = await sql.query(
    `delete from webhook_deliveries where id in (
       select id from webhook_deliveries
       where status in ('delivered', 'failed') and created_at < $1 limit $2
     ) returning id`,
    [before, limit],
  );
  return rows.length;
}

// ---- fan-out: outbox events into deliveries

export interface OutboxRow {
  readonly id: bigint;
  readonly type: string;
  readonly payload: Readonly<Record<string, unknown>>;
  readonly createdAt: Date;
}

/** The oldest undispatched events, locked for this transaction; other dispatchers skip them. */
export async function claimUndispatchedEvents(tx: Sql, limit: number): Promise<OutboxRow[]> {
  const rows = await tx.query<{
    id: bigint;
    type: string;
    payload: Record<string, unknown>;
    created_at: Date;
  }>(
    `select id, type, payload, created_at from outbox_events
     where delivered_at is null order by id limit $1 for update skip locked`,
    [limit],
  );
  return rows.map((row) => ({
    id: BigInt(row.id),
    type: row.type,
    payload: row.payload,
    createdAt: row.created_at,
  }));
}

export interface EndpointRoute {
  readonly id: string;
  readonly appId: string;
  readonly eventTypes: readonly string[];
  readonly createdAt: Date;
}

export async function enabledEndpointsOf(tx: Sql, appIds: readonly string[]): Promise<EndpointRoute[]> {
  if (appIds.length === 0) return [];
  const rows = await tx.query<{ id: string; app_id: string; event_types: string[]; created_at: Date }>(
    `select id, app_id, event_types, created_at from webhook_endpoints
     where enabled and app_id = any($1::uuid[])`,
    [arrayLiteral(appIds)],
  );
  return rows.map((row) => ({
    id: row.id,
    appId: row.app_id,
    eventTypes: row.event_types,
    createdAt: row.created_at,
  }));
}

export interface NewDelivery {
  readonly id: string;
  readonly endpointId: string;
  readonly appId: string;
  readonly eventId: bigint;
  readonly eventType: string;
  readonly messageId: string;
  readonly body: string;
}

/** One statement for the whole batch; an event already fanned out to an endpoint is not added twice. */
export async function insertDeliveries(tx: Sql, deliveries: readonly NewDelivery[], at: Date): Promise<void> {
  if (deliveries.length === 0) return;
  const rows = deliveries.map((d) => ({
    id: d.id,
    endpoint_id: d.endpointId,
    app_id: d.appId,
    event_id: String(d.eventId),
    event_type: d.eventType,
    message_id: d.messageId,
    body: d.body,
  }));
  await tx.query(
    `insert into webhook_deliveries
       (id, endpoint_id, app_id, event_id, event_type, message_id, body, status, attempts, next_attempt_at, created_at)
     select d.id, d.endpoint_id, d.app_id, d.event_id, d.event_type, d.message_id, d.body, 'pending', 0, $2, $2
     from jsonb_to_recordset($1::text::jsonb) as d(
       id uuid, endpoint_id uuid, app_id uuid, event_id bigint, event_type text, message_id text, body text)
     on conflict (endpoint_id, event_id) where replay_of is null do nothing`,
    [JSON.stringify(rows), at],
  );
}

export async function markEventsDispatched(tx: Sql, ids: readonly bigint[], at: Date): Promise<void> {
  await tx.query('update outbox_events set delivered_at = $2 where id = any($1::bigint[])', [
    arrayLiteral(ids),
    at,
  ]);
}

// ---- sending

export interface ClaimedDelivery {
  readonly id: string;
  readonly endpointId: string;
  readonly appId: string;
  readonly messageId: string;
  readonly body: string;
  /** This attempt's number; the result is recorded only while the delivery is still on it. */
  readonly attempt: number;
  readonly createdAt: Date;
  readonly url: string;
  readonly secretEnc: string;
  readonly previousSecretEnc: string | null;
  readonly previousSecretExpiresAt: Date | null;
}

/**
 * Claims due deliveries in one statement: the endpoints due longest first, at most `perEndpoint` deliveries
 * each, `perApp` for all of an app's endpoints (less what `inFlight` says it has in flight already) and
 * `slots` in all, skipping rows another dispatcher holds and the endpoints in `busy`. A claimed delivery is
 * `sending` until `leaseUntil`: if this process dies mid-attempt, another takes it after that.
 */
export async function claimDueDeliveries(
  sql: Sql,
  options: {
    now: Date;
    leaseUntil: Date;
    slots: number;
    perEndpoint: number;
    perApp: number;
    busy: readonly string[];
    /** Attempts in flight in this process, by app. */
    inFlight: ReadonlyMap<string, number>;
  },
): Promise<ClaimedDelivery[]> {
  const rows = await sql.query<{
    id: string;
    endpoint_id: string;
    app_id: string;
    message_id: string;
    body: string;
    attempts: number;
    created_at: Date;
    url: string;
    secret_enc: string;
    previous_secret_enc: string | null;
    previous_secret_expires_at: Date | null;
  }>(
    `with in_flight as (
       select * from unnest($6::uuid[], $7::int[]) as f(app_id, attempts)
     ), due as (
       -- Enabled endpoints only, before the slots are counted: what a disabled endpoint still holds must
       -- never take the slots of the endpoints that are due. No more of an app's endpoints than it may
       -- still start attempts, so one app's backlog cannot fill the claim and leave the others out.
       select endpoint_id, app_id, first_due from (
         select d.endpoint_id, e.app_id, min(d.next_attempt_at) as first_due,
                row_number() over (partition by e.app_id order by min(d.next_attempt_at), d.endpoint_id) as in_app
         from webhook_deliveries d
         join webhook_endpoints e on e.id = d.endpoint_id and e.enabled
         where d.status in ('pending', 'sending') and d.next_attempt_at <= $1
           and d.endpoint_id <> all($3::uuid[])
         group by d.endpoint_id, e.app_id
       ) ranked
       where in_app <= $8 - coalesce((select attempts from in_flight f where f.app_id = ranked.app_id), 0)
       order by first_due
       limit $4
     ), picked as (
       select p.id, due.app_id, due.first_due, p.next_attempt_at from due
       join webhook_endpoints e on e.id = due.endpoint_id and e.enabled
       cross join lateral (
         select d.id, d.next_attempt_at from webhook_deliveries d
         where d.endpoint_id = due.endpoint_id and d.status in ('pending', 'sending') and d.next_attempt_at <= $1
         order by d.next_attempt_at, d.id
         limit $5
         for update of d skip locked
       ) p
     ), capped as (
       -- At most what each app may still start, then at most the slots.
       select id from (
         select picked.*, row_number() over (partition by app_id order by first_due, next_attempt_at, id) as in_app
         from picked
       ) ranked
       where in_app <= $8 - coalesce((select attempts from in_flight f where f.app_id = ranked.app_id), 0)
       order by first_due, next_attempt_at, id
       limit $4
     )
     update webhook_deliveries d
     set status = 'sending', attempts = d.attempts + 1, last_attempt_at = $1, next_attempt_at = $2
     from capped, webhook_endpoints e
     where d.id = capped.id and e.id = d.endpoint_id
     returning d.id, d.endpoint_id, d.app_id, d.message_id, d.body, d.attempts, d.created_at,
       e.url, e.secret_enc, e.previous_secret_enc, e.previous_secret_expires_at`,
    [
      options.now,
      options.leaseUntil,
      arrayLiteral(options.busy),
      options.slots,
      options.perEndpoint,
      arrayLiteral([...options.inFlight.keys()]),
      arrayLiteral([...options.inFlight.values()]),
      options.perApp,
    ],
  );
  return rows.map((row) => ({
    id: row.id,
    endpointId: row.endpoint_id,
    appId: row.app_id,
    messageId: row.message_id,
    body: row.body,
    attempt: Number(row.attempts),
    createdAt: row.created_at,
    url: row.url,
    secretEnc: row.secret_enc,
    previousSecretEnc: row.previous_secret_enc,
    previousSecretExpiresAt: row.previous_secret_expires_at,
  }));
}

export interface AttemptResult {
  readonly responseStatus: number | null;
  readonly error: string | null;
  readonly durationMs: number;
}

/**
 * Records one attempt's outcome: `delivered`, `failed`, or `pending` until `nextAttemptAt`. False when the
 * delivery has moved on (its lease ran out and another attempt began, or its endpoint was deleted).
 */
export async function recordAttempt(
  tx: Sql,
  claimed: { id: string; attempt: number },
  outcome: AttemptResult & {
    status: 'delivered' | 'failed' | 'pending';
    nextAttemptAt: Date | null;
    at: Date;
  },
): Promise<boolean> {
  const rows = await tx.query(
    // An attempt that was in flight when its endpoint was disabled is not retried: it fails, as the
    // endpoint's waiting deliveries did when it was disabled (disableEndpoint).
    `update webhook_deliveries d
     set status = case when given.abandoned then 'failed' else $3::text end,
       next_attempt_at = case when given.abandoned then null else $4::timestamptz end,
       response_status = $5,
       error = case when given.abandoned then 'endpoint_disabled' else $6::text end,
       duration_ms = $7,
       delivered_at = case when $3 = 'delivered' then $8::timestamptz else d.delivered_at end
     from webhook_endpoints e, lateral (select $3::text = 'pending' and not e.enabled as abandoned) given
     where d.id = $1 and d.attempts = $2 and d.status = 'sending' and e.id = d.endpoint_id
     returning d.id`,
    [
      claimed.id,
      claimed.attempt,
      outcome.status,
      outcome.nextAttemptAt,
      outcome.responseStatus,
      outcome.error,
      outcome.durationMs,
      outcome.at,
    ],
  );
  return rows.length > 0;
}

export async function clearEndpointFailures(tx: Sql, endpointId: string): Promise<void> {
  await tx.query(
    'update webhook_endpoints set failing_since = null where id = $1 and failing_since is not null',
    [endpointId],
  );
}

/** Notes a failed attempt; returns since when the endpoint has been failing without a break. */
export async function noteEndpointFailure(tx: Sql, endpointId: string, at: Date): Promise<Date | undefined> {
  const [row] = await tx.query<{ failing_since: Date }>(
    `update webhook_endpoints set failing_since = coalesce(failing_since, $2)
     where id = $1 and enabled returning failing_since`,
    [endpointId, at],
  );
  return row?.failing_since;
}
