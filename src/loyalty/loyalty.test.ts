// Loyalty points end to end: the operators' earn rules and redemption rates, payments paid partly in points
// (one ledger transfer: the money part, the bank's funding of the points part, the points spent and earned),
// their returns and partial refunds in proportion, the refusals that change nothing, and the points an app
// or the customer reads. Every test leaves a ledger that verifies, per currency, PTS included.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { eventsAbout } from '../events/outbox.ts';
import { balancesOf } from '../ledger/model.ts';
import type { BuiltApp } from '../main.ts';
import type { Minor } from '../money.ts';
import { createCustomer, newClientApp, signUpDeveloper, startBank } from '../testing/bank.ts';
import { inProcess, json, problem } from '../testing/calls.ts';
import { authoriseConsent } from '../testing/consent-flow.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import type { Loyalty, Points } from './service.ts';

const TOKEN = 'loyalty-test-operator-token-0123456789abcdef';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'loyalty test password';
// Valid, and not an account of this bank: a payment there is domestic, to another bank.
const EXTERNAL_IBAN = 'DE89370400440532013000';
const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();

interface PaymentJson {
  id: string;
  status: string;
  type: string;
  rejectionCode: string | null;
  instructedAmount: { amount: string; currency: string };
  points?: { redeemed: string; value: string; money: string; earned: string };
}
interface PointsJson {
  accountId: string;
  currency: string;
  balance: string;
  worth: { amount: string; currency: string } | null;
  history: {
    id: string;
    transferId: string;
    kind: string;
    points: string;
    balanceAfter: string;
    paymentId: string | null;
    refundId: string | null;
  }[];
  nextCursor: string | null;
}

