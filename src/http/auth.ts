import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { checks } from './openapi.ts';
import { Problem } from './problems.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set once the operator's bearer token checked out. */
    operator?: boolean;
  }
}

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Whether a request sends `Authorization: Bearer <token>` (RFC 6750 §2.1). Both sides are hashed first so the
 * comparison takes the same time whatever the length or content of the guess.
 */
export function bearerTokenCheck(token: string): (request: FastifyRequest) => boolean {
  const expected = digest(token);
  return (request) => {
    const match = /^Bearer ([\x21-\x7e]+)$/.exec(request.headers.authorization ?? '');
    return match?.[1] !== undefined && timingSafeEqual(digest(match[1]), expected);
  };
}

/** An onRequest hook admitting only the operator's bearer token. */
export function requireBearerToken(token: string) {
  const sends = bearerTokenCheck(token);
  return checks('operatorToken', async (request: FastifyRequest): Promise<void> => {
    if (!sends(request)) {
      throw new Problem('unauthorized', 'send the operator token as Authorization: Bearer <token>');
    }
    request.operator = true;
  });
}
