// A check to run the suite under, for response schemas: Fastify serialises a response through its schema
// (fast-json-stringify), which drops a property the schema does not declare and coerces a value of another
// type, silently. Preloaded, this compares every JSON response as the handler built it with what was sent,
// and fails the test file on any difference:
//
//   node --import ./src/testing/response-guard.ts --test "src/**/*.test.ts"
//
// It reaches every Fastify instance through Fastify's `fastify.initialization` diagnostics channel, so no
// test needs to know about it. A difference is reported on stderr with the route and the JSON Pointer.
import diagnostics from 'node:diagnostics_channel';
import type { FastifyInstance, FastifyRequest } from 'fastify';

const DIFFERENCES_MAX = 20;
const built = new WeakMap<FastifyRequest, unknown>();

/** The paths where `sent` differs from `built`: dropped, added or changed values. */
export function differences(built: unknown, sent: unknown, at = '', found: string[] = []): string[] {
  if (found.length >= DIFFERENCES_MAX) return found;
  const isObject = (value: unknown): value is Record<string, unknown> =>
    value !== null && typeof value === 'object';
  if (!isObject(built) || !isObject(sent) || Array.isArray(built) !== Array.isArray(sent)) {
    if (JSON.stringify(built) !== JSON.stringify(sent)) {
      found.push(`${at || '/'}: ${JSON.stringify(built)} was sent as ${JSON.stringify(sent)}`);
    }
    return found;
  }
  for (const key of new Set([...Object.keys(built), ...Object.keys(sent)])) {
    if (!(key in sent)) found.push(`${at}/${key}: dropped`);
    else if (!(key in built)) found.push(`${at}/${key}: added`);
    else differences(built[key], sent[key], `${at}/${key}`, found);
  }
  return found;
}

diagnostics.subscribe('fastify.initialization', (message) => {
  const { fastify } = message as { fastify: FastifyInstance };
  fastify.addHook('preSerialization', async (request, _reply, payload) => {
    // What a schema-less route would send: JSON.stringify of the handler's value (a bigint cannot be).
    try {
      built.set(request, JSON.parse(JSON.stringify(payload) ?? 'null'));
    } catch {}
    return payload;
  });
  fastify.addHook('onSend', async (request, reply, payload) => {
    if (!built.has(request) || typeof payload !== 'string') return payload;
    const expected = built.get(request);
    built.delete(request);
    let sent: unknown;
    try {
      sent = JSON.parse(payload);
    } catch {
      return payload;
    }
    const found = differences(expected, sent);
    if (found.length > 0) {
      process.stderr.write(
        `response-guard: ${request.method} ${request.routeOptions.url} ${reply.statusCode} lost or changed:\n  ${found.join('\n  ')}\n`,
      );
      process.exitCode = 1;
    }
    return payload;
  });
});
