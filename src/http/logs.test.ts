// Logs never hold secrets or personal data: a whole session of calls is logged at the most verbose level
// and the captured stream is searched for every secret and personal value those calls carried.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import * as client from 'openid-client';
import pino from 'pino';
import { type Db, openDb } from '../db/db.ts';
import { migrate } from '../db/migrate.ts';
import type { BuiltApp } from '../main.ts';
import { insecure, registerApp, signUpDeveloper, startBank } from '../testing/bank.ts';
import { TestBrowser } from '../testing/browser.ts';

const ADMIN_TOKEN = 'logs-test-operator-token-0123456789abcdef';
const DEVELOPER_PASSWORD = 'developer password never logged';
const CUSTOMER_PASSWORD = 'customer password never logged';

describe('logs', () => {
  let db: Db;
  let built: BuiltApp;
  let issuer: string;
  const lines: string[] = [];

  before(async () => {
    db = await openDb({});
    await migrate(db);
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    ({ built, issuer } = await startBank(db, {
      adminToken: ADMIN_TOKEN,
      logger: pino({ level: 'trace' }, sink),
      routes: ({ app, requireAccess }) => {
        assert.ok(requireAccess);
        app.get('/v1/test/whoami', { onRequest: requireAccess('payments') }, async () => ({ ok: true }));
      },
    }));
  });
  after(async () => {
    await built.app.close();
    await db.close();
  });

  it('hold no password, secret, token or personal data', async () => {
    const developer = await signUpDeveloper(built.app, 'dev.private@example.com', DEVELOPER_PASSWORD);
    const app = await registerApp(built.app, developer, {
      name: 'Logging App',
      redirectUris: ['http://localhost/cb'],
      scopes: ['payments', 'onboarding'],
      tokenEndpointAuthMethod: 'client_secret_basic',
    });
    const config = await client.discovery(
      new URL(issuer),
      app.id,
      undefined,
      client.ClientSecretBasic(app.clientSecret ?? ''),
      insecure,
    );
    const { access_token: accessToken } = await client.clientCredentialsGrant(config, { scope: 'payments' });
    await fetch(`${issuer}/v1/test/whoami`, { headers: { authorization: `Bearer ${accessToken}` } });
    await fetch(`${issuer}/v1/test/whoami`, { headers: { authorization: 'Bearer forged.token.value' } });
    await built.app.inject({
      url: '/v1/ledger/accounts',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    await built.customerAuth?.createLogin({
      username: 'frank.private',
      password: CUSTOMER_PASSWORD,
      displayName: 'Frank Privatename',
      email: 'frank.private@example.com',
      emailVerified: true,
    });
    const browser = new TestBrowser(issuer);
    await browser.postForm('/me/sign-in', {
      username: 'frank.private',
      password: CUSTOMER_PASSWORD,
      code: '123456',
    });
    await browser.get('/me/consents');
    // An account opening, accepted and refused: the applicant's data is in the body, never in a log line.
    const { access_token: partnerToken } = await client.clientCredentialsGrant(config, {
      scope: 'onboarding',
    });
    const applicant = {
      legalName: 'Gwendolyn Logsafe',
      dateOfBirth: '1980-01-01',
      nationality: 'GB',
      nationalId: { type: 'uk_nino', number: 'TW123456A' },
      address: { lines: ['1 Secret Road'], city: 'York', postCode: 'YO1 7HH', country: 'GB' },
      email: 'gwendolyn.logsafe@example.com',
      phone: '+447911123456',
    };
    const statuses: number[] = [];
    for (const nationalId of [applicant.nationalId, { type: 'uk_nino', number: 'QQ987654C' }]) {
      const response = await fetch(`${issuer}/v1/onboarding/applications`, {
        method: 'POST',
        headers: { authorization: `Bearer ${partnerToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          applicant: { ...applicant, nationalId },
          product: 'current',
          currency: 'GBP',
          applicantConsentAt: new Date(Date.now() - 1000).toISOString(),
          documents: [],
        }),
      });
      statuses.push(response.status);
    }
    assert.deepEqual(statuses, [201, 422], 'one application taken, one refused');

    // Paths and queries carry personal data too: a payee's IBAN on the block list, a name in a query.
    const blockedIban = 'GB82WEST12345698765432';
    const unblock = await fetch(
      `${issuer}/v1/admin/fraud/blocklist/${blockedIban}?note=Frank%20Privatename`,
      {
        method: 'DELETE',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      },
    );
    assert.equal(unblock.status, 404, 'the IBAN was never blocked');
    await fetch(`${issuer}/v1/no-such-route/${blockedIban}`);

    assert.ok(lines.length > 10, 'the calls were logged');
    const text = lines.join('');
    assert.ok(text.includes('"url":"/v1/admin/fraud/blocklist/:iban"'), 'the route is logged, not its IBAN');
    for (const secret of [
      DEVELOPER_PASSWORD,
      CUSTOMER_PASSWORD,
      ADMIN_TOKEN,
      app.clientSecret ?? 'x',
      accessToken,
      developer.authorization?.slice('Bearer '.length) ?? 'x',
      'dev.private@example.com',
      'frank.private@example.com',
      'Frank Privatename',
      'apibank_customer=',
      'Gwendolyn',
      'Logsafe',
      'TW123456A',
      'QQ987654C',
      '7911123456',
      '1 Secret Road',
      blockedIban,
    ]) {
      assert.ok(!text.includes(secret), `the log contains ${secret.slice(0, 12)}…`);
    }
  });
});
