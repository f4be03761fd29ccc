// Idempotency for POSTs that create something, as a route option (`config: { idempotent: true }`): the
// first request under an Idempotency-Key runs; its successful response is stored (a refusal leaves no
// key, as in the ledger); the same request again gets the stored response with `Idempotent-Replayed: true`; another request under the key is a 422; a twin that
// arrives while the first runs is a 409. Keys are scoped to the caller (the app, or else the developer).
//
// Unlike the ledger (whose key is written in the same transaction as the transfer), the response is stored
// after the handler: a process that dies between the two leaves the key "in flight" for
// IN_FLIGHT_ABANDONED_MS, after which a retry runs again. Money never moves through this path.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../db/db.ts';
import type { App } from '../http/app.ts';
import { Problem } from '../http/problems.ts';
import { readIdempotencyKey, requestHash } from '../idempotency.ts';

const IN_FLIGHT_ABANDONED_MS = 60_000;

declare module 'fastify' {
  interface FastifyContextConfig {
    idempotent?: boolean;
  }
  interface FastifyRequest {
    idempotency?: { scope: string; key: string };
  }
}

function callerScope(request: FastifyRequest): string | undefined {
  const caller = request.access
    ? `app:${request.access.clientId}`
    : request.developer
      ? `developer:${request.developer.id}`
      : undefined;
  return caller && `${request.routeOptions.url}:${caller}`;
}

export function registerIdempotency(app: App, db: Db): void {
  async function claim(request: FastifyRequest, reply: FastifyReply) {
    const key = readIdempotencyKey(request.headers['idempotency-key'], false);
    const scope = callerScope(request);
    if (key === undefined || scope === undefined) return;
    const hash = requestHash({ body: request.body ?? null, params: request.params ?? null });
    // Claim the key, or learn what holds it. A claim is a row with status 0 (in flight).
    const [claimed] = await db.query<{ claimed: boolean }>(
      `insert into idempotency_keys (scope, key, request_hash, status_code, response, created_at)
       values ($1, $2, $3, 0, 'null', now()) on conflict (scope, key) do nothing returning true as claimed`,
      [scope, key, hash],
    );
    if (claimed) {
      request.idempotency = { scope, key };
      return;
    }
    const [stored] = await db.query<{
      request_hash: string;
      status_code: number;
      response: unknown;
      age_ms: number;
    }>(
      `select request_hash, status_code, response, (extract(epoch from now() - created_at) * 1000)::int as age_ms
         from idempotency_keys where scope = $1 and key = $2`,
      [scope, key],
    );
    if (!stored) throw new Problem('idempotency_key_in_flight', 'retry the same request shortly');
    if (stored.request_hash !== hash) throw new Problem('idempotency_key_reused');
    if (stored.status_code === 0) {
      if (stored.age_ms < IN_FLIGHT_ABANDONED_MS) throw new Problem('idempotency_key_in_flight');
      // Abandoned by a process that died: take it over.
      await db.query('update idempotency_keys set created_at = now() where scope = $1 and key = $2', [
        scope,
        key,
      ]);
      request.idempotency = { scope, key };
      return;
    }
    return reply
      .code(stored.status_code)
      .header('idempotent-replayed', 'true')
      .type('application/json')
      .send(JSON.stringify(stored.response));
  }

  async function store(request: FastifyRequest, reply: FastifyReply, payload: unknown) {
    const claim = request.idempotency;
    if (!claim) return payload;
    if (reply.statusCode >= 400) {
      // A refusal changed nothing (and a failure may not repeat): release the key so a retry runs again.
      await db.query('delete from idempotency_keys where scope = $1 and key = $2 and status_code = 0', [
        claim.scope,
        claim.key,
      ]);
      return payload;
    }
    await db.query(
      'update idempotency_keys set status_code = $3, response = $4::text::jsonb where scope = $1 and key = $2',
      [
        claim.scope,
        claim.key,
        reply.statusCode,
        typeof payload === 'string' && payload !== '' ? payload : 'null',
      ],
    );
    return payload;
  }

  // Only the routes marked idempotent get the hooks: every other call skips them entirely.
  app.addHook('onRoute', (route) => {
    if (!route.config?.idempotent) return;
    route.preHandler = [...hooksOf(route.preHandler), claim];
    route.onSend = [...hooksOf(route.onSend), store];
  });
}

const hooksOf = <T>(hooks: T | T[] | undefined): T[] =>
  hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks];
