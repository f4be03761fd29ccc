// Errors and headers the UK Open Banking way, for every route of the facade: bodies in the specification's
// OBErrorResponse1 form (not problem+json), the statuses each operation declares, and
// `x-fapi-interaction-id` on every response, the caller's echoed or a new one (Read/Write API profile,
// "Response Headers").
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { v4 as uuidv4 } from 'uuid';
import { type App, notFoundUnder } from '../../http/app.ts';
import { Problem } from '../../http/problems.ts';

/**
 * OBError1.ErrorCode is a four-letter code of Open Banking's ExternalReason1Code set; the U-codes are its
 * UK-specific ones (the specification's own example: U004 "Permissions field is missing"). NARR
 * (Narrative) says the message carries the reason.
 */
export const OB_ERROR_CODES = {
  fieldExpected: 'U001',
  fieldInvalid: 'U002',
  fieldMissing: 'U004',
  fieldUnexpected: 'U005',
  headerInvalid: 'U006',
  resourceInvalidConsentStatus: 'U009',
  resourceNotFound: 'U011',
  // Message signing (Read/Write API profile): the request's x-jws-signature.
  signatureInvalid: 'U015',
  signatureInvalidClaim: 'U016',
  signatureMissingClaim: 'U017',
  signatureMalformed: 'U018',
  signatureMissing: 'U019',
  narrative: 'NARR',
} as const;
export type ObErrorCode = (typeof OB_ERROR_CODES)[keyof typeof OB_ERROR_CODES];

export interface ObErrorItem {
  readonly ErrorCode: ObErrorCode;
  readonly Message: string;
  readonly Path?: string;
}

/** An error answered in OBErrorResponse1 form; 401, 415 and 429 have no body in the specification. */
export class ObError extends Error {
  readonly status: 400 | 401 | 403 | 409 | 415 | 429 | 500;
  readonly errors: readonly ObErrorItem[];
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    status: 400 | 401 | 403 | 409 | 415 | 429 | 500,
    errors: readonly ObErrorItem[],
    headers: Readonly<Record<string, string>> = {},
  ) {
    super(errors.map((error) => error.Message).join('; '));
    this.name = 'ObError';
    this.status = status;
    this.errors = errors;
    this.headers = headers;
  }

  static of(status: 400 | 403, code: ObErrorCode, message: string, path?: string): ObError {
    return new ObError(status, [{ ErrorCode: code, Message: message, ...(path && { Path: path }) }]);
  }
}

/** Where every UK Open Banking API of the bank lives. */
export const OB_PREFIX = '/open-banking';
const MESSAGE_MAX = 500;
const INTERACTION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

declare module 'fastify' {
  interface FastifyRequest {
    fapiInteractionId?: string;
  }
}

/** Installs the interaction id, the OBErrorResponse1 error handler and the 404 of the facade's scope. */
export function useObConventions(scope: App): void {
  scope.addHook('onRequest', async (request) => {
    const given = request.headers['x-fapi-interaction-id'];
    // FAPI 1.0 Baseline §6.2.1.13: an RFC 4122 UUID; anything else is refused (it is echoed back in a header).
    if (given !== undefined && (typeof given !== 'string' || !INTERACTION_ID.test(given))) {
      request.fapiInteractionId = uuidv4();
      throw ObError.of(400, OB_ERROR_CODES.headerInvalid, 'x-fapi-interaction-id must be a UUID');
    }
    request.fapiInteractionId = given ?? uuidv4();
  });
  scope.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-fapi-interaction-id', request.fapiInteractionId ?? uuidv4());
    return payload;
  });
  scope.setErrorHandler((error: FastifyError, request, reply) =>
    sendObError(reply, toObError(error, request)),
  );
}

/**
 * Paths under `prefix` that the facade does not have (404), and methods its paths do not take (405, with
 * Allow): the specification gives both no body, only the x-fapi-interaction-id its routes echo.
 */
