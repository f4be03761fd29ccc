// Errors and headers the Berlin Group way, for every route of the facade: bodies in the specification's
// `Error4xx_NG_AIS` form (`tppMessages` of category, code, text; not problem+json), the statuses the AIS
// operations declare, and `X-Request-ID` on every response: the caller's echoed, or a new one when it sent
// none or one that is not a UUID (the spec marks the response header required, even on errors).
import { isIP } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { v4 as uuidv4 } from 'uuid';
import { type App, notFoundUnder } from '../../http/app.ts';
import { Problem } from '../../http/problems.ts';

/**
 * The NextGenPSD2 message codes used here (Implementation Guidelines 1.3.9, section 14.11, AIS): the file
 * types them as plain strings, the guidelines fix the set and which status each comes with.
 */
export const BG_CODES = {
  formatError: 'FORMAT_ERROR',
  parameterNotSupported: 'PARAMETER_NOT_SUPPORTED',
  serviceInvalid: 'SERVICE_INVALID',
  consentUnknown: 'CONSENT_UNKNOWN',
  consentInvalid: 'CONSENT_INVALID',
  consentExpired: 'CONSENT_EXPIRED',
  tokenInvalid: 'TOKEN_INVALID',
  resourceUnknown: 'RESOURCE_UNKNOWN',
  serviceBlocked: 'SERVICE_BLOCKED',
  accessExceeded: 'ACCESS_EXCEEDED',
  // Payment initiation (section 14.11, PIS): a product not offered, one the PSU cannot use, a cancellation
  // of what already executed.
  productUnknown: 'PRODUCT_UNKNOWN',
  productInvalid: 'PRODUCT_INVALID',
  cancellationInvalid: 'CANCELLATION_INVALID',
  // Authorisation sub-resources: a start the resource's state does not allow (409).
  statusInvalid: 'STATUS_INVALID',
  internalServerError: 'INTERNAL_SERVER_ERROR',
} as const;
export type BgCode = (typeof BG_CODES)[keyof typeof BG_CODES];

export type BgStatus = 400 | 401 | 403 | 404 | 405 | 409 | 415 | 429 | 500 | 503;

export interface TppMessage {
  readonly category: 'ERROR';
  readonly code: BgCode;
  readonly text: string;
  readonly path?: string;
}

/** Hyperlinks an error may carry (`_links` of the Error*_NG_* bodies): where the TPP can go on from here. */
export type BgLinks = Readonly<Record<string, { readonly href: string }>>;

/** An error answered as `{ tppMessages: [...] }`; 415 has no body in the specification. */
export class BgError extends Error {
  readonly status: BgStatus;
  readonly messages: readonly TppMessage[];
  readonly headers: Readonly<Record<string, string>>;
  readonly links: BgLinks | undefined;

  constructor(
    status: BgStatus,
    messages: readonly TppMessage[],
    headers: Readonly<Record<string, string>> = {},
    links?: BgLinks,
  ) {
    super(messages.map((message) => message.text).join('; '));
    this.name = 'BgError';
    this.status = status;
    this.messages = messages;
    this.headers = headers;
    this.links = links;
  }

  static of(status: BgStatus, code: BgCode, text: string, path?: string, links?: BgLinks): BgError {
    return new BgError(
      status,
      [{ category: 'ERROR', code, text: clip(text), ...(path && { path }) }],
      {},
      links,
    );
  }
}

// tppMessageText: maxLength 500.
const TEXT_MAX = 500;
const REQUEST_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

declare module 'fastify' {
  interface FastifyRequest {
    bgRequestId?: string;
  }
}

/** The app registry, as the facade needs it: an app's registered redirect URIs. */
export interface RegisteredApps {
  find(id: string): Promise<{ readonly redirectUris: readonly string[] } | undefined>;
}

/**
 * Installs on the facade's scope the request id, the checks of the PSU-IP-Address and TPP-Redirect-URI
 * headers, and the tppMessages error handler.
 */
export function useBgConventions(scope: App, apps: RegisteredApps): void {
  scope.addHook('onRequest', async (request) => {
    const given = request.headers['x-request-id'];
    const valid = typeof given === 'string' && REQUEST_ID.test(given);
    request.bgRequestId = valid ? given : uuidv4();
    // Required on every request of the specification, as a UUID; it is echoed, so nothing else is taken.
    if (!valid) {
      throw BgError.of(
        400,
        BG_CODES.formatError,
        'X-Request-ID is required and must be a UUID',
        'X-Request-ID',
      );
    }
    const psuIp = request.headers['psu-ip-address'];
    if (psuIp !== undefined && (typeof psuIp !== 'string' || isIP(psuIp) === 0)) {
      throw BgError.of(400, BG_CODES.formatError, 'PSU-IP-Address must be an IP address', 'PSU-IP-Address');
    }
  });
  // A redirect the app did not register would fail only at the bank, in front of the PSU: refused here, once
  // the token says whose app it is.
  scope.addHook('preHandler', async (request) => {
    const redirect = request.headers['tpp-redirect-uri'];
    if (redirect === undefined || !request.access) return;
    const app = await apps.find(request.access.clientId);
    if (typeof redirect !== 'string' || !app?.redirectUris.includes(redirect)) {
      throw BgError.of(
        400,
        BG_CODES.formatError,
        'TPP-Redirect-URI must be one of the redirect URIs registered for this app',
        'TPP-Redirect-URI',
      );
    }
  });
  scope.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-request-id', request.bgRequestId ?? uuidv4());
    return payload;
  });
  scope.setErrorHandler((error: FastifyError, request, reply) =>
    sendBgError(reply, toBgError(error, request)),
  );
}

