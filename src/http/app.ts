import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyContextConfig,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import pino, { type Logger } from 'pino';
import { QueueFullError } from '../db/batcher.ts';
import { type FieldError, PROBLEMS, Problem, type ProblemCode, problemBody } from './problems.ts';

export type App = FastifyInstance<
  import('node:http').Server,
  import('node:http').IncomingMessage,
  import('node:http').ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export const JSON_BODY_LIMIT_BYTES = 256 * 1024;
// A caller's X-Request-Id is kept when it is a plain token; anything else is replaced, never echoed.
const REQUEST_ID_SHAPE = /^[A-Za-z0-9._:-]{1,128}$/;

export interface HttpOptions {
  readonly logger?: Logger;
  /** Per-request timeout for reading the request (Node's `requestTimeout`). */
  readonly requestTimeoutMs?: number;
  /** Proxies whose X-Forwarded-For names the caller (`request.ip`): addresses or CIDR ranges. */
  readonly trustedProxies?: readonly string[];
}

// W3C Trace Context §3.2: version-traceid-parentid-flags in lower-case hex; all-zero ids are invalid.
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

function traceOf(header: unknown): { traceId: string; parentSpanId: string } | undefined {
  const match = typeof header === 'string' ? TRACEPARENT.exec(header) : null;
  if (!match?.[1] || !match[2] || /^0+$/.test(match[1]) || /^0+$/.test(match[2])) return undefined;
  return { traceId: match[1], parentSpanId: match[2] };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The matched route's template ('unmatched' for none) and config, read once per call (see below). */
    route: { readonly url: string; readonly config: FastifyContextConfig | undefined } | null;
    /** The JSON body's exact text, in a scope that keeps it to verify a signature over it. */
    jsonText?: string;
  }
}

/** The route template of a call: after onRequest from the request, before it (a refused request) from Fastify. */
export const routeOf = (request: FastifyRequest): string =>
  request.route?.url ?? request.routeOptions.url ?? 'unmatched';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * What a log line says of a request. Paths and queries can carry personal data (an IBAN on the block list,
 * a name in a search), so the URL logged is the route's template, with the values of its parameters only
 * where they are ids (UUIDs); the query is never logged, nor the path of a request no route matched.
 */
