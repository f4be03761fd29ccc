import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { type Db, openDb } from '../db/db.ts';
import { migrate } from '../db/migrate.ts';
import { buildApp } from '../main.ts';
import { generateOAuthKeys } from '../oauth/keys.ts';
import { testPii } from '../testing/pii.ts';
import type { App } from './app.ts';

interface DocumentedResponse {
  readonly description: string;
  readonly content?: Record<string, { schema?: object }>;
}

describe('API reference', () => {
  let db: Db;
  let app: App;
  let document: {
    openapi: string;
    paths: Record<
      string,
      Record<string, { security?: unknown[]; responses: Record<string, DocumentedResponse> }>
    >;
  };

  before(async () => {
    db = await openDb({});
    await migrate(db);
    app = buildApp({
      db,
      adminToken: 'openapi-operator-token-0123456789abcdef',
      oauth: { issuer: 'http://127.0.0.1:8080', keys: await generateOAuthKeys() },
      pii: await testPii(db),
    }).app;
    await app.ready();
    document = (await app.inject('/openapi.json')).json();
  });
  after(async () => {
    await app.close();
    await db.close();
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await new Validator().validate(document as never);
    assert.deepEqual(result.errors, undefined);
    assert.equal(result.valid, true);
    assert.equal(document.openapi, '3.1.0');
  });

  it('documents every JSON route with its security and its problem responses', () => {
    for (const path of [
      '/v1/ledger/transfers',
      '/v1/apps',
      '/v1/consents',
      '/v1/admin/plans/{id}',
      '/v1/apps/{id}/usage',
    ]) {
      assert.ok(document.paths[path], `${path} is documented`);
    }
    const transfer = document.paths['/v1/ledger/transfers']?.post;
    assert.deepEqual(transfer?.security, [{ operatorToken: [] }]);
    assert.ok(transfer?.responses['4XX'] && transfer.responses['5XX']);
    assert.deepEqual(document.paths['/v1/consents']?.post?.security, [{ accessToken: [] }]);
    assert.equal(document.paths['/v1/developers']?.post?.security, undefined, 'signing up needs no token');
    for (const hidden of ['/oauth/*', '/interaction/{uid}', '/metrics', '/me/consents', '/open-account']) {
      assert.equal(document.paths[hidden], undefined, `${hidden} is not part of the JSON API`);
    }
  });

  it('names the credential of every operation but the few anyone may call', () => {
    // Signing up and logging in need nothing; everything else needs an access token, a developer's token,
    // a customer's session or the operator's token, and a client must read which from the reference.
    const open = new Set(['POST /v1/developers', 'POST /v1/developers/sessions']);
    const missing = Object.entries(document.paths).flatMap(([path, operations]) =>
      Object.entries(operations)
        .filter(([method, operation]) => {
          const name = `${method.toUpperCase()} ${path}`;
          return path.startsWith('/v1/') && !open.has(name) && !operation.security?.length;
        })
        .map(([method]) => `${method.toUpperCase()} ${path}`),
    );
    assert.deepEqual(missing, []);
  });

  // Fastify serialises a response through its schema, so the schema is also what the reference promises.
  it('gives every operation a schema for each success it answers with', () => {
    const lacking: string[] = [];
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const name = `${method.toUpperCase()} ${path}`;
        const successes = Object.entries(operation.responses).filter(([status]) => status.startsWith('2'));
        if (successes.length === 0) lacking.push(`${name}: no success response`);
        for (const [status, response] of successes) {
          if (status === '204') {
            if (response.content) lacking.push(`${name} ${status}: a body on No Content`);
            continue;
          }
          const media = Object.entries(response.content ?? {});
          if (media.length === 0) lacking.push(`${name} ${status}: no schema`);
          for (const [type, { schema }] of media) {
            if (!schema || Object.keys(schema).length === 0)
              lacking.push(`${name} ${status} ${type}: empty schema`);
          }
        }
      }
    }
    assert.deepEqual(lacking, []);
  });

  it('documents what a success answers with', () => {
    const json = (path: string, method: string, status: string) =>
      document.paths[path]?.[method]?.responses[status]?.content?.['application/json']?.schema;
    const payment = json('/v1/payments/{id}', 'get', '200') as { properties?: Record<string, unknown> };
    for (const property of ['id', 'status', 'instructedAmount', 'statusHistory', 'createdAt']) {
      assert.ok(payment?.properties?.[property], `a payment has ${property}`);
    }
    assert.ok(json('/v1/payments', 'post', '201'), 'a new payment is a 201 with the payment');
    assert.deepEqual(
      Object.keys(
        document.paths['/v1/accounts/{id}/statements/{month}']?.get?.responses['200']?.content ?? {},
      ),
      ['application/json', 'text/csv', 'application/pdf'],
    );
    const deleted = document.paths['/v1/apps/{id}']?.delete?.responses['204'];
    assert.ok(deleted && deleted.content === undefined, 'a deletion answers 204 without a body');
  });

  it('serves an interactive reference at /docs', async () => {
    const page = await app.inject('/docs/');
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /swagger-ui/i);
  });
});
