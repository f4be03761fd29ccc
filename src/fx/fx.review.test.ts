// Review of FX by a demanding customer: odd quotes are 4xx problems, never a 5xx; one quote converts once
// however many requests race for it; another customer's quote or conversion does not exist; the ledger holds.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse as InjectResponse } from 'fastify';
import { type BuiltApp, buildApp } from '../main.ts';
import { generateOAuthKeys } from '../oauth/keys.ts';
import { createCustomer } from '../testing/bank.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { freePort } from '../testing/http.ts';
import { testPii } from '../testing/pii.ts';

const TOKEN = 'fx-review-operator-token-0123456789abcdef';
const PASSWORD = 'fx review password';

for (const database of testDatabases()) {
  describe(`FX under review on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let keys = 0;
    let aliceEur = '';
    let aliceUsd = '';
    let aliceJpy = '';
    const cookies = new Map<string, string>();

    const signIn = async (username: string) => {
      const known = cookies.get(username);
      if (known) return known;
      const response = await built.app.inject({
        method: 'POST',
        url: '/me/sign-in',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ username, password: PASSWORD, code: '123456' }).toString(),
      });
      assert.equal(response.statusCode, 303);
      const cookie = String(response.headers['set-cookie']).split(';')[0] ?? '';
      cookies.set(username, cookie);
      return cookie;
    };
    const call = async (
      username: string,
      method: 'GET' | 'POST',
      url: string,
      body?: unknown,
      key?: string,
    ) =>
      built.app.inject({
        method,
        url,
        headers: { cookie: await signIn(username), ...(key && { 'idempotency-key': key }) },
        ...(body !== undefined && { payload: body as object }),
      });
    const problem = (response: InjectResponse) => {
      assert.equal(
        response.headers['content-type'],
        'application/problem+json; charset=utf-8',
        response.body,
      );
      return [response.statusCode, (response.json() as { code: string }).code];
    };
    const posted = async (accountId: string) => {
      const account = await built.accounts?.find(accountId);
      assert.ok(account, accountId);
      return (await built.accounts?.balances(account))?.posted ?? 0n;
    };

    before(async () => {
      db = await database.open();
      const port = await freePort();
      built = buildApp({
        db,
        adminToken: TOKEN,
        oauth: { issuer: `http://127.0.0.1:${port}`, keys: await generateOAuthKeys() },
        pii: await testPii(db),
        currencies: ['EUR', 'USD', 'JPY'],
      });
      await built.app.listen({ port, host: '127.0.0.1' });
      [aliceEur = '', aliceUsd = '', aliceJpy = ''] = (
        await createCustomer(built, {
          username: 'alice',
          password: PASSWORD,
          accounts: [
            { product: 'current', currency: 'EUR' },
            { product: 'current', currency: 'USD' },
            { product: 'current', currency: 'JPY' },
          ],
        })
      ).accountIds;
      await createCustomer(built, { username: 'mallory', password: PASSWORD });
      const funded = await built.app.inject({
        method: 'POST',
        url: '/v1/sandbox/incoming-payments',
        headers: { authorization: `Bearer ${TOKEN}`, 'idempotency-key': 'fx-review-incoming' },
        payload: {
          creditorIban: (await built.accounts?.find(aliceEur))?.iban,
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

    it('answers odd quote requests with a 4xx problem', async () => {
      for (const body of [
        { sellCurrency: 'EUR', buyCurrency: 'USD', sellAmount: '9223372036854775807' },
        { sellCurrency: 'EUR', buyCurrency: 'USD', sellAmount: '92233720368547758.07' },
        { sellCurrency: 'JPY', buyCurrency: 'EUR', buyAmount: '92233720368547758.07' },
        { sellCurrency: 'EUR', buyCurrency: 'JPY', buyAmount: '9223372036854775807' },
        { sellCurrency: 'JPY', buyCurrency: 'KWD', sellAmount: '1' },
        { sellCurrency: 'EUR', buyCurrency: 'EUR', sellAmount: '1.00' },
        { sellCurrency: 'EUR', buyCurrency: 'XAU', sellAmount: '1.00' },
        { sellCurrency: 'EUR', buyCurrency: 'ABC', sellAmount: '1.00' },
        { sellCurrency: 'EUR', buyCurrency: 'USD', sellAmount: '1.00', buyAmount: '1.00' },
        { sellCurrency: 'EUR', buyCurrency: 'USD' },
        { sellCurrency: 'EUR', buyCurrency: 'USD', sellAmount: '0.00' },
        { sellCurrency: 'EUR', buyCurrency: 'USD', sellAmount: '1.0' },
        { sellCurrency: 'EUR', buyCurrency: 'USD', sellAmount: 1 },
        { sellCurrency: 'EUR', buyCurrency: 'MRU', sellAmount: '1.00' },
        { sellCurrency: 'EUR', buyCurrency: 'CLF', sellAmount: '0.01' },
      ]) {
        const response = await call('alice', 'POST', '/v1/me/fx/quotes', body);
        assert.ok(response.statusCode < 500, `${JSON.stringify(body)}: ${response.body}`);
        if (response.statusCode !== 201) problem(response);
      }
    });

    it('converts once at one quote however many requests race for it', async () => {
      const quote = await call('alice', 'POST', '/v1/me/fx/quotes', {
        sellCurrency: 'EUR',
        buyCurrency: 'USD',
        sellAmount: '10.00',
      });
      assert.equal(quote.statusCode, 201, quote.body);
      const quoteId = (quote.json() as { id: string }).id;
      const eurBefore = await posted(aliceEur);
      const usdBefore = await posted(aliceUsd);
      const body = { fromAccountId: aliceEur, toAccountId: aliceUsd, quoteId };
      const sameKey = `race-${++keys}`;
      const responses = await Promise.all([
        ...Array.from({ length: 4 }, () => call('alice', 'POST', '/v1/me/conversions', body, sameKey)),
        ...Array.from({ length: 4 }, () =>
          call('alice', 'POST', '/v1/me/conversions', body, `race-${++keys}`),
        ),
      ]);
      for (const response of responses) assert.ok(response.statusCode < 500, response.body);
      const created = responses.filter((response) => response.statusCode === 201);
      const ids = new Set(created.map((response) => (response.json() as { id: string }).id));
      assert.equal(ids.size, 1, 'one conversion');
      const spent = eurBefore - (await posted(aliceEur));
      assert.equal(spent, 1001n, '10.00 and its 0.01 fee, once');
      assert.ok((await posted(aliceUsd)) > usdBefore);
      const report = await built.ledger.verify();
      assert.equal(report.ok, true);
    });

    it("never shows or uses another customer's quote or conversion", async () => {
      const quote = await call('alice', 'POST', '/v1/me/fx/quotes', {
        sellCurrency: 'EUR',
        buyCurrency: 'JPY',
        sellAmount: '5.00',
      });
      const quoteId = (quote.json() as { id: string }).id;
      assert.deepEqual(problem(await call('mallory', 'GET', `/v1/me/fx/quotes/${quoteId}`)), [
        404,
        'not_found',
      ]);
      const converted = await call(
        'alice',
        'POST',
        '/v1/me/conversions',
        { fromAccountId: aliceEur, toAccountId: aliceJpy, quoteId },
        `own-${++keys}`,
      );
      assert.equal(converted.statusCode, 201, converted.body);
      const id = (converted.json() as { id: string }).id;
      assert.deepEqual(problem(await call('mallory', 'GET', `/v1/me/conversions/${id}`)), [404, 'not_found']);
      // Mallory naming Alice's accounts gets nothing either.
      const other = await call('mallory', 'POST', '/v1/me/fx/quotes', {
        sellCurrency: 'EUR',
        buyCurrency: 'JPY',
        sellAmount: '5.00',
      });
      const stolen = await call(
        'mallory',
        'POST',
        '/v1/me/conversions',
        { fromAccountId: aliceEur, toAccountId: aliceJpy, quoteId: (other.json() as { id: string }).id },
        `steal-${++keys}`,
      );
      assert.deepEqual(problem(stolen), [404, 'not_found']);
    });
  });
}
