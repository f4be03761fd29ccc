import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { type Db, openDb } from '../db/db.ts';
import { migrate } from '../db/migrate.ts';
import { buildApp } from '../main.ts';
import { generateOAuthKeys } from '../oauth/keys.ts';
import { testPii } from '../testing/pii.ts';
import type { App } from './app.ts';

describe('API reference', () => {
  let db: Db;
  let app: App;
  let document: {
    openapi: string;
    paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>>;
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
    for (const hidden of ['/oauth/*', '/interaction/{uid}', '/metrics', '/me/consents']) {
      assert.equal(document.paths[hidden], undefined, `${hidden} is not part of the JSON API`);
    }
  });

  it('serves an interactive reference at /docs', async () => {
    const page = await app.inject('/docs/');
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /swagger-ui/i);
  });
});