for (const database of testDatabases()) {
  describe(`loyalty points on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let loyalty: Loyalty;
    let issuer: string;
    let developer: Record<string, string>;
    let apps = 0;
    let keys = 0;
    let aliceId: string;
    let aliceCurrent: string;
    let aliceSavings: string;
    let aliceGbp: string;
    let bobCurrent: string;
    const ibanOf = new Map<string, string>();
    const ledgerOf = new Map<string, string>();

    // ---- calls ------------------------------------------------------------------------------------------

    const inApp = inProcess(() => built.app);
    const call = inApp.call;
    const admin = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown, key?: string) =>
      call(method, url, { token: TOKEN, body, ...(key && { key }) });
    const nextKey = () => `loyalty-${++keys}`;

    const signIn = (username: string) => inApp.signIn(username, PASSWORD);
    const payAtBank = async (body: Record<string, unknown>, key = nextKey(), username = 'alice') =>
      call('POST', '/v1/me/payments', { cookie: await signIn(username), key, body });
    const receive = (iban: string, amount: string, currency = 'EUR') =>
      admin(
        'POST',
        '/v1/sandbox/incoming-payments',
        {
          creditorIban: iban,
          instructedAmount: { amount, currency },
          debtor: { name: 'Northwind Ltd' },
          reference: 'Top-up',
        },
        `incoming-${++keys}`,
      );

    // ---- balances ---------------------------------------------------------------------------------------

    const money = async (accountId: string) => {
      const account = await built.accounts?.find(accountId);
      assert.ok(account);
      return (await built.accounts?.balances(account))?.posted ?? 0n;
    };
    const points = (accountId: string) => loyalty.balance(accountId);
    const bankPosted = async (code: string) => {
      const [account] = await built.ledger.listAccounts({ code }, undefined, 1);
      return account ? balancesOf(account).posted : 0n;
    };
    const paymentRows = async () =>
      Number((await db.query<{ n: number }>('select count(*)::int as n from payments'))[0]?.n);
    const debitRows = async () =>
      Number((await db.query<{ n: number }>('select count(*)::int as n from loyalty_debits'))[0]?.n);
    /** Everything a refused request must leave as it was. */
    const snapshot = async () => ({
      money: await Promise.all([aliceCurrent, aliceSavings, bobCurrent].map(money)),
      points: await Promise.all([aliceCurrent, aliceSavings, bobCurrent].map(points)),
      funding: await bankPosted('bank:loyalty-funding-eur'),
      issued: await bankPosted('bank:points-issued-pts'),
      payments: await paymentRows(),
      debits: await debitRows(),
    });
    /** Points given to the account as an earn rule would, through a payment that earns them. */
    const topUpPoints = async (accountId: string, wanted: bigint) => {
      // 1 point per 0.01 EUR at MCC 9999 (set up in `before`), paid to Bob and paid back by him.
      const amount = wanted;
      const paid = await built.payments?.initiate({ kind: 'customer', customerId: aliceId }, nextKey(), {
        instructedAmount: { amount: decimal(amount), currency: 'EUR' },
        creditor: { name: 'Bob Baker', iban: ibanOf.get(bobCurrent) ?? '' },
        debtorAccountId: accountId,
        merchantCategory: '9999',
      });
      assert.ok(paid?.ok && paid.payment.status === 'settled', show(paid));
      json(await receive(ibanOf.get(accountId) ?? '', decimal(amount)), 201);
    };

    // ---- apps and consents ------------------------------------------------------------------------------

    const newApp = (scopes: readonly string[]) =>
      newClientApp({ built, issuer }, developer, {
        name: `Points App ${++apps}`,
        scopes: ['openid', ...scopes],
        redirectUri: REDIRECT,
      });
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    /** Alice authorises the consent at the bank, choosing `account`; returns the access token. */
    const authorise = async (
      app: TestApp,
      consentId: string,
      type: string,
      scope: string,
      account: string,
    ) => {
      const { accessToken } = await authoriseConsent({
        issuer,
        config: app.config,
        redirectUri: REDIRECT,
        scope,
        type,
        consentId,
        username: 'alice',
        password: PASSWORD,
        accounts: [account],
      });
      return accessToken;
    };
    const consent = async (app: TestApp, body: Record<string, unknown>) =>
      json<{ id: string }>(
        await call('POST', '/v1/consents', { token: app.appToken, body: { expiresAt: inDays(1), ...body } }),
        201,
      ).id;

    before(async () => {
      db = await database.open();
      ({ built, issuer } = await startBank(db, { adminToken: TOKEN }));
      assert.ok(built.loyalty);
      loyalty = built.loyalty;
      developer = await signUpDeveloper(built.app, 'loyalty-dev@example.com', PASSWORD);
      const alice = await createCustomer(built, {
        username: 'alice',
        password: PASSWORD,
        legalName: 'Alice Able',
        accounts: [
          { product: 'current', currency: 'EUR' },
          { product: 'savings', currency: 'EUR' },
          { product: 'current', currency: 'GBP' },
        ],
      });
      const bob = await createCustomer(built, {
        username: 'bob',
        password: PASSWORD,
        legalName: 'Bob Baker',
      });
      aliceId = alice.customerId;
      [aliceCurrent = '', aliceSavings = '', aliceGbp = ''] = alice.accountIds;
      [bobCurrent = ''] = bob.accountIds;
      for (const [i, id] of [...alice.accountIds, ...bob.accountIds].entries()) {
        ibanOf.set(id, (await built.accounts?.find(id))?.iban ?? '');
        ledgerOf.set(id, [...alice.ledgerAccountIds, ...bob.ledgerAccountIds][i] ?? '');
      }
      // These tests pay fast and often, as no customer would: the fraud rules stay off.
      for (const rule of (await built.fraud?.rules()) ?? []) {
        await built.fraud?.updateRule(rule.id, { enabled: false, changedBy: 'loyalty-test' });
      }
      json(await receive(ibanOf.get(aliceCurrent) ?? '', '1000.00'), 201);
      json(await receive(ibanOf.get(aliceSavings) ?? '', '100.00'), 201);
      json(await receive(ibanOf.get(bobCurrent) ?? '', '100.00'), 201);
      json(await receive(ibanOf.get(aliceGbp) ?? '', '100.00', 'GBP'), 201);
      // The bank's terms: 100 points pay 1.00 EUR; groceries (5411) earn 3 points per 1.00 EUR, other
      // purchases 1; category 9999 (used to hand out points) 1 per cent.
      json(
        await admin('PUT', '/v1/admin/loyalty/redemption-rates/EUR', {
          points: '100',
          amount: '1.00',
          changedBy: 'ops-anna',
        }),
        201,
      );
      for (const [category, pointsPer, per] of [
        ['5411', '3', '1.00'],
        ['default', '1', '1.00'],
        ['9999', '1', '0.01'],
      ] as const) {
        json(
          await admin('PUT', `/v1/admin/loyalty/earn-rules/EUR/${category}`, {
            points: pointsPer,
            per,
            changedBy: 'ops-anna',
          }),
          201,
        );
      }
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    it('keeps earn rules and redemption rates as data operators change, checking every field', async () => {
      const rules = json<{
        rules: { currency: string; merchantCategory: string; points: string; per: string }[];
      }>(await admin('GET', '/v1/admin/loyalty/earn-rules'));
      assert.deepEqual(
        rules.rules.map((rule) => [rule.currency, rule.merchantCategory, rule.points, rule.per]),
        [
          ['EUR', '5411', '3', '1.00'],
          ['EUR', '9999', '1', '0.01'],
          ['EUR', 'default', '1', '1.00'],
        ],
      );
      // Paged by currency and category.
      const first = json<{ rules: unknown[]; nextCursor: string }>(
        await admin('GET', '/v1/admin/loyalty/earn-rules?limit=2'),
      );
      assert.equal(first.rules.length, 2);
      const second = json<{ rules: { merchantCategory: string }[]; nextCursor: string | null }>(
        await admin('GET', `/v1/admin/loyalty/earn-rules?limit=2&cursor=${first.nextCursor}`),
      );
      assert.deepEqual(
        [second.rules.map((rule) => rule.merchantCategory), second.nextCursor],
        [['default'], null],
      );
      assert.deepEqual(problem(await admin('GET', '/v1/admin/loyalty/earn-rules?cursor=bm9wZQ')), [
        400,
        'invalid_cursor',
      ]);

      // A change replaces the rule (200, a new version); every change is an event.
      const changed = json<{ version: number; points: string }>(
        await admin('PUT', '/v1/admin/loyalty/earn-rules/GBP/default', {
          points: '2',
          per: '1.00',
          changedBy: 'ops',
        }),
        201,
      );
      assert.equal(changed.version, 1);
      const again = json<{ version: number; points: string }>(
        await admin('PUT', '/v1/admin/loyalty/earn-rules/GBP/default', {
          points: '5',
          per: '1.00',
          changedBy: 'ops',
        }),
      );
      assert.deepEqual([again.version, again.points], [2, '5']);
      assert.equal((await admin('DELETE', '/v1/admin/loyalty/earn-rules/GBP/default')).statusCode, 204);
      assert.deepEqual(problem(await admin('DELETE', '/v1/admin/loyalty/earn-rules/GBP/default')), [
        404,
        'not_found',
      ]);
      assert.deepEqual(
        (await eventsAbout(db, 'earn-rule:GBP:default')).map((event) => event.type),
        ['loyalty.earn_rule.changed', 'loyalty.earn_rule.changed', 'loyalty.earn_rule.deleted'],
      );

      // Bad input is a 4xx that stores nothing: points are not a currency anyone names, amounts carry the
      // currency's decimals, a rate is a whole number of points per minor unit.
      const refusals: [string, string, unknown, [number, string]][] = [
        [
          'PUT',
          '/v1/admin/loyalty/earn-rules/PTS/default',
          { points: '1', per: '1', changedBy: 'x' },
          [400, 'unsupported_currency'],
        ],
        [
          'PUT',
          '/v1/admin/loyalty/earn-rules/EUR/5411',
          { points: '1', per: '1.0', changedBy: 'x' },
          [400, 'amount_scale_mismatch'],
        ],
        [
          'PUT',
          '/v1/admin/loyalty/earn-rules/EUR/5411',
          { points: '1000001', per: '1.00', changedBy: 'x' },
          [400, 'validation_failed'],
        ],
        [
          'PUT',
          '/v1/admin/loyalty/earn-rules/EUR/5411',
          { points: '0', per: '1.00', changedBy: 'x' },
          [400, 'validation_failed'],
        ],
        [
          'PUT',
          '/v1/admin/loyalty/earn-rules/EUR/541',
          { points: '1', per: '1.00', changedBy: 'x' },
          [400, 'validation_failed'],
        ],
        [
          'PUT',
          '/v1/admin/loyalty/earn-rules/EUR/5411',
          { points: '1', per: '0.00', changedBy: 'x' },
          [400, 'validation_failed'],
        ],
        [
          'PUT',
          '/v1/admin/loyalty/redemption-rates/EUR',
          { points: '50', amount: '1.00', changedBy: 'x' },
          [400, 'validation_failed'],
        ],
        [
          'PUT',
          '/v1/admin/loyalty/redemption-rates/XAU',
          { points: '100', amount: '1', changedBy: 'x' },
          [400, 'unsupported_currency'],
        ],
        [
          'PUT',
          '/v1/admin/loyalty/redemption-rates/JPY',
          { points: '100', amount: '1.00', changedBy: 'x' },
          [400, 'amount_scale_mismatch'],
        ],
        [
          'PUT',
          '/v1/admin/loyalty/redemption-rates/EUR',
          { points: '100', amount: '1.00' },
          [400, 'validation_failed'],
        ],
      ];
      const rates = await admin('GET', '/v1/admin/loyalty/redemption-rates');
      for (const [method, url, body, expected] of refusals) {
        assert.deepEqual(
          problem(await admin(method as 'PUT', url, body)),
          expected,
          `${url} ${JSON.stringify(body)}`,
        );
      }
      assert.deepEqual(json(await admin('GET', '/v1/admin/loyalty/redemption-rates')), rates.json());
      assert.deepEqual(json<{ rates: unknown[] }>(rates).rates, [
        {
          currency: 'EUR',
          points: '100',
          amount: '1.00',
          pointsPerMinorUnit: '1',
          version: 1,
          updatedBy: 'ops-anna',
          updatedAt: (json<{ rates: { updatedAt: string }[] }>(rates).rates[0] as { updatedAt: string })
            .updatedAt,
        },
      ]);
      assert.deepEqual(problem(await call('GET', '/v1/admin/loyalty/earn-rules')), [401, 'unauthorized']);
      // The ledger's own API still knows ISO 4217 only: nobody opens a PTS account through it.
      assert.deepEqual(
        problem(await admin('POST', '/v1/ledger/accounts', { currency: 'PTS', normalBalance: 'credit' })),
        [400, 'unsupported_currency'],
      );
    });

    it('pays with points and money in one transfer: the creditor gets the full amount', async () => {
      await topUpPoints(aliceCurrent, 1000n);
      const before = await snapshot();
      const response = await payAtBank({
        instructedAmount: { amount: '12.50', currency: 'EUR' },
        creditor: { name: 'Bob Baker', iban: ibanOf.get(bobCurrent) },
        reference: 'Lunch',
        debtorAccountId: aliceCurrent,
        points: '500',
      });
      const payment = json<PaymentJson>(response, 201);
      assert.equal(payment.status, 'settled');
      // At the bank's pages there is no merchant category: a transfer earns nothing.
      assert.deepEqual(payment.points, { redeemed: '500', value: '5.00', money: '7.50', earned: '0' });
      const after = await snapshot();
      assert.equal(after.money[0], (before.money[0] as bigint) - 750n, 'Alice pays the rest in money');
      assert.equal(after.money[2], (before.money[2] as bigint) + 1250n, 'Bob gets the full amount');
      assert.equal(after.points[0], (before.points[0] as bigint) - 500n);
      assert.equal(after.funding, before.funding + 500n, 'the bank funds the points part');
      assert.equal(after.issued, before.issued - 500n, 'the points spent are retired');

      // One ledger transfer, keyed by the payment, carries every part.
      const [row] = await db.query<{ id: string }>(
        'select id from ledger_transfers where idempotency_key = $1',
        [`payment:${payment.id}`],
      );
      const transfer = await built.ledger.getTransfer(row?.id ?? '');
      assert.deepEqual(
        transfer?.postings.map((p) => [p.amount, p.exponent]),
        [
          [750n, 2],
          [500n, 2],
          [500n, 0],
        ],
      );
      assert.deepEqual(transfer?.metadata.loyalty, { debitId: payment.id });

      // The same request again is a replay: the points moved once.
      const replay = await payAtBank(
        {
          instructedAmount: { amount: '12.50', currency: 'EUR' },
          creditor: { name: 'Bob Baker', iban: ibanOf.get(bobCurrent) },
          reference: 'Lunch',
          debtorAccountId: aliceCurrent,
          points: '500',
        },
        `loyalty-${keys}`,
      );
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      assert.deepEqual(await snapshot(), after);
      assert.deepEqual(
        (await eventsAbout(db, aliceCurrent))
          .filter((e) => e.payload.debitId === payment.id)
          .map((e) => e.type),
        ['loyalty.debit.planned', 'loyalty.debit.applied'],
      );

      // Paid entirely in points: no money leaves the account at all.
      const allPoints = json<PaymentJson>(
        await payAtBank({
          instructedAmount: { amount: '2.00', currency: 'EUR' },
          creditor: { name: 'Bob Baker', iban: ibanOf.get(bobCurrent) },
          debtorAccountId: aliceCurrent,
          points: '200',
        }),
        201,
      );
      assert.deepEqual([allPoints.status, allPoints.points?.money], ['settled', '0.00']);
      assert.equal(await money(aliceCurrent), after.money[0]);
      assert.equal(await money(bobCurrent), (after.money[2] as bigint) + 200n);
    });

    it('earns points on purchases by merchant category, never on a transfer or between own accounts', async () => {
      const app = await newApp(['payments']);
      const instruction = {
        instructedAmount: { amount: '20.00', currency: 'EUR' },
        creditor: { name: 'Corner Grocer', iban: EXTERNAL_IBAN },
        reference: 'Basket 7',
      };
      const consentId = await consent(app, { type: 'payment_initiation', ...instruction });
      const token = await authorise(app, consentId, 'payment_initiation', 'openid payments', aliceCurrent);
      const held = await points(aliceCurrent);
      // The consent covers the full amount (dynamic linking); the app adds points and its category.
      const mismatch = await call('POST', '/v1/payments', {
        token,
        key: nextKey(),
        body: { ...instruction, instructedAmount: { amount: '15.00', currency: 'EUR' }, points: '500' },
      });
      assert.deepEqual(problem(mismatch), [422, 'consent_mismatch']);
      const paid = json<PaymentJson>(
        await call('POST', '/v1/payments', {
          token,
          key: nextKey(),
          body: { ...instruction, points: '250', merchantCategory: '5411' },
        }),
        201,
      );
      // 17.50 paid in money at 3 points per 1.00: 52.5, rounded down.
      assert.deepEqual(
        [paid.status, paid.points],
        ['accepted', { redeemed: '250', value: '2.50', money: '17.50', earned: '52' }],
      );
      assert.equal(await points(aliceCurrent), held - 250n + 52n);

      // A category without a rule of its own earns the default; a payment to one's own account earns nothing.
      const service = built.payments;
      assert.ok(service);
      const pay = async (creditor: string, merchantCategory: string) => {
        const outcome = await service.initiate({ kind: 'customer', customerId: aliceId }, nextKey(), {
          instructedAmount: { amount: '10.00', currency: 'EUR' },
          creditor: { name: 'Someone', iban: ibanOf.get(creditor) ?? '' },
          debtorAccountId: aliceCurrent,
          merchantCategory,
        });
        assert.ok(outcome.ok);
        return outcome.payment;
      };
      assert.equal((await pay(bobCurrent, '5999')).points?.pointsEarned, 10n);
      const own = await pay(aliceSavings, '5411');
      assert.deepEqual([own.status, own.points], ['settled', undefined]);
      // At the bank's pages the payer cannot name a category.
      assert.deepEqual(
        problem(
          await payAtBank({
            instructedAmount: { amount: '1.00', currency: 'EUR' },
            creditor: { name: 'Bob Baker', iban: ibanOf.get(bobCurrent) },
            debtorAccountId: aliceCurrent,
            merchantCategory: '5411',
          }),
        ),
        [400, 'validation_failed'],
      );
      // A plain payment without points or category is exactly what it was before loyalty: one posting.
      const plain = json<PaymentJson>(
        await payAtBank({
          instructedAmount: { amount: '1.00', currency: 'EUR' },
          creditor: { name: 'Bob Baker', iban: ibanOf.get(bobCurrent) },
          debtorAccountId: aliceCurrent,
        }),
        201,
      );
      assert.equal(plain.points, undefined);
      const [row] = await db.query<{ n: number }>(
        'select cardinality(amounts) as n from ledger_transfers where idempotency_key = $1',
        [`payment:${plain.id}`],
      );
      assert.equal(row?.n, 1);
    });

    it('refuses points it cannot take with a problem, and records and moves nothing', async () => {
      await topUpPoints(aliceCurrent, 300n);
      const base = {
        instructedAmount: { amount: '3.00', currency: 'EUR' },
        creditor: { name: 'Bob Baker', iban: ibanOf.get(bobCurrent) },
        debtorAccountId: aliceCurrent,
      };
      const held = await points(aliceCurrent);
      const before = await snapshot();
      assert.deepEqual(problem(await payAtBank({ ...base, points: '301' })), [422, 'points_exceed_amount']);
      assert.deepEqual(
        problem(
          await payAtBank({
            ...base,
            instructedAmount: { amount: '100.00', currency: 'EUR' },
            points: String(held + 1n),
          }),
        ),
        [422, 'insufficient_points'],
      );
      assert.deepEqual(problem(await payAtBank({ ...base, points: '0' })), [400, 'validation_failed']);
      assert.deepEqual(problem(await payAtBank({ ...base, points: '-5' })), [400, 'validation_failed']);
      assert.deepEqual(problem(await payAtBank({ ...base, points: '1.5' })), [400, 'validation_failed']);
      // No rate in GBP: points do not pay there.
      assert.deepEqual(
        problem(
          await payAtBank({
            instructedAmount: { amount: '3.00', currency: 'GBP' },
            creditor: { name: 'Bob Baker', iban: EXTERNAL_IBAN },
            debtorAccountId: aliceGbp,
            points: '100',
          }),
        ),
        [422, 'points_not_accepted'],
      );
      // A rate of 1000 points per 1.00: 10 points per cent, so points come in tens.
      json(
        await admin('PUT', '/v1/admin/loyalty/redemption-rates/EUR', {
          points: '1000',
          amount: '1.00',
          changedBy: 'ops',
        }),
      );
      try {
        const [status, code] = problem(await payAtBank({ ...base, points: '105' }));
        assert.deepEqual([status, code], [422, 'points_value_not_whole']);
        const tens = json<PaymentJson>(await payAtBank({ ...base, points: '110' }), 201);
        assert.deepEqual(tens.points, { redeemed: '110', value: '0.11', money: '2.89', earned: '0' });
      } finally {
        json(
          await admin('PUT', '/v1/admin/loyalty/redemption-rates/EUR', {
            points: '100',
            amount: '1.00',
            changedBy: 'ops',
          }),
        );
      }
      const after = await snapshot();
      assert.deepEqual(
        { ...after, money: undefined, points: undefined, funding: undefined, issued: undefined },
        {
          ...before,
          money: undefined,
          points: undefined,
          funding: undefined,
          issued: undefined,
          payments: before.payments + 1,
          debits: before.debits + 1,
        },
        'only the one good payment was recorded',
      );
      assert.equal(await points(aliceCurrent), held - 110n);
    });

    it('uses the terms of the moment a payment was recorded, and rejects it if its points are gone by then', async () => {
      const fraud = built.fraud;
      assert.ok(fraud);
      await topUpPoints(aliceCurrent, 400n);
      // Every payment of 1.00 or more to a new payee waits for the customer's one-time code.
      await fraud.updateRule('new_payee', {
        enabled: true,
        parameters: { ignoreBelow: { EUR: '1.00' } },
        changedBy: 'loyalty-test',
      });
      try {
        const service = built.payments;
        assert.ok(service);
        const hold = async (iban: string, pointsOffered: string, amount = '4.00') => {
          const outcome = await service.initiate({ kind: 'customer', customerId: aliceId }, nextKey(), {
            instructedAmount: { amount, currency: 'EUR' },
            creditor: { name: 'New Shop', iban },
            debtorAccountId: aliceCurrent,
            points: pointsOffered,
            merchantCategory: '5411',
          });
          assert.ok(outcome.ok && outcome.payment.status === 'awaiting_sca', show(outcome));
          return outcome.payment;
        };
        const cookie = await signIn('alice');
        const confirm = (id: string) =>
          call('POST', `/v1/me/payments/${id}/confirm`, { cookie, body: { code: '123456' } });

        // Recorded at 3 points per 1.00; the rule changes before the customer confirms: the recorded split holds,
        // so a retried transfer is the same transfer.
        const first = await hold('GB82WEST12345698765432', '100');
        json(
          await admin('PUT', '/v1/admin/loyalty/earn-rules/EUR/5411', {
            points: '7',
            per: '1.00',
            changedBy: 'ops',
          }),
        );
        const held = await points(aliceCurrent);
        const confirmed = json<PaymentJson>(await confirm(first.id));
        assert.deepEqual([confirmed.status, confirmed.points?.earned], ['accepted', '9']);
        assert.equal(await points(aliceCurrent), held - 100n + 9n);

        // Its points spent elsewhere before the customer confirms: the ledger refuses the whole transfer.
        const all = await points(aliceCurrent);
        const second = await hold('GB33BUKB20201555555555', String(all), decimal(all));
        const spend = await service.initiate({ kind: 'customer', customerId: aliceId }, nextKey(), {
          instructedAmount: { amount: '0.50', currency: 'EUR' },
          creditor: { name: 'Bob Baker', iban: ibanOf.get(bobCurrent) ?? '' },
          debtorAccountId: aliceCurrent,
          points: '50',
        });
        assert.ok(spend.ok && spend.payment.status === 'settled');
        const before = await snapshot();
        const refused = json<PaymentJson>(await confirm(second.id));
        assert.deepEqual([refused.status, refused.rejectionCode], ['rejected', 'insufficient_points']);
        assert.deepEqual(await snapshot(), before, 'neither money nor points moved');
        assert.equal((await loyalty.findDebit(second.id))?.status, 'voided');
        // A held payment the customer declines: its split is voided with it.
        const third = await hold('DE44500105175407324931', '0');
        json(await call('POST', `/v1/me/payments/${third.id}/cancel`, { cookie }));
        assert.equal((await loyalty.findDebit(third.id))?.status, 'voided');
      } finally {
        await fraud.updateRule('new_payee', { enabled: false, changedBy: 'loyalty-test' });
        json(
          await admin('PUT', '/v1/admin/loyalty/earn-rules/EUR/5411', {
            points: '3',
            per: '1.00',
            changedBy: 'ops',
          }),
        );
      }
    });

    it('never spends the same points twice when payments race for them', async () => {
      await topUpPoints(aliceSavings, 1000n - (await points(aliceSavings)));
      assert.equal(await points(aliceSavings), 1000n);
      const race = await Promise.all(
        Array.from({ length: 4 }, () =>
          payAtBank({
            instructedAmount: { amount: '7.00', currency: 'EUR' },
            creditor: { name: 'Bob Baker', iban: ibanOf.get(bobCurrent) },
            debtorAccountId: aliceSavings,
            points: '600',
          }),
        ),
      );
      // Each is refused before it is recorded, or recorded and rejected by the ledger; exactly one pays.
      const outcomes = race.map((response) =>
        response.statusCode === 201
          ? ((response.json() as PaymentJson).rejectionCode ?? (response.json() as PaymentJson).status)
          : (response.json() as { code: string }).code,
      );
      assert.equal(outcomes.filter((outcome) => outcome === 'settled').length, 1, outcomes.join());
      for (const outcome of outcomes.filter((o) => o !== 'settled'))
        assert.equal(outcome, 'insufficient_points');
      assert.equal(await points(aliceSavings), 400n);
    });

    it('returns a points-plus-money payment in both parts, and takes back what it earned', async () => {
      await topUpPoints(aliceCurrent, 1000n);
      const service = built.payments;
      assert.ok(service);
      const pay = async (amount: string, pointsOffered: string) => {
        const outcome = await service.initiate({ kind: 'customer', customerId: aliceId }, nextKey(), {
          instructedAmount: { amount, currency: 'EUR' },
          creditor: { name: 'Corner Grocer', iban: EXTERNAL_IBAN },
          debtorAccountId: aliceCurrent,
          points: pointsOffered,
          merchantCategory: '5411',
        });
        assert.ok(outcome.ok && outcome.payment.status === 'accepted', show(outcome));
        return outcome.payment;
      };
      const returnIt = (id: string) =>
        admin('POST', `/v1/sandbox/payments/${id}/return`, { reasonCode: 'AC04' });

      const before = await snapshot();
      const clearing = await bankPosted('bank:clearing-eur');
      const paid = await pay('30.00', '1000');
      // 20.00 in money earns 60 points.
      assert.equal(paid.points?.pointsEarned, 60n);
      assert.equal(await bankPosted('bank:clearing-eur'), clearing + 3000n);
      const returned = json<PaymentJson>(await returnIt(paid.id));
      assert.equal(returned.status, 'returned');
      assert.deepEqual(
        { ...(await snapshot()), payments: 0, debits: 0 },
        { ...before, payments: 0, debits: 0 },
        'money, points and the bank funding all back where they were',
      );
      assert.equal(await bankPosted('bank:clearing-eur'), clearing);
      const [refund] = await db.query<{
        status: string;
        money: bigint;
        points: bigint;
        clawback: bigint;
        waived: bigint;
      }>('select status, money, points, clawback, waived from loyalty_refunds where id = $1', [paid.id]);
      assert.deepEqual(refund, { status: 'applied', money: 2000n, points: 1000n, clawback: 60n, waived: 0n });

      // Earned points already spent cannot be taken back: the return still goes through, and what it could not
      // take is recorded as waived (the bank's loss), never a negative balance.
      const spent = await pay('10.00', '0'); // earns 30
      const all = await points(aliceCurrent);
      const spender = await service.initiate({ kind: 'customer', customerId: aliceId }, nextKey(), {
        instructedAmount: { amount: decimal(all), currency: 'EUR' },
        creditor: { name: 'Bob Baker', iban: ibanOf.get(bobCurrent) ?? '' },
        debtorAccountId: aliceCurrent,
        points: String(all),
      });
      assert.ok(spender.ok && spender.payment.status === 'settled');
      assert.equal(await points(aliceCurrent), 0n);
      assert.equal(json<PaymentJson>(await returnIt(spent.id)).status, 'returned');
      assert.equal(await points(aliceCurrent), 0n);
      const [waived] = await db.query<{ clawback: bigint; waived: bigint }>(
        'select clawback, waived from loyalty_refunds where id = $1',
        [spent.id],
      );
      assert.deepEqual(waived, { clawback: 0n, waived: 30n });
      assert.deepEqual(
        (await eventsAbout(db, aliceCurrent))
          .filter((e) => e.payload.debitId === spent.id)
          .map((e) => e.type),
        [
          'loyalty.debit.planned',
          'loyalty.debit.applied',
          'loyalty.refund.planned',
          'loyalty.refund.applied',
        ],
      );
    });

    it('refunds a charge in part, in proportion: the points part rounds down, the money part takes the rest', async () => {
      // As a merchant's refund of a charge would (src/mandates/): from the merchant's account back to the payer.
      await topUpPoints(aliceCurrent, 333n);
      const service = built.payments;
      assert.ok(service);
      const charged = await service.initiate({ kind: 'customer', customerId: aliceId }, nextKey(), {
        instructedAmount: { amount: '10.00', currency: 'EUR' },
        creditor: { name: 'Bob Baker', iban: ibanOf.get(bobCurrent) ?? '' },
        debtorAccountId: aliceCurrent,
        points: '333',
        merchantCategory: '5411',
      });
      assert.ok(charged.ok && charged.payment.status === 'settled');
      // 3.33 in points, 6.67 in money, earning floor(6.67 x 3) = 20 points.
      assert.deepEqual(
        [charged.payment.points?.pointsValue, charged.payment.points?.pointsEarned],
        [333n, 20n],
      );
      const before = await snapshot();
      const refund = async (amount: bigint) => {
        const planned = await loyalty.planRefund({
          refundId: randomUUID(),
          debitId: charged.payment.id,
          amount: amount as Minor,
        });
        assert.ok(planned);
        const transfer = await loyalty.refundTransfer(planned, {
          sourceLedgerAccountId: ledgerOf.get(bobCurrent) ?? '',
          debtorLedgerAccountId: ledgerOf.get(aliceCurrent) ?? '',
        });
        const outcome = await built.ledger.transfer(`test-refund:${planned.id}`, {
          postings: transfer.postings,
          pending: false,
          expiresAt: null,
          metadata: { ...transfer.metadata },
        });
        await db.transaction((tx) => loyalty.settleRefund(tx, planned, outcome.ok));
        assert.ok(outcome.ok, show(outcome));
        return planned;
      };
      // Half: 166.5 of the points' 333 cents rounds down to 166; money takes 334. 10 of the 20 earned go back.
      const half = await refund(500n);
      assert.deepEqual(
        [half.money, half.pointsValue, half.points, half.clawback, half.waived],
        [334n, 166n, 166n, 10n, 0n],
      );
      // The rest squares both parts exactly: 167 and 333.
      const rest = await refund(500n);
      assert.deepEqual(
        [rest.money, rest.pointsValue, rest.points, rest.clawback, rest.waived],
        [333n, 167n, 167n, 10n, 0n],
      );
      const after = await snapshot();
      assert.equal(after.money[0], (before.money[0] as bigint) + 667n, 'the money paid comes back');
      assert.equal(
        after.money[2],
        (before.money[2] as bigint) - 1000n,
        'the merchant refunds the full amount',
      );
      assert.equal(after.points[0], (before.points[0] as bigint) + 333n - 20n);
      assert.equal(after.funding, before.funding - 333n);
      // Nothing is left to refund.
      await assert.rejects(
        loyalty.planRefund({ refundId: randomUUID(), debitId: charged.payment.id, amount: 1n as Minor }),
        RangeError,
      );

      // The account's history, newest first: both refunds, then the charge (earned after redeemed).
      const cookie = await signIn('alice');
      const page = json<PointsJson>(
        await call('GET', `/v1/me/accounts/${aliceCurrent}/points?limit=6`, { cookie }),
      );
      assert.deepEqual(
        page.history.map((m) => [m.kind, m.points, m.refundId === null ? null : 'refund', m.paymentId]),
        [
          ['reversed', '10', 'refund', charged.payment.id],
          ['refunded', '167', 'refund', charged.payment.id],
          ['reversed', '10', 'refund', charged.payment.id],
          ['refunded', '166', 'refund', charged.payment.id],
          ['earned', '20', null, charged.payment.id],
          ['redeemed', '333', null, charged.payment.id],
        ],
      );
      assert.equal(page.history[0]?.balanceAfter, page.balance);
      assert.deepEqual(page.worth, { amount: decimal(BigInt(page.balance)), currency: 'EUR' });
      // Cursor pages run on without overlap, down to the first movement.
      const seen = new Set(page.history.map((m) => m.id));
      let cursor = page.nextCursor;
      for (let pages = 0; cursor && pages < 100; pages++) {
        const next = json<PointsJson>(
          await call('GET', `/v1/me/accounts/${aliceCurrent}/points?limit=6&cursor=${cursor}`, { cookie }),
        );
        for (const m of next.history) {
          assert.ok(!seen.has(m.id));
          seen.add(m.id);
        }
        cursor = next.nextCursor;
      }
      assert.equal(cursor, null);
      const [{ n } = { n: 0 }] = await db.query<{ n: number }>(
        `select count(*)::int as n from ledger_entries e join loyalty_wallets w on w.ledger_account_id = e.account_id
          where w.account_id = $1`,
        [aliceCurrent],
      );
      assert.equal(seen.size, n);
    });

    it("shows an account's points to an app only under a consent with balances, and never another's", async () => {
      const app = await newApp(['accounts']);
      const read = async (permissions: string[]) => {
        const consentId = await consent(app, { type: 'account_information', permissions });
        return authorise(app, consentId, 'account_information', 'openid accounts', aliceCurrent);
      };
      const withBalances = await read(['balances']);
      const shown = json<PointsJson>(
        await call('GET', `/v1/accounts/${aliceCurrent}/points?limit=2`, { token: withBalances }),
      );
      assert.deepEqual(
        [shown.accountId, shown.currency, shown.balance, shown.history.length],
        [aliceCurrent, 'PTS', (await points(aliceCurrent)).toString(), 2],
      );
      // An account the consent does not cover, another customer's, or none at all: not there.
      for (const other of [aliceSavings, bobCurrent, randomUUID()]) {
        assert.deepEqual(
          problem(await call('GET', `/v1/accounts/${other}/points`, { token: withBalances })),
          [404, 'not_found'],
        );
      }
      const transactionsOnly = await read(['transactions']);
      assert.deepEqual(
        problem(await call('GET', `/v1/accounts/${aliceCurrent}/points`, { token: transactionsOnly })),
        [403, 'permission_not_granted'],
      );
      assert.deepEqual(
        problem(await call('GET', `/v1/accounts/${aliceCurrent}/points`, { token: app.appToken })),
        [403, 'insufficient_scope'],
      );
      // The customer sees their own accounts only; an account with no points yet has an empty history.
      const bob = await signIn('bob');
      assert.deepEqual(
        problem(await call('GET', `/v1/me/accounts/${aliceCurrent}/points`, { cookie: bob })),
        [404, 'not_found'],
      );
      const none = json<PointsJson>(
        await call('GET', `/v1/me/accounts/${bobCurrent}/points`, { cookie: bob }),
      );
      assert.deepEqual([none.balance, none.history, none.nextCursor], ['0', [], null]);
      assert.deepEqual(
        problem(await call('GET', `/v1/me/accounts/${bobCurrent}/points?cursor=eHg6MQ`, { cookie: bob })),
        [400, 'invalid_cursor'],
      );
      // No redemption rate in GBP: the points are worth nothing there.
      const gbp = json<PointsJson>(
        await call('GET', `/v1/me/accounts/${aliceGbp}/points`, { cookie: await signIn('alice') }),
      );
      assert.equal(gbp.worth, null);
    });

    it('leaves a ledger that balances per currency, points included, and points accounts equal to the issued', async () => {
      const report = await built.ledger.verify();
      assert.ok(
        report.ok,
        JSON.stringify(report, (_, v) => (typeof v === 'bigint' ? `${v}` : v)),
      );
      const pts = report.currencies.find((c) => c.currency === 'PTS');
      assert.ok(pts && pts.debitsPosted === pts.creditsPosted && pts.debitsPosted > 0n);
      const [wallets] = await db.query<{ total: string }>(
        `select coalesce(sum(a.credits_posted - a.debits_posted), 0)::text as total
           from loyalty_wallets w join ledger_accounts a on a.id = w.ledger_account_id`,
      );
      assert.equal(BigInt(wallets?.total ?? '-1'), await bankPosted('bank:points-issued-pts'));
      const [stuck] = await db.query<{ n: number }>(
        `select count(*)::int as n from loyalty_debits where status = 'planned'`,
      );
      assert.equal(stuck?.n, 0, 'every recorded split was applied or voided');
    });
  });
}

/** For assertion messages: JSON with bigints as strings. */
function show(value: unknown): string {
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `${v}` : v));
}

function decimal(minor: bigint | Points): string {
  const digits = minor.toString().padStart(3, '0');
  return `${digits.slice(0, -2)}.${digits.slice(-2)}`;
}
