import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type BuiltApp, buildApp } from '../main.ts';
import { generateOAuthKeys, type OAuthKeys } from '../oauth/keys.ts';
import { registerApp, signUpDeveloper } from '../testing/bank.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { testPii } from '../testing/pii.ts';
import { type AuditEntry, AuditLog, recordHash } from './service.ts';

const TOKEN = 'audit-test-operator-token-0123456789abcdef';
const admin = { authorization: `Bearer ${TOKEN}` };

/** An anonymous GET of `route`, as the hook records one. */
const anonymousCall = (route: string, requestId: string, at = new Date()): AuditEntry => ({
  at,
  actorType: 'anonymous',
  actorId: null,
  appId: null,
  customerId: null,
  consentIds: null,
  method: 'GET',
  route,
  status: 200,
  requestId,
  bodyHash: null,
});

for (const database of testDatabases()) {
  describe(`audit chain on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let keys: OAuthKeys;
    let audit: AuditLog;

    before(async () => {
      db = await database.open();
      keys = await generateOAuthKeys();
      built = buildApp({
        db,
        adminToken: TOKEN,
        oauth: { issuer: 'http://127.0.0.1:1', keys },
        pii: await testPii(db),
      });
      assert.ok(built.audit);
      audit = built.audit;
      await built.app.ready();
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    const verify = async () => (await built.app.inject({ url: '/v1/audit/verify', headers: admin })).json();

    it('records every API call with its actor, but never a body', async () => {
      const password = 'a secret password that must not leak';
      await built.app.inject({
        method: 'POST',
        url: '/v1/developers',
        payload: { name: 'Eve', email: 'eve@example.com', password },
      });
      await built.app.inject({ url: '/v1/ledger/accounts', headers: { authorization: 'Bearer wrong' } });
      await built.app.inject({
        method: 'POST',
        url: '/v1/ledger/accounts',
        headers: admin,
        payload: { currency: 'EUR', normalBalance: 'credit' },
      });
      await built.app.inject({ url: '/health/live' });
      await audit.flush();
      const rows = await db.query<{
        actor_type: string;
        method: string;
        route: string;
        status: number;
        body_hash: string | null;
      }>('select actor_type, method, route, status, body_hash from audit_records order by seq');
      assert.deepEqual(
        rows.map((r) => [r.actor_type, r.method, r.route, r.status, r.body_hash === null]),
        [
          ['anonymous', 'POST', '/v1/developers', 201, false],
          ['anonymous', 'GET', '/v1/ledger/accounts', 401, true],
          ['operator', 'POST', '/v1/ledger/accounts', 201, false],
        ],
      );
      const dump = JSON.stringify(await db.query('select * from audit_records'), (_, v) =>
        typeof v === 'bigint' ? String(v) : v,
      );
      assert.ok(!dump.includes(password) && !dump.includes('eve@example.com'));
      assert.deepEqual(await verify(), { ok: true, records: 3, checkpoints: 0 });
    });

    it('records a call whose body nests too deep, and the call changes nothing', async () => {
      const developer = await signUpDeveloper(built.app, 'deep-body@example.com', 'deep body password');
      const app = await registerApp(built.app, developer, {
        name: 'Deep',
        redirectUris: ['http://localhost/cb'],
        scopes: ['accounts'],
        tokenEndpointAuthMethod: 'client_secret_basic',
      });
      const secretOf = async (id: string) =>
        (
          await db.query<{ secret: unknown }>('select client_secret_enc as secret from apps where id = $1', [
            id,
          ])
        )[0]?.secret;
      const secret = await secretOf(app.id);
      assert.ok(secret, 'a sandbox app keeps its secret, sealed');
      await audit.flush();
      const before = audit.length;
      // Rotating a secret takes no body, so no schema looks at one: only the parser stands in the way. A
      // body this deep once overflowed the stack while fingerprinting it, after the secret had rotated,
      // and the call went unrecorded.
      const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
      for (const idempotencyKey of [undefined, 'deep-body-1']) {
        const rotate = await built.app.inject({
          method: 'POST',
          url: `/v1/apps/${app.id}/secret`,
          headers: {
            ...developer,
            'content-type': 'application/json',
            ...(idempotencyKey && { 'idempotency-key': idempotencyKey }),
          },
          payload: deep,
        });
        assert.equal(rotate.statusCode, 400, rotate.body);
        assert.equal(rotate.json().code, 'malformed_json');
      }
      await audit.flush();
      assert.equal(audit.length, before + 2, 'both refused calls are recorded');
      assert.deepEqual(await secretOf(app.id), secret, 'nothing rotated');
    });

    it('finds an edited record, a deleted record, and a chain rebuilt without the signing key', async () => {
      for (let i = 0; i < 5; i++) await built.app.inject({ url: '/v1/ledger/accounts', headers: admin });
      await audit.flush();
      const kept = await audit.checkpoint(new Date());
      assert.ok(kept, 'a checkpoint is returned, for the server to log');
      const before = await verify();
      assert.equal(before.ok, true);
      assert.equal(before.checkpoints, 1);

      await db.query('update audit_records set status = 200 where seq = 2');
      assert.deepEqual((await verify()).firstBroken, {
        seq: 2,
        reason: 'its content does not match its hash',
      });
      await db.query('update audit_records set status = 401 where seq = 2');

      // An attacker who edits a record and recomputes every later hash still differs from the checkpoint.
      const rows = await db.query<Record<string, unknown>>('select * from audit_records order by seq');
      let prevHash = '0'.repeat(64);
      for (const row of rows) {
        const record = {
          seq: Number(row.seq),
          at: row.at as Date,
          actorType: row.actor_type as 'anonymous',
          actorId: row.actor_id as string | null,
          appId: row.app_id as string | null,
          customerId: row.customer_id as string | null,
          consentIds: row.consent_ids as string | null,
          method: row.method as string,
          route: row.route as string,
          status: Number(row.seq) === 3 ? 500 : Number(row.status),
          requestId: row.request_id as string,
          bodyHash: row.body_hash as string | null,
          prevHash,
        };
        prevHash = recordHash(record);
        await db.query('update audit_records set status = $2, prev_hash = $3, hash = $4 where seq = $1', [
          record.seq,
          record.status,
          record.prevHash,
          prevHash,
        ]);
      }
      await db.query('update audit_head set hash = $1', [prevHash]);
      const rebuilt = await verify();
      assert.equal(rebuilt.ok, false);
      assert.match(rebuilt.firstBroken.reason, /signed checkpoint/);

      // Who can write the database can also delete the checkpoints stored with the chain: then only a
      // checkpoint kept outside it (the server logs each one) shows the rebuild.
      await db.query('delete from audit_checkpoints');
      assert.equal((await audit.verify()).ok, true, 'the database alone no longer tells');
      assert.deepEqual((await audit.verify([kept.jws])).firstBroken, {
        seq: kept.seq,
        reason: 'the chain differs from a checkpoint kept outside the database',
      });
      // Nor can the chain be cut short below a kept checkpoint, head and all.
      const [cut] = await db.query<{ hash: string }>('select hash from audit_records where seq = $1', [
        kept.seq - 1,
      ]);
      assert.ok(cut);
      await db.query('delete from audit_records where seq >= $1', [kept.seq]);
      await db.query('update audit_head set seq = $1, hash = $2', [kept.seq - 1, cut.hash]);
      assert.equal((await audit.verify()).ok, true, 'the database alone no longer tells');
      assert.deepEqual((await audit.verify([kept.jws])).firstBroken, {
        seq: kept.seq,
        reason: `the chain ends at record ${kept.seq - 1}, before a checkpoint kept outside it (record ${kept.seq})`,
      });
      const forged = `${kept.jws.slice(0, -4)}AAAA`;
      assert.match(String((await audit.verify([forged])).firstBroken?.reason), /does not verify/);
    });

    it("audits the authorization server's own calls, with the client it authenticated", async () => {
      const developer = await signUpDeveloper(built.app, 'audit-oauth@example.com');
      const app = await registerApp(built.app, developer, {
        name: 'Audited',
        redirectUris: ['http://localhost/cb'],
        scopes: ['payments'],
        tokenEndpointAuthMethod: 'client_secret_basic',
      });
      const basic = Buffer.from(`${app.id}:${app.clientSecret}`).toString('base64');
      const token = await built.app.inject({
        method: 'POST',
        url: '/oauth/token',
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'grant_type=client_credentials&scope=payments',
      });
      assert.equal(token.statusCode, 200, token.body);
      await audit.flush();
      const rows = await db.query<{
        actor_type: string;
        app_id: string;
        route: string;
        status: number;
        body_hash: string | null;
      }>(
        `select actor_type, app_id, route, status, body_hash from audit_records where route = '/oauth/token'`,
      );
      assert.equal(rows.length, 1, 'audited once, not by both Fastify and the provider');
      assert.deepEqual([rows[0]?.actor_type, rows[0]?.app_id, rows[0]?.status], ['app', app.id, 200]);
      assert.match(rows[0]?.body_hash ?? '', /^[0-9a-f]{64}$/);
      const dump = JSON.stringify(
        await db.query(`select * from audit_records where route = '/oauth/token'`),
        (_, v) => (typeof v === 'bigint' ? String(v) : v),
      );
      assert.ok(!dump.includes(String(app.clientSecret)));
    });

    it('stores each record at its own time, to the millisecond', async () => {
      const times = [0, 0, 1, 1000, 0].map((offset) => new Date(Date.UTC(2026, 10, 27, 12) + offset));
      for (const [i, at] of times.entries()) audit.record(anonymousCall('/times', `times-${i}`, at));
      await audit.flush();
      const stored = await db.query<{ at: Date }>(
        `select at from audit_records where route = '/times' order by seq`,
      );
      assert.deepEqual(
        stored.map((row) => row.at.toISOString()),
        times.map((at) => at.toISOString()),
      );
      assert.equal((await verify()).ok, true);
    });

    it('keeps one chain when two processes append at once', async () => {
      const fresh = await database.open();
      try {
        const logs = [
          new AuditLog({ db: fresh, signingKey: keys.auditSigningKey }),
          new AuditLog({ db: fresh, signingKey: keys.auditSigningKey }),
        ];
        for (const [n, log] of logs.entries()) {
          for (let i = 0; i < 1500; i++) log.record(anonymousCall(`/p${n}`, `${n}-${i}`));
        }
        await Promise.all(logs.map((log) => log.flush()));
        assert.deepEqual(await logs[0]?.verify(), { ok: true, records: 3000, checkpoints: 0 });
      } finally {
        await fresh.close();
      }
    });
  });
}
