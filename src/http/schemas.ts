// Building blocks for response schemas. Fastify serialises a response through its schema
// (fast-json-stringify): a property the schema does not declare is dropped, a value of another type is
// coerced, and a missing required property is a 500. So every view declares exactly what its builder
// returns: optional properties as Type.Optional, nullable ones with Nullable, open-ended maps with
// additionalProperties: true. src/http/openapi.test.ts checks that every operation has a success schema.
import { type Static, type TSchema, Type } from 'typebox';

export const Uuid = Type.String({ format: 'uuid' });
export const DateTime = Type.String({ format: 'date-time' });
/** A calendar date, YYYY-MM-DD. */
export const DateOnly = Type.String({ format: 'date' });
export const CurrencyCode = Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217' });
/** Money in JSON: never a number. Balances may be negative; instructed amounts never are. */
export const Decimal = Type.String({
  pattern: '^-?[0-9]+(\\.[0-9]+)?$',
  description: "decimal string with the currency's ISO 4217 decimals",
});
export const NextCursor = Type.Union([Type.String(), Type.Null()], {
  description: 'send as `cursor` for the next page; null on the last page',
});
/** A JSON object whose keys the API does not fix (metadata, a rule's parameters, a check's details). */
export const OpenObject = Type.Object({}, { additionalProperties: true });

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
/** An array that the builder may hand over as a readonly one (the domain types' arrays are readonly). */
export const ReadonlyList = <T extends TSchema>(items: T) =>
  Type.Unsafe<readonly Static<T>[]>(Type.Array(items));

// A union of literals would make the serialiser validate the value and answer 500 for one the schema does
// not list yet; an enum on a string type documents the values and serialises any string.
export const StringEnum = <const T extends readonly string[]>(
  values: T,
  options: { description?: string } = {},
) => Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
export const NullableStringEnum = <const T extends readonly string[]>(values: T) =>
  Type.Unsafe<T[number] | null>({ type: ['string', 'null'], enum: [...values, null] });

/** A file sent as its bytes (a PDF, an image): never serialised, only documented. */
export const Binary = Type.Unsafe<Buffer>({ type: 'string', format: 'binary' });

/** For 204: documented without a body (a `null` type is what @fastify/swagger omits content for). */
export const NoContent = Type.Unsafe<void>({ type: 'null', description: 'No content' });
