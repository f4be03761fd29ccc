// API-wide conventions every response follows: security headers, CORS for configured origins, and
// deprecation notices on routes that are going away. (W3C trace context goes into the logs in app.ts.)
import cors from '@fastify/cors';
import type { App } from './app.ts';

export interface ConventionOptions {
  readonly production: boolean;
  readonly corsOrigins: readonly string[];
}

export interface Deprecation {
  /** When the route was deprecated (RFC 9745 `Deprecation`). */
  readonly since: Date;
  /** When it stops answering (RFC 8594 `Sunset`). */
  readonly sunset: Date;
  /** Where to read about the replacement. */
  readonly link?: string;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    deprecation?: Deprecation;
  }
}

export function registerConventions(app: App, options: ConventionOptions): void {
  // No origins configured: no browser may call cross-origin, so no CORS answers at all (a preflight is a
  // 404), and no CORS step on every call.
  if (options.corsOrigins.length > 0) registerCors(app, options.corsOrigins);
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    // Bank data is personal: no shared cache may keep an API answer.
    if (request.url.startsWith('/v1/')) reply.header('cache-control', 'no-store');
    if (options.production) reply.header('strict-transport-security', 'max-age=31536000; includeSubDomains');
    const deprecation = (request.route?.config ?? request.routeOptions.config)?.deprecation;
    if (deprecation) {
      reply.header('deprecation', `@${Math.floor(deprecation.since.getTime() / 1000)}`);
      reply.header('sunset', deprecation.sunset.toUTCString());
      if (deprecation.link) reply.header('link', `<${deprecation.link}>; rel="deprecation"`);
    }
    done();
  });
}

function registerCors(app: App, origins: readonly string[]): void {
  app.register(cors, {
    origin: [...origins],
    methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: [
      'authorization',
      'content-type',
      'dpop',
      'idempotency-key',
      'x-request-id',
      'traceparent',
    ],
    exposedHeaders: [
      'x-request-id',
      'ratelimit',
      'ratelimit-policy',
      'retry-after',
      'idempotent-replayed',
      'deprecation',
      'sunset',
      'link',
    ],
    maxAge: 600,
  });
}
