// Bad input gets a clear 4xx problem, never a 5xx: every operation of the API reference (/openapi.json) is
// called by a party it admits, with malformed path parameters, query values and bodies, and every answer
// must be below 500 and, when it refuses, application/problem+json. The inputs are fixed lists, so a
// failure names the request that broke and reruns the same way.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import type { BuiltApp } from '../main.ts';
import { createCustomer, newClientApp, signUpDeveloper, startBank } from '../testing/bank.ts';
import { inProcess } from '../testing/calls.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';

const TOKEN = 'robustness-test-operator-token-0123456789';
const PASSWORD = 'robustness test password';

interface Schema {
  readonly type?: string | readonly string[];
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly items?: Schema;
  readonly anyOf?: readonly Schema[];
  readonly enum?: readonly unknown[];
  readonly const?: unknown;
  readonly pattern?: string;
  readonly format?: string;
  readonly minimum?: number;
}
interface Operation {
  readonly security?: readonly Record<string, unknown>[];
  readonly parameters?: readonly { name: string; in: string; schema?: Schema }[];
  readonly requestBody?: { content?: Record<string, { schema?: Schema }> };
}

// Values no parameter or field of this API takes, of every JSON type and of the shapes that broke it before:
// long text, a NUL, a lone surrogate, numbers past every range, times PostgreSQL cannot store.
const BAD_TEXT = [
  '',
  'x',
  '-1',
  '1e309',
  '99999999999999999999999',
  'a'.repeat(3000),
  '\u0000',
  '\ud800',
  '0000-01-01T00:00:00Z',
  '9999-12-31T23:00:00-23:59',
  '2027-02-30',
  // A UUID as JSON Schema's `uuid` format takes it (RFC 4122's URN form), which PostgreSQL's uuid does not.
  'urn:uuid:0190a8f0-0000-7000-8000-000000000000',
];
const BAD_VALUES: readonly unknown[] = [...BAD_TEXT, null, -1, 0, 1.5, 1e308, true, [], {}, ['a', 'b']];
const BAD_IDS = [
  'x',
  '0',
  'a'.repeat(101),
  '%E0%A4%A',
  '00000000-0000-0000-0000-000000000000',
  '%00',
  'urn:uuid:0190a8f0-0000-7000-8000-000000000000',
];
const DEEP = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
const BAD_BODIES = ['', 'null', '[]', '"text"', '123', '{', '{}', DEEP, '{"__proto__":{"admin":true}}'];

// A lone surrogate has no UTF-8 form: in a query it is sent as the bytes a careless encoder would write.
const queryText = (value: string) => (value === '\ud800' ? '%ED%A0%80' : encodeURIComponent(value));

/** A value of the right shape for `schema`, for the fields a variant leaves alone. */
function sample(schema: Schema | undefined, depth = 0): unknown {
  if (!schema || depth > 6) return 'x';
  if (schema.const !== undefined) return schema.const;
  if (schema.enum) return schema.enum[0];
  if (schema.anyOf?.[0]) return sample(schema.anyOf[0], depth + 1);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'object':
      return Object.fromEntries(
        Object.entries(schema.properties ?? {}).map(([name, property]) => [
          name,
          sample(property, depth + 1),
        ]),
      );
    case 'array':
      return [sample(schema.items, depth + 1)];
    case 'integer':
    case 'number':
      return schema.minimum ?? 1;
    case 'boolean':
      return true;
    case 'string':
      return schema.format === 'uri' ? 'https://example.com/hook' : 'x';
    default:
      return 'x';
  }
}

