import { createHmac, createSecretKey, hkdfSync } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { type App, routeOf } from '../http/app.ts';
import { canonicalJson } from '../idempotency.ts';
import type { ActorType, AuditLog } from './service.ts';

// Probes are not API calls; auditing them would bury the calls that matter.
const UNAUDITED = new Set(['/health/live', '/health/ready', '/metrics']);

/** Who made a call: the token's customer or app, else a signed-in developer or customer, else the operator. */
function actorOf(request: FastifyRequest): [ActorType, string | null] {
  const access = request.access;
  if (access)
    return access.subject !== access.clientId ? ['customer', access.subject] : ['app', access.clientId];
  if (request.developer) return ['developer', request.developer.id];
  if (request.customerId) return ['customer', request.customerId];
  if (request.operator) return ['operator', null];
  return ['anonymous', null];
}

/** A keyed fingerprint of a request body, derived from `secret`: comparable between records, not reversible. */
export function bodyFingerprint(secret: string): (body: unknown) => string {
  // A KeyObject made once: createHmac with a raw Buffer would import the key on every call.
  const bodyKey = createSecretKey(
    Buffer.from(hkdfSync('sha256', secret, 'apibank-audit', 'request-body', 32)),
  );
  return (body) => createHmac('sha256', bodyKey).update(canonicalJson(body)).digest('hex');
}

/**
 * The authorization server's own calls (token, PAR, introspection, …) bypass Fastify's hooks: oidc-provider
 * answers them itself. This Koa middleware, mounted in the provider, audits them with the client it
 * authenticated.
 */
export function auditProviderCalls(audit: AuditLog, fingerprint: (body: unknown) => string) {
  return async (
    ctx: {
      method: string;
      path: string;
      status: number;
      get(name: string): string;
      oidc?: { client?: { clientId: string }; body?: unknown };
    },
    next: () => Promise<void>,
  ): Promise<void> => {
    await next();
    const clientId = ctx.oidc?.client?.clientId ?? null;
    audit.record({
      at: new Date(),
      actorType: clientId ? 'app' : 'anonymous',
      actorId: clientId,
      appId: clientId,
      customerId: null,
      consentIds: null,
      method: ctx.method,
      route: ctx.path.startsWith('/oauth/authorize/') ? '/oauth/authorize/:uid' : ctx.path,
      status: ctx.status,
      requestId: ctx.get('x-request-id') || 'unknown',
      bodyHash: ctx.oidc?.body ? fingerprint(ctx.oidc.body) : null,
    });
  };
}

/**
 * Appends one audit record per API call, after the response is sent: the caller never waits for it.
 * Bodies are fingerprinted with a keyed hash: a plain hash of a body holding a password could be
 * brute-forced from the audit table.
 */
export function registerAuditHook(app: App, audit: AuditLog, fingerprint: (body: unknown) => string): void {
  app.addHook('onResponse', (request, reply, done) => {
    const route = routeOf(request);
    if (UNAUDITED.has(route)) return done();
    const access = request.access;
    const [actorType, actorId] = actorOf(request);
    audit.record({
      at: new Date(),
      actorType,
      actorId,
      appId: access?.clientId ?? null,
      customerId: actorType === 'customer' ? actorId : (request.customerId ?? null),
      consentIds: access?.consents.length ? access.consents.map((consent) => consent.id).join(',') : null,
      method: request.method,
      route,
      status: reply.statusCode,
      requestId: String(request.id),
      bodyHash: bodyHashOf(request, fingerprint),
    });
    done();
  });
}

/**
 * The body's fingerprint; null without a body. A body the fingerprint cannot take costs the record its
 * hash, never the record: the call is recorded whatever its body was.
 */
function bodyHashOf(request: FastifyRequest, fingerprint: (body: unknown) => string): string | null {
  if (request.body === undefined || request.body === null) return null;
  try {
    return fingerprint(request.body);
  } catch (error) {
    request.log.error({ err: error }, 'audit: the request body could not be fingerprinted');
    return null;
  }
}