export function obNotFound(app: App, prefix: string): void {
  notFoundUnder(app, prefix, (request, reply, allowed) => {
    const given = request.headers['x-fapi-interaction-id'];
    reply.header(
      'x-fapi-interaction-id',
      typeof given === 'string' && INTERACTION_ID.test(given) ? given : uuidv4(),
    );
    return reply.code(allowed.length > 0 ? 405 : 404).send();
  });
}

function sendObError(reply: FastifyReply, error: ObError): FastifyReply {
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
  reply.code(error.status);
  // The specification gives 401, 415 and 429 no body: sending one would not conform.
  if (error.status === 401 || error.status === 415 || error.status === 429) return reply.send();
  return reply.type('application/json; charset=utf-8').send(
    JSON.stringify({
      Code: `${error.status} ${STATUS_TEXT[error.status]}`,
      Message: clip(error.message || STATUS_TEXT[error.status]),
      Errors: error.errors.map((item) => ({ ...item, Message: clip(item.Message) })),
    }),
  );
}

const STATUS_TEXT = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  409: 'Conflict',
  415: 'UnsupportedMediaType',
  429: 'TooManyRequests',
  500: 'InternalServerError',
} as const;

const clip = (text: string) => (text.length > MESSAGE_MAX ? `${text.slice(0, MESSAGE_MAX - 1)}…` : text);

/** JSON-pointer-ish paths from the schema validator as the specification writes them: Data.Permissions. */
function specPath(instancePath: string, child: unknown): string | undefined {
  const parts = [...instancePath.split('/').filter(Boolean), ...(child === undefined ? [] : [String(child)])];
  return parts.length > 0 ? parts.join('.') : undefined;
}

function toObError(error: FastifyError, request: FastifyRequest): ObError {
  if (error instanceof ObError) return error;
  if (error.validation) {
    return new ObError(
      400,
      error.validation.map((issue) => {
        const params = issue.params as Record<string, unknown>;
        const missing = params.missingProperty;
        const path = specPath(issue.instancePath, missing ?? params.additionalProperty);
        return {
          ErrorCode: missing === undefined ? OB_ERROR_CODES.fieldInvalid : OB_ERROR_CODES.fieldMissing,
          Message:
            params.additionalProperty !== undefined
              ? 'is not a field of this request'
              : `${error.validationContext ?? 'body'} ${issue.message ?? 'is not valid'}`,
          ...(path && { Path: path }),
        };
      }),
    );
  }
  if (error instanceof Problem) return fromProblem(error, request);
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new ObError(415, []);
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    // Malformed JSON, an empty body, a body too large: the request is not one we can read.
    return ObError.of(400, OB_ERROR_CODES.fieldInvalid, error.message);
  }
  request.log.error({ err: error }, 'unhandled error');
  return new ObError(500, [
    { ErrorCode: OB_ERROR_CODES.narrative, Message: `request ${request.id} failed; quote this id` },
  ]);
}

/** The gateway's and the services' problems (src/http/problems.ts) in the statuses the spec declares. */
function fromProblem(problem: Problem, request: FastifyRequest): ObError {
  const message = problem.detail ?? problem.message;
  if (problem.status === 401) return new ObError(401, [], { 'www-authenticate': 'Bearer' });
  if (problem.status === 429) return new ObError(429, [], problem.headers);
  if (problem.status === 403) return ObError.of(403, OB_ERROR_CODES.narrative, message);
  if (problem.code === 'not_found') return ObError.of(400, OB_ERROR_CODES.resourceNotFound, message);
  if (problem.status >= 500) {
    request.log.warn({ code: problem.code }, 'UK Open Banking call failed');
    return new ObError(500, [{ ErrorCode: OB_ERROR_CODES.narrative, Message: message }]);
  }
  return ObError.of(400, OB_ERROR_CODES.narrative, message);
}
