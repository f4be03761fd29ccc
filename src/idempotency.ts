// Idempotency for POST requests (draft-ietf-httpapi-idempotency-key-header): the first request under a key
// runs and its response is stored with a hash of the request; the same request again gets that response
// back, a different request under the same key is refused, and a twin arriving while the first still
// runs is told to wait (409). The ledger applies the same rules inside its batched SQL function; this is
// the general form for every other POST.
import { createHash } from 'node:crypto';
import type { Db, Sql } from './db/db.ts';
import { Problem } from './http/problems.ts';

/** Keys are remembered at least this long (the issue asks for 24 h; twice that covers a day of retries). */
export const IDEMPOTENCY_RETENTION_MS = 48 * 60 * 60 * 1000;

// Visible ASCII, as in the draft's examples; bounded so a key never bloats the index.
const KEY_SHAPE = /^[\x21-\x7e]{1,255}$/;

export function readIdempotencyKey(header: string | string[] | undefined, required: true): string;
export function readIdempotencyKey(
  header: string | string[] | undefined,
  required: boolean,
): string | undefined;
export function readIdempotencyKey(
  header: string | string[] | undefined,
  required: boolean,
): string | undefined {
  if (header === undefined) {
    if (required) throw new Problem('idempotency_key_missing');
    return undefined;
  }
  if (Array.isArray(header) || !KEY_SHAPE.test(header)) {
    throw new Problem(
      'idempotency_key_invalid',
      'Idempotency-Key must be 1 to 255 visible ASCII characters, sent once',
    );
  }
  return header;
}

/** A stable hash of a request: object keys sorted, so a client re-serialising its body still matches. */
export function requestHash(request: unknown): string {
  return createHash('sha256').update(canonicalJson(request)).digest('base64url');
}

/** JSON with object keys sorted at every level: equal values give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  if (typeof value === 'bigint') return JSON.stringify(value.toString());
  return JSON.stringify(value) ?? 'null';
}

export interface IdempotentResponse {
  readonly statusCode: number;
  readonly body: unknown;
  readonly replayed: boolean;
}

export interface IdempotencyRequest {
  /** Separates key spaces: an app's keys never collide with another app's or another endpoint's. */
  readonly scope: string;
  readonly key: string;
  readonly hash: string;
}

/**
 * Runs `work` once per (scope, key). The advisory lock makes a concurrent twin fail fast with 409 instead
 * of running twice; the stored row, written in the same transaction as the work, makes later twins replay.
 */
export async function runIdempotent(
  db: Db,
  request: IdempotencyRequest,
  work: (tx: Sql) => Promise<{ statusCode: number; body: unknown; remember?: boolean }>,
): Promise<IdempotentResponse> {
  return db.transaction(async (tx) => {
    const [lock] = await tx.query<{ locked: boolean }>(
      'select pg_try_advisory_xact_lock(hashtext($1), hashtext($2)) as locked',
      [request.scope, request.key],
    );
    if (!lock?.locked) throw new Problem('idempotency_key_in_flight');
    const [stored] = await tx.query<{ request_hash: string; status_code: number; response: unknown }>(
      'select request_hash, status_code, response from idempotency_keys where scope = $1 and key = $2',
      [request.scope, request.key],
    );
    if (stored) {
      if (stored.request_hash !== request.hash) throw new Problem('idempotency_key_reused');
      return { statusCode: stored.status_code, body: stored.response, replayed: true };
    }
    const { remember = true, ...response } = await work(tx);
    // An outcome that changed nothing (a refusal) is not remembered: a corrected retry may reuse the key.
    if (!remember) return { ...response, replayed: false };
    await tx.query(
      `insert into idempotency_keys (scope, key, request_hash, status_code, response, created_at)
       values ($1, $2, $3, $4, $5::text::jsonb, now())`,
      [request.scope, request.key, request.hash, response.statusCode, JSON.stringify(response.body)],
    );
    return { ...response, replayed: false };
  });
}

/** Forgets keys older than the retention, a bounded number per call so pruning never holds long locks. */
export async function pruneIdempotencyKeys(db: Db, now: Date, limit = 10_000): Promise<number> {
  const rows = await db.query(
    `delete from idempotency_keys where ctid in (
       select ctid from idempotency_keys where created_at < $1 limit $2)
     returning 1`,
    [new Date(now.getTime() - IDEMPOTENCY_RETENTION_MS), limit],
  );
  return rows.length;
}
