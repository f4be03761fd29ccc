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
 * An onRequest hook admitting only `Authorization: Bearer <token>` (RFC 6750 §2.1). Both sides are hashed
 * first so the comparison takes the same time whatever the length or content of the guess.
 */
export function requireBearerToken(token: string) {
  const expected = digest(token);
  return checks('operatorToken', async (request: FastifyRequest): Promise<void> => {
    const match = /^Bearer ([\x21-\x7e]+)$/.exec(request.headers.authorization ?? '');
    if (!match?.[1] || !timingSafeEqual(digest(match[1]), expected)) {
      throw new Problem('unauthorized', 'send the operator token as Authorization: Bearer <token>');
    }
    request.operator = true;
  });
}