function loggedRequest(request: FastifyRequest) {
  return {
    method: request.method,
    url: loggedPath(request),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/**
 * An error as logged: pino's standard form without the values a database error carries: PostgreSQL's
 * `detail` quotes a row's values (`Key (email)=(…) already exists`), and PGlite's and postgres.js's errors
 * carry the statement's parameters. The statement's text stays: it names no one.
 */
function loggedError(error: Error): Record<string, unknown> {
  const {
    detail: _detail,
    params: _params,
    parameters: _parameters,
    args: _args,
    ...logged
  } = pino.stdSerializers.err(error) as Record<string, unknown>;
  return logged;
}

/** How requests and errors appear in every log line: the server's logger and each request's. */
export const logSerializers = { req: loggedRequest, err: loggedError };

function loggedPath(request: FastifyRequest): string {
  const template = request.routeOptions?.url;
  if (template === undefined) return '(no route)';
  const params = (request.params ?? {}) as Record<string, unknown>;
  // The wildcard routes are the authorization server's (/oauth/*, /.well-known/*): its paths are its
  // endpoints and interaction ids, which say which step of a sign-in failed.
  return template
    .replace(/:(\w+)/g, (placeholder, name: string) => {
      const value = params[name];
      return typeof value === 'string' && UUID.test(value) ? value : placeholder;
    })
    .replace(/\*$/, () => String(params['*'] ?? '*'));
}

/** The Fastify instance with the cross-cutting behaviour every route shares: ids, problems, limits. */
export function createHttpServer(options: HttpOptions = {}): App {
  const app = Fastify({
    ...(options.logger
      ? { loggerInstance: options.logger.child({}, { serializers: logSerializers }) }
      : { logger: false }),
    bodyLimit: JSON_BODY_LIMIT_BYTES,
    requestTimeout: options.requestTimeoutMs ?? 30_000,
    // Behind a load balancer every connection comes from it: the caller's address (sign-in attempts, logs)
    // is in X-Forwarded-For, believed only from the proxies configured, never from anyone else.
    trustProxy: options.trustedProxies?.length ? [...options.trustedProxies] : false,
    // Every log line of a request carries the caller's W3C trace (traceparent), so one trace can be
    // followed across systems.
    childLoggerFactory: (logger, bindings, options, rawRequest) => {
      const trace = traceOf((rawRequest as { headers?: Record<string, unknown> }).headers?.traceparent);
      return logger.child(trace ? { ...bindings, ...trace } : bindings, options);
    },
    genReqId: (request) => {
      const given = request.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID_SHAPE.test(given) ? given : randomUUID();
    },
    // Requests refused before routing answer in the API's problem format too, not Fastify's or Node's own.
    frameworkErrors: (error, request, reply) => {
      reply.header('x-request-id', request.id);
      sendProblem(reply, request, frameworkProblem(error));
    },
    clientErrorHandler: answerClientError,
    ajv: {
      customOptions: {
        // Report every offending field at once; reject, never silently drop, unknown fields; never turn a
        // JSON number into an amount string (coercion would accept `"amount": 10`).
        allErrors: true,
        removeAdditional: false,
        coerceTypes: false,
        useDefaults: true,
      },
    },
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as App;

  // Hooks every call runs are callback-style: an async hook costs each request a promise and a microtask.
  // The route is read once here for the hooks after (Fastify builds `routeOptions` anew on every read).
  app.decorateRequest('route', null);
  app.addHook('onRequest', (request, reply, done) => {
    const { url, config } = request.routeOptions;
    request.route = { url: url ?? 'unmatched', config };
    reply.header('x-request-id', request.id);
    // PostgreSQL text cannot hold the NUL character: refused in a path or query as it is in a body.
    if (request.url.includes('%00')) return done(nulRefused());
    done();
  });
  registerJsonParser(app);
  // A path the API has, asked with a method it does not take: 405 with the methods it does (RFC 9110 §15.5.6).
  app.setNotFoundHandler(
    unrouted(app, (request, reply, allowed) =>
      sendProblem(
        reply,
        request,
        allowed.length === 0
          ? new Problem('route_not_found')
          : new Problem(
              'method_not_allowed',
              `${request.method} is not taken here; ${allowed.join(', ')} are`,
            ),
      ),
    ),
  );
  app.setErrorHandler((error: FastifyError, request, reply) =>
    sendProblem(reply, request, toProblem(error, request)),
  );
  return app;
}

/** How a request no route takes is answered, given the methods its path takes (none: no such path). */
type UnroutedAnswer = (
  request: FastifyRequest,
  reply: FastifyReply,
  allowed: readonly string[],
) => FastifyReply;

/** A not-found handler: the methods the API takes at the request's path, in `Allow` when there are some. */
function unrouted(app: App, answer: UnroutedAnswer) {
  return (request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const path = request.url.split('?')[0] ?? '/';
    const allowed = METHODS.filter((method) => app.findRoute({ method, url: path }) !== null);
    if (allowed.length > 0) reply.header('allow', allowed.join(', '));
    return answer(request, reply, allowed);
  };
}

/**
 * Answers the paths under `prefix` that no route takes, and the methods its paths do not take, with
 * `answer` (a standard's own error form) instead of the API's problems.
 */
export function notFoundUnder(app: App, prefix: string, answer: UnroutedAnswer): void {
  app.register(
    async (child) => {
      child.setNotFoundHandler(unrouted(app, answer));
    },
    { prefix },
  );
}

/**
 * How deep a JSON body may nest. Every body the API takes is a few levels deep; what walks a body (schema
 * validation, the idempotency and audit fingerprints) recurses, and a body nested thousands deep would
 * overflow the stack there, after the handler ran, and lose the call's audit record.
 */
export const JSON_DEPTH_MAX = 32;

/**
 * Fastify's own JSON parser (prototype poisoning refused) with two rules more, for `scope` and its children:
 * a body nested deeper than JSON_DEPTH_MAX is refused, and so is one holding the NUL character anywhere,
 * which PostgreSQL text cannot store. `keepText` also keeps the body's text, for a signature over it.
 */
export function registerJsonParser(scope: App, options: { keepText?: boolean } = {}): void {
  const parseJson = scope.getDefaultJsonParser('error', 'error');
  if (scope.hasContentTypeParser('application/json')) scope.removeContentTypeParser('application/json');
  scope.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = String(body);
    if (options.keepText) request.jsonText = text;
    if (nestsDeeperThan(text, JSON_DEPTH_MAX)) {
      return done(new Problem('malformed_json', `JSON may nest at most ${JSON_DEPTH_MAX} levels`), undefined);
    }
    parseJson(request, text, (error: Error | null, value?: unknown) => {
      if (error) return done(error, undefined);
      // JSON text carries a NUL only escaped: the cheap search spares every other body the walk.
      if (text.includes('\\u0000') && containsNul(value)) return done(nulRefused(), undefined);
      done(null, value);
    });
  });
}

/** Whether JSON text opens more than `max` arrays and objects inside one another (strings skipped). */
export function nestsDeeperThan(text: string, max: number): boolean {
  // Each level takes a character to open it and one to close it.
  if (text.length <= 2 * max) return false;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // A string: skip to its closing quote, over escaped characters.
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

/** Whether a parsed JSON value or form holds the NUL character in any string, key or value. */
export function containsNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (Array.isArray(value)) return value.some(containsNul);
  if (value !== null && typeof value === 'object')
    return Object.entries(value).some(([key, item]) => key.includes('\u0000') || containsNul(item));
  return false;
}

export const nulRefused = () =>
  new Problem('validation_failed', 'text may not contain the NUL character (U+0000)');

export function sendProblem(reply: FastifyReply, request: FastifyRequest, problem: Problem): FastifyReply {
  if (problem.status === 401) reply.header('www-authenticate', 'Bearer realm="apibank"');
  for (const [name, value] of Object.entries(problem.headers)) reply.header(name, value);
  if (problem.status === 503) reply.header('retry-after', '1');
  return reply
    .code(problem.status)
    .type('application/problem+json')
    .send(JSON.stringify(problem.toJSON(request.url.split('?')[0])));
}

/** A request Fastify could not route: a path that is not percent-encoding, or a segment past 100 characters. */
function frameworkProblem(error: FastifyError): Problem {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH')
    return new Problem('uri_too_long', 'a path segment is longer than 100 characters');
  return new Problem('malformed_request', 'the path is not valid percent-encoding');
}

/**
 * A request Node's HTTP parser refused (a control character in a header, headers too large) or that did not
 * arrive in time: there is no request to answer through Fastify, so the problem is written to the socket,
 * which then closes, as Node and Fastify do.
 */
function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const code: ProblemCode =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? 'request_timeout'
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? 'headers_too_large'
        : 'malformed_request';
  const { status } = PROBLEMS[code];
  const body = JSON.stringify(problemBody(code));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/problem+json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

// Fastify's own request errors (lib/errors.js) by code, as our catalogue's problems.
const FASTIFY_ERRORS: Readonly<Record<string, ProblemCode>> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'malformed_json',
};

function toProblem(error: FastifyError, request: FastifyRequest): Problem {
  if (error instanceof Problem) return error;
  if (error.validation) {
    const errors = error.validation.map((issue): FieldError => {
      const params = issue.params as Record<string, unknown>;
      const child = params.missingProperty ?? params.additionalProperty;
      const field = `/${error.validationContext ?? 'body'}${issue.instancePath}${child === undefined ? '' : `/${String(child)}`}`;
      const message =
        params.additionalProperty !== undefined ? 'is not a known field' : (issue.message ?? 'is not valid');
      return { field, message };
    });
    return new Problem('validation_failed', errors.map((e) => `${e.field} ${e.message}`).join('; '), {
      errors,
    });
  }
  const fastifyProblem = error.code && FASTIFY_ERRORS[error.code];
  if (fastifyProblem) return new Problem(fastifyProblem, error.message);
  if (error instanceof SyntaxError && error.statusCode === 400)
    return new Problem('malformed_json', error.message);
  if (error instanceof QueueFullError)
    return new Problem('service_unavailable', `${error.busy}; retry shortly`);
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return new Problem('validation_failed', error.message);
  }
  // A programmer error: log it whole, answer opaquely with the id that finds the log line.
  request.log.error({ err: error }, 'unhandled error');
  return new Problem('internal_error', `request ${request.id} failed; quote this id when reporting it`);
}

/** An encapsulated child context, typed like its parent: hooks added inside never reach siblings. */
export function scoped(app: App, build: (scope: App) => void | Promise<void>): void {
  app.register(async (child) => build(child as unknown as App));
}
