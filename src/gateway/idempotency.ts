// Idempotency for POSTs that create something, as a route option (`config: { idempotent: true }`): the
// first request under an Idempotency-Key runs; its successful response is stored (a refusal leaves no
// key, as in the ledger); the same request again gets the stored response with `Idempotent-Replayed:
// true`; another request under the key is a 422; a twin that arrives while the first runs is a 409. Keys
// are scoped to the route and the caller (the app, the customer, the developer or the operator).
//
// The rules are those of src/idempotency.ts, which the ledger and payments apply inside the transaction
// that moves the money. Here the response is stored after the handler: a process that dies between the
// two leaves the key "in flight" for IN_FLIGHT_ABANDONED_MS, after which a retry runs again. Money never
// moves through this path. Stored responses are sealed (src/pii/): they hold client secrets, webhook
// secrets and applicants' names.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Db } from '../db/db.ts';
import { type App, routeOf } from '../http/app.ts';
import { Problem } from '../http/problems.ts';
import { readIdempotencyKey, requestHash } from '../idempotency.ts';
import { fieldContext, type Pii } from '../pii/pii.ts';

const IN_FLIGHT_ABANDONED_MS = 60_000;

declare module 'fastify' {
  interface FastifyContextConfig {
    idempotent?: boolean;
  }
  interface FastifyRequest {
    idempotency?: { scope: string; key: string; id: string };
  }
}

function callerScope(request: FastifyRequest): string | undefined {
  let caller: string | undefined;
  if (request.access) caller = `app:${request.access.clientId}`;
  else if (request.customerId) caller = `customer:${request.customerId}`;
  else if (request.developer) caller = `developer:${request.developer.id}`;
  else if (request.operator) caller = 'operator';
  return caller && `${routeOf(request)}:${caller}`;
}

const responseContext = (id: string) => fieldContext('idempotency_keys', 'response_enc', id);

export function registerIdempotency(app: App, db: Db, pii: Pii): void {
  async function claim(request: FastifyRequest, reply: FastifyReply) {
    const key = readIdempotencyKey(request.headers['idempotency-key'], false);
    const scope = callerScope(request);
    if (key === undefined || scope === undefined) return;
    const hash = requestHash({ body: request.body ?? null, params: request.params ?? null });
    // Claim the key, or learn what holds it. A claim is a row with status 0 (in flight).
    const [claimed] = await db.query<{ id: string }>(
      `insert into idempotency_keys (scope, key, request_hash, status_code, response, created_at)
       values ($1, $2, $3, 0, 'null', now()) on conflict (scope, key) do nothing returning id`,
      [scope, key, hash],
    );
    if (claimed) {
      request.idempotency = { scope, key, id: claimed.id };
      return;
    }
    const [stored] = await db.query<{
      id: string;
      request_hash: string;
      status_code: number;
      response_enc: string | null;
      age_ms: number;
    }>(
      `select id, request_hash, status_code, response_enc,
              (extract(epoch from now() - created_at) * 1000)::int as age_ms
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
      request.idempotency = { scope, key, id: stored.id };
      return;
    }
    const body = stored.response_enc
      ? await pii.decrypt(stored.response_enc, responseContext(stored.id))
      : '';
    reply.code(stored.status_code).header('idempotent-replayed', 'true');
    return body === '' ? reply.send() : reply.type('application/json').send(body);
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
    const body = typeof payload === 'string' ? payload : '';
    await db.query(
      'update idempotency_keys set status_code = $3, response_enc = $4 where scope = $1 and key = $2',
      [claim.scope, claim.key, reply.statusCode, pii.encrypt(body, responseContext(claim.id))],
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
