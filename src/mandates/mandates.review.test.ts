// Review of mandates by a demanding merchant app: bad terms and bad charges are 4xx problems that change
// nothing, never a 5xx.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BuiltApp } from '../main.ts';
import { createCustomer, newClientApp, signUpDeveloper, startBank } from '../testing/bank.ts';
import { problem } from '../testing/calls.ts';
import { authoriseConsent } from '../testing/consent-flow.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';

const TOKEN = 'mandates-review-operator-token-0123456789abcdef';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'mandates review password';
const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();

for (const database of testDatabases()) {
  describe(`mandates under review on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let issuer: string;
    let developer: Record<string, string>;
    let keys = 0;
    let aliceCurrent = '';
    let merchantIban = '';
    let merchantAccount = '';

    const call = (
      method: 'GET' | 'POST' | 'DELETE',
      url: string,
      options: { token?: string; key?: string; body?: unknown } = {},
    ) =>
      built.app.inject({
        method,
        url,
        headers: {
          ...(options.token && { authorization: `Bearer ${options.token}` }),
          ...(options.key && { 'idempotency-key': options.key }),
        },
        ...(options.body !== undefined && { payload: options.body as object }),
      });
    const count = async (table: string) =>
      Number((await db.query<{ n: number }>(`select count(*)::int as n from ${table}`))[0]?.n);
    const posted = async (accountId: string) => {
      const account = await built.accounts?.find(accountId);
      assert.ok(account, accountId);
      return (await built.accounts?.balances(account))?.posted ?? 0n;
    };
    const snapshot = async () => ({
      alice: await posted(aliceCurrent),
      merchant: await posted(merchantAccount),
      mandates: await count('mandates'),
      consents: await count('consents'),
      charges: await count('mandate_charges'),
      refunds: await count('mandate_refunds'),
      payments: await count('payments'),
    });
    const newApp = () =>
      newClientApp({ built, issuer }, developer, {
        name: `Review Merchant ${++keys}`,
        scopes: ['openid', 'payments'],
        redirectUri: REDIRECT,
      });
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    const terms = (overrides: Record<string, unknown> = {}) => ({
      currency: 'EUR',
      maxPerCharge: '30.00',
      periodicLimits: [{ period: 'month', maxAmount: '200.00' }],
      creditor: { name: 'Review Merchant Ltd', iban: merchantIban },
      expiresAt: inDays(90),
      ...overrides,
    });
    const authorise = async (app: TestApp, mandateId: string) => {
      await authoriseConsent({
        issuer,
        config: app.config,
        redirectUri: REDIRECT,
        scope: 'openid payments',
        type: 'mandate',
        consentId: mandateId,
        username: 'alice',
        password: PASSWORD,
        accounts: [aliceCurrent],
      });
    };

    before(async () => {
      db = await database.open();
      ({ built, issuer } = await startBank(db, { adminToken: TOKEN }));
      developer = await signUpDeveloper(built.app, 'mandates-review@example.com', PASSWORD);
      [aliceCurrent = ''] = (
        await createCustomer(built, { username: 'alice', password: PASSWORD })
      ).accountIds;
      [merchantAccount = ''] = (
        await createCustomer(built, { username: 'merchant', password: PASSWORD })
      ).accountIds;
      merchantIban = (await built.accounts?.find(merchantAccount))?.iban ?? '';
      for (const rule of (await built.fraud?.rules()) ?? []) {
        await built.fraud?.updateRule(rule.id, { enabled: false, changedBy: 'mandates-review' });
      }
      const funded = await call('POST', '/v1/sandbox/incoming-payments', {
        token: TOKEN,
        key: 'review-incoming-1',
        body: {
          creditorIban: (await built.accounts?.find(aliceCurrent))?.iban,
          instructedAmount: { amount: '1000.00', currency: 'EUR' },
          debtor: { name: 'Northwind Ltd' },
        },
      });
      assert.equal(funded.statusCode, 201, funded.body);
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    it('refuses bad terms with a 4xx and creates nothing', async () => {
      const app = await newApp();
      const before = await snapshot();
      for (const overrides of [
        { creditor: { name: 'Nul\u0000Merchant', iban: merchantIban } },
        { creditor: { name: '\u{1F600}'.repeat(140), iban: merchantIban } },
        { maxPerCharge: '92233720368547758.08' },
        {
          maxPerCharge: '9223372036854775807',
          periodicLimits: [{ period: 'day', maxAmount: '9223372036854775807' }],
        },
        { currency: 'JPY', maxPerCharge: '30.00' },
        { currency: 'XAU' },
        { currency: 'eur' },
        { expiresAt: '2020-01-01T00:00:00Z' },
        { expiresAt: '9999-12-31T23:59:59Z' },
        { expiresAt: '2026-02-30T00:00:00Z' },
        { periodicLimits: [] },
        { periodicLimits: [{ period: 'year', maxAmount: '1.00' }] },
        {
          periodicLimits: [
            { period: 'day', maxAmount: '100.00' },
            { period: 'day', maxAmount: '100.00' },
          ],
        },
        { maxPerCharge: 30 },
        { maxPerCharge: '-1.00' },
        { maxPerCharge: '0.00' },
      ]) {
        const response = await call('POST', '/v1/mandates', {
          token: app.appToken,
          key: `terms-${++keys}`,
          body: terms(overrides),
        });
        assert.ok(response.statusCode < 500, `${JSON.stringify(overrides)}: ${response.body}`);
        if (response.statusCode === 201) continue;
        problem(response);
      }
      const after = await snapshot();
      assert.deepEqual({ ...after, mandates: 0, consents: 0 }, { ...before, mandates: 0, consents: 0 });
    });

    it('refuses a control character in the creditor name as a validation error', async () => {
      const app = await newApp();
      const before = await snapshot();
      for (const name of ['Nul\u0000Merchant', 'Bell\u0007Merchant', 'Line\nbreak']) {
        const response = await call('POST', '/v1/mandates', {
          token: app.appToken,
          key: `terms-${++keys}`,
          body: terms({ creditor: { name, iban: merchantIban } }),
        });
        assert.deepEqual(problem(response), [400, 'validation_failed'], response.body);
      }
      assert.deepEqual(await snapshot(), before);
    });

    // The charge's reference is stored as text, where PostgreSQL refuses NUL: the API refuses it first.
    it('refuses a NUL character in a charge reference as a validation error', async () => {
      const app = await newApp();
      const proposed = await call('POST', '/v1/mandates', {
        token: app.appToken,
        key: `m-${++keys}`,
        body: terms(),
      });
      const mandateId = (proposed.json() as { id: string }).id;
      await authorise(app, mandateId);
      const before = await snapshot();
      const response = await call('POST', `/v1/mandates/${mandateId}/charges`, {
        token: app.appToken,
        key: `c-${++keys}`,
        body: { instructedAmount: { amount: '10.00', currency: 'EUR' }, reference: 'Ride\u0000home' },
      });
      assert.deepEqual(await snapshot(), before);
      assert.deepEqual(problem(response), [400, 'validation_failed'], response.body);
    });

    it('refuses bad charges and refunds with a 4xx and moves nothing', async () => {
      const app = await newApp();
      const proposed = await call('POST', '/v1/mandates', {
        token: app.appToken,
        key: `m-${++keys}`,
        body: terms(),
      });
      assert.equal(proposed.statusCode, 201, proposed.body);
      const mandateId = (proposed.json() as { id: string }).id;
      await authorise(app, mandateId);
      const ok = await call('POST', `/v1/mandates/${mandateId}/charges`, {
        token: app.appToken,
        key: `c-${++keys}`,
        body: { instructedAmount: { amount: '10.00', currency: 'EUR' } },
      });
      assert.equal(ok.statusCode, 201, ok.body);
      const chargeId = (ok.json() as { id: string }).id;
      const before = await snapshot();
      for (const body of [
        { instructedAmount: { amount: '10.00', currency: 'GBP' } },
        { instructedAmount: { amount: '10.000', currency: 'EUR' } },
        { instructedAmount: { amount: '9223372036854775807', currency: 'EUR' } },
        { instructedAmount: { amount: '10.00', currency: 'XXX' } },
        { instructedAmount: { amount: '31.00', currency: 'EUR' } },
        {},
      ]) {
        const response = await call('POST', `/v1/mandates/${mandateId}/charges`, {
          token: app.appToken,
          key: `c-${++keys}`,
          body,
        });
        assert.ok(
          response.statusCode >= 400 && response.statusCode < 500,
          `${JSON.stringify(body)}: ${response.body}`,
        );
        problem(response);
      }
      for (const body of [
        { instructedAmount: { amount: '1.00', currency: 'GBP' } },
        { instructedAmount: { amount: '1.000', currency: 'EUR' } },
        { instructedAmount: { amount: '10.01', currency: 'EUR' } },
        { instructedAmount: { amount: '9223372036854775807', currency: 'EUR' } },
      ]) {
        const response = await call('POST', `/v1/mandates/${mandateId}/charges/${chargeId}/refunds`, {
          token: app.appToken,
          key: `r-${++keys}`,
          body,
        });
        assert.ok(
          response.statusCode >= 400 && response.statusCode < 500,
          `${JSON.stringify(body)}: ${response.body}`,
        );
        problem(response);
      }
      assert.deepEqual(await snapshot(), before);
      const report = await built.ledger.verify();
      assert.equal(report.ok, true);
    });
  });
}