/**
 * Paths under `prefix` that the facade does not have (404 RESOURCE_UNKNOWN), and methods its paths do not
 * take (405 SERVICE_INVALID, with Allow), answered in tppMessages form with the X-Request-ID, as its routes
 * answer.
 */
export function bgNotFound(app: App, prefix: string): void {
  notFoundUnder(app, prefix, (request, reply, allowed) => {
    const given = request.headers['x-request-id'];
    reply.header('x-request-id', typeof given === 'string' && REQUEST_ID.test(given) ? given : uuidv4());
    return sendBgError(
      reply,
      allowed.length > 0
        ? BgError.of(
            405,
            BG_CODES.serviceInvalid,
            `${request.method} is not taken here; it takes ${allowed.join(', ')}`,
          )
        : BgError.of(404, BG_CODES.resourceUnknown, 'no such resource'),
    );
  });
}

function sendBgError(reply: FastifyReply, error: BgError): FastifyReply {
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
  reply.code(error.status);
  // UNSUPPORTED_MEDIA_TYPE_415_AIS declares headers only.
  if (error.status === 415) return reply.send();
  return reply.type('application/json; charset=utf-8').send(
    JSON.stringify({
      tppMessages: error.messages.map((message) => ({ ...message, text: clip(message.text) })),
      ...(error.links && { _links: error.links }),
    }),
  );
}

const clip = (text: string) => (text.length > TEXT_MAX ? `${text.slice(0, TEXT_MAX - 1)}…` : text);

/** The validator's instance path as the guidelines write a path: access.balances. */
function specPath(instancePath: string, child: unknown): string | undefined {
  const parts = [...instancePath.split('/').filter(Boolean), ...(child === undefined ? [] : [String(child)])];
  return parts.length > 0 ? parts.join('.') : undefined;
}

function toBgError(error: FastifyError, request: FastifyRequest): BgError {
  if (error instanceof BgError) return error;
  if (error.validation) {
    return new BgError(
      400,
      error.validation.map((issue) => {
        const params = issue.params as Record<string, unknown>;
        const path = specPath(issue.instancePath, params.missingProperty ?? params.additionalProperty);
        return {
          category: 'ERROR',
          code: BG_CODES.formatError,
          text: clip(
            params.additionalProperty !== undefined
              ? 'is not a field of this request'
              : `${error.validationContext ?? 'body'} ${issue.message ?? 'is not valid'}`,
          ),
          ...(path && { path }),
        };
      }),
    );
  }
  if (error instanceof Problem) return fromProblem(error, request);
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new BgError(415, []);
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    // Malformed JSON, an empty body, a body too large: the request is not one we can read.
    return BgError.of(400, BG_CODES.formatError, error.message);
  }
  request.log.error({ err: error }, 'unhandled error');
  return BgError.of(500, BG_CODES.internalServerError, `request ${request.id} failed; quote this id`);
}

/** The gateway's and the services' problems (src/http/problems.ts) as the guidelines' codes. */
function fromProblem(problem: Problem, request: FastifyRequest): BgError {
  const text = problem.detail ?? problem.message;
  if (problem.status === 401) {
    return new BgError(401, [{ category: 'ERROR', code: BG_CODES.tokenInvalid, text: clip(text) }], {
      'www-authenticate': 'Bearer',
    });
  }
  if (problem.status === 429) {
    return new BgError(
      429,
      [{ category: 'ERROR', code: BG_CODES.accessExceeded, text: clip(text) }],
      problem.headers,
    );
  }
  if (problem.status === 403) return BgError.of(403, BG_CODES.serviceBlocked, text);
  if (problem.code === 'not_found') return BgError.of(404, BG_CODES.resourceUnknown, text);
  if (problem.status === 503) return BgError.of(503, BG_CODES.internalServerError, text);
  if (problem.status >= 500) {
    request.log.warn({ code: problem.code }, 'Berlin Group call failed');
    return BgError.of(500, BG_CODES.internalServerError, text);
  }
  return BgError.of(400, BG_CODES.formatError, text);
}
