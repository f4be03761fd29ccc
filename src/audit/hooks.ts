import { createHmac, createSecretKey, hkdfSync } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { type App, routeOf } from '../http/app.ts';
import { canonicalJson } from '../idempotency.ts';
import type { ActorType, AuditLog } from './service.ts';

// Probes are not API calls; auditing them would bury the calls that matter.
const UNAUDITED = new Set(['/health/live', '/health/ready', '/metrics']);

function actorOf(request: FastifyRequest): { actorType: ActorType; actorId: string | null } {
  if (request.access) {
    const forCustomer = request.access.subject !== request.access.clientId;
    return forCustomer
      ? { actorType: 'customer', actorId: request.access.subject }
      : { actorType: 'app', actorId: request.access.clientId };
  }
  if (request.developer) return { actorType: 'developer', actorId: request.developer.id };
  if (request.customerId) return { actorType: 'customer', actorId: request.customerId };
  if (request.operator) return { actorType: 'operator', actorId: null };
  return { actorType: 'anonymous', actorId: null };
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
    const consents = request.access?.consents.map((consent) => consent.id) ?? [];
    audit.record({
      at: new Date(),
      ...actorOf(request),
      appId: request.access?.clientId ?? null,
      customerId:
        request.access && request.access.subject !== request.access.clientId
          ? request.access.subject
          : (request.customerId ?? null),
      consentIds: consents.length > 0 ? consents.join(',') : null,
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