for (const database of testDatabases()) {
  describe(`bad input to every operation on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    const credentials: Record<string, Record<string, string>> = {};

    before(async () => {
      db = await database.open();
      const bank = await startBank(db, { adminToken: TOKEN });
      built = bank.built;
      const operator = { authorization: `Bearer ${TOKEN}` };
      const developer = await signUpDeveloper(built.app, 'robust-developer@example.com', PASSWORD);
      // One plan with every product and room for every call: a limit must not answer before the input is read.
      const products = (await built.app.inject({ url: '/v1/admin/products', headers: operator })).json() as {
        products: { id: string }[];
      };
      const plan = await built.app.inject({
        method: 'PUT',
        url: '/v1/admin/plans/robust',
        headers: operator,
        payload: {
          name: 'Robust',
          productIds: products.products.map((product) => product.id),
          ratePerSecond: 100_000,
          ratePerMinute: 6_000_000,
          dailyQuota: 1_000_000_000,
          requiresApproval: false,
        },
      });
      assert.equal(plan.statusCode, 200, plan.body);
      const scopes = ['accounts', 'payments', 'funds_confirmation', 'onboarding'];
      const app = await newClientApp(bank, developer, {
        name: 'Robust',
        scopes,
        redirectUri: 'http://localhost/cb',
      });
      const subscribed = await built.app.inject({
        method: 'PUT',
        url: `/v1/apps/${app.id}/subscription`,
        headers: developer,
        payload: { planId: 'robust' },
      });
      assert.equal(subscribed.statusCode, 200, subscribed.body);
      await createCustomer(built, { username: 'robust', password: PASSWORD });
      const cookie = await inProcess(() => built.app).signIn('robust', PASSWORD);
      Object.assign(credentials, {
        operatorToken: operator,
        developerToken: developer,
        accessToken: { authorization: `Bearer ${app.appToken}` },
        customerSession: { cookie },
      });
    });
    after(async () => {
      await built?.app.close();
      await db?.close();
    });

    it('answers every malformed request below 500, refusals as problems', async () => {
      const document = (await built.app.inject('/openapi.json')).json() as {
        paths: Record<string, Record<string, Operation>>;
      };
      const failures: string[] = [];
      let calls = 0;
      const check = (what: string, response: LightMyRequestResponse) => {
        calls++;
        const type = String(response.headers['content-type'] ?? '');
        if (
          response.statusCode >= 500 ||
          (response.statusCode >= 400 && !type.startsWith('application/problem+json'))
        )
          failures.push(`${what} → ${response.statusCode} ${type} ${response.body.slice(0, 200)}`);
      };
      for (const [template, operations] of Object.entries(document.paths)) {
        for (const [method, operation] of Object.entries(operations)) {
          const verb = method.toUpperCase() as 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
          const scheme = Object.keys(operation.security?.[0] ?? {})[0];
          const headers = { ...(scheme && credentials[scheme]), 'idempotency-key': randomUUID() };
          const pathParams = (operation.parameters ?? []).filter((p) => p.in === 'path');
          const queryParams = (operation.parameters ?? []).filter((p) => p.in === 'query');
          const bodySchema = operation.requestBody?.content?.['application/json']?.schema;
          const valid = bodySchema ? sample(bodySchema) : undefined;
          const url = (values: Record<string, string>, query = '') =>
            `${template.replace(/\{(\w+)\}/g, (_, name: string) => values[name] ?? randomUUID())}${query}`;
          const call = (what: string, requestUrl: string, payload?: string) =>
            built.app
              .inject({
                method: verb,
                url: requestUrl,
                headers: {
                  ...headers,
                  'idempotency-key': randomUUID(),
                  ...(payload !== undefined && { 'content-type': 'application/json' }),
                },
                ...(payload !== undefined && { payload }),
              })
              .then((response) => check(`${verb} ${what}`, response));
          const body = valid === undefined ? undefined : JSON.stringify(valid);

          for (const param of pathParams) {
            for (const id of BAD_IDS)
              await call(`${template} ${param.name}=${id.slice(0, 20)}`, url({ [param.name]: id }), body);
          }
          for (const param of queryParams) {
            for (const value of BAD_TEXT) {
              await call(
                `${template}?${param.name}=${value.slice(0, 20)}`,
                url({}, `?${param.name}=${queryText(value)}`),
                body,
              );
            }
          }
          if (bodySchema) {
            for (const raw of BAD_BODIES) await call(`${template} body ${raw.slice(0, 20)}`, url({}), raw);
            if (valid !== null && typeof valid === 'object' && !Array.isArray(valid)) {
              for (const field of Object.keys(valid)) {
                for (const value of BAD_VALUES) {
                  const payload = JSON.stringify({ ...valid, [field]: value });
                  await call(`${template} ${field}=${JSON.stringify(value).slice(0, 20)}`, url({}), payload);
                }
              }
            }
          }
        }
      }
      assert.ok(calls > 1000, `only ${calls} calls: is the API reference empty?`);
      assert.deepEqual(failures, []);
    });
  });
}
