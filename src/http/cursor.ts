// Pagination: cursors are opaque to clients; inside, a kind and the position after which the next page
// starts. The kind keeps a cursor from one list from being replayed against another.
import { Type } from 'typebox';
import { Problem } from './problems.ts';

// Query strings are text and the app never coerces types (src/http/app.ts), so a page size is digits,
// held to the list's maximum by `pageLimit`.
export const PageLimit = Type.String({ pattern: '^[1-9][0-9]{0,3}$', description: 'Page size' });
/** Where a page starts: the previous page's `nextCursor`. */
export const PageCursor = Type.String({ maxLength: 128 });
/** A list's query when it has no filters: the cursor and the page size, nothing else. */
export const PageQuery = Type.Object(
  { cursor: Type.Optional(PageCursor), limit: Type.Optional(PageLimit) },
  { additionalProperties: false },
);

export function pageLimit(text: string | undefined, fallback: number, max: number): number {
  const limit = text === undefined ? fallback : Number(text);
  if (limit > max) {
    throw new Problem('validation_failed', `/querystring/limit must be at most ${max}`, {
      errors: [{ field: '/querystring/limit', message: `must be at most ${max}` }],
    });
  }
  return limit;
}

export const CURSOR_POSITION = {
  /** A UUID (time-ordered v7 ids). */
  uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  /** A positive sequence number; 18 digits stay below 2^63, so the database never overflows on it. */
  seq: /^[1-9][0-9]{0,17}$/,
  /** An IBAN as the bank stores it: upper case, no spaces. */
  iban: /^[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}$/,
} as const;

export function encodeCursor(kind: string, position: string): string {
  return Buffer.from(`${kind}:${position}`).toString('base64url');
}

/**
 * One page of a list read with `limit + 1` rows: the first `limit`, and the cursor after the last of them
 * when the extra row shows there is more.
 */
export function pageOf<Row>(
  rows: readonly Row[],
  limit: number,
  kind: string,
  positionOf: (last: Row) => string,
): { rows: Row[]; nextCursor: string | null } {
  const last = rows.length > limit ? rows[limit - 1] : undefined;
  return {
    rows: rows.slice(0, limit),
    nextCursor: last === undefined ? null : encodeCursor(kind, positionOf(last)),
  };
}

export function decodeCursor(cursor: string, kind: string, position: RegExp): string {
  const text = Buffer.from(cursor, 'base64url').toString();
  const value = text.slice(kind.length + 1);
  if (!text.startsWith(`${kind}:`) || !position.test(value)) throw new Problem('invalid_cursor');
  return value;
}
