// Payments end to end: an app paying under the customer's consent (exactly the payment authorised, once),
// the customer paying at the bank's pages, outbound payments through clearing, settlement and returns,
// money arriving from other banks, funds confirmation, and every refusal leaving the money where it was.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse as InjectResponse } from 'fastify';
import { v7 as uuidv7 } from 'uuid';
import { eventsAbout } from '../events/outbox.ts';
import { balancesOf } from '../ledger/model.ts';
import type { BuiltApp } from '../main.ts';
import { createCustomer, newClientApp, signUpDeveloper, startBank } from '../testing/bank.ts';
import { inProcess, json, problem } from '../testing/calls.ts';
import { authoriseConsent } from '../testing/consent-flow.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { insertPayments, type StoredPayment, statusChange } from './store.ts';

const TOKEN = 'payments-test-operator-token-0123456789abcdef';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'payments test password';
// Valid, and not an account of this bank: a payment there is domestic, to another bank.
const EXTERNAL_IBAN = 'DE89370400440532013000';
const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();
const decimal = (minorUnits: bigint) => {
  const digits = minorUnits.toString().padStart(3, '0');
  return `${digits.slice(0, -2)}.${digits.slice(-2)}`;
};

interface PaymentJson {
  id: string;
  status: string;
  type: string;
  debtorAccountId: string;
  creditor: { name: string; iban: string };
  instructedAmount: { amount: string; currency: string };
  reference: string | null;
  rejectionCode: string | null;
  consentId: string | null;
  statusHistory: { status: string; at: string; code?: string }[];
  createdAt: string;
}
interface Instruction {
  instructedAmount: { amount: string; currency: string };
  creditor: { name: string; iban: string };
  reference?: string;
  debtorAccountId?: string;
}
type Customer = { customerId: string; accountIds: string[]; ledgerAccountIds: string[] };

for (const database of testDatabases()) {
  describe(`payments on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let issuer: string;
    let developer: Record<string, string>;
    let apps = 0;
    let incomingKeys = 0;
    let paymentKeys = 0;
    let alice: Customer;
    let bob: Customer;
    let carol: Customer;
    let aliceCurrent: string;
    let aliceSavings: string;
    let aliceGbp: string;
    let bobCurrent: string;
    let carolCurrent: string;
    const ibanOf = new Map<string, string>();

    // ---- calls --------------------------------------------------------------------------------------------

    const inApp = inProcess(() => built.app);
    const call = inApp.call;
    const admin = (method: 'GET' | 'POST' | 'PATCH', url: string, body?: unknown, key?: string) =>
      call(method, url, { token: TOKEN, body, ...(key && { key }) });
    const nextKey = () => `payment-${++paymentKeys}`;

    /** Money from another bank (the sandbox's stand-in for the scheme). */
    const receive = (iban: string, amount: string, key = `incoming-${++incomingKeys}`, currency = 'EUR') =>
      admin(
        'POST',
        '/v1/sandbox/incoming-payments',
        {
          creditorIban: iban,
          instructedAmount: { amount, currency },
          debtor: { name: 'Northwind Ltd' },
          reference: 'Salary',
        },
        key,
      );
    const settleCycle = async () =>
      json<{ settled: number; deferred: number }>(await admin('POST', '/v1/admin/payments/settlement-cycles'))
        .settled;
    const setStatus = async (accountId: string, status: string) =>
      json(await admin('PATCH', `/v1/admin/accounts/${accountId}`, { status }));

    /** The customer signed in at the bank's pages: the session cookie. */
    const signIn = (username: string) => inApp.signIn(username, PASSWORD);
    /** `key` null: sent without an Idempotency-Key. */
    const payAtBank = async (username: string, body: unknown, key: string | null = nextKey()) =>
      call('POST', '/v1/me/payments', { cookie: await signIn(username), body, ...(key && { key }) });

    // ---- balances -----------------------------------------------------------------------------------------

    const posted = async (accountId: string) => {
      const account = await built.accounts?.find(accountId);
      assert.ok(account, accountId);
      return (await built.accounts?.balances(account))?.posted ?? 0n;
    };
    /** The bank's own ledger account's balance (0 before its first use). */
    const bankPosted = async (purpose: 'clearing' | 'settlement') => {
      const [account] = await built.ledger.listAccounts({ code: `bank:${purpose}-eur` }, undefined, 1);
      return account ? balancesOf(account).posted : 0n;
    };
    const paymentRows = async () =>
      Number((await db.query<{ n: number }>('select count(*)::int as n from payments'))[0]?.n);
    /** Everything a refused payment must leave as it was. */
    const snapshot = async () => ({
      accounts: await Promise.all(
        [aliceCurrent, aliceSavings, aliceGbp, bobCurrent, carolCurrent].map(async (id) => [
          id,
          await posted(id),
        ]),
      ),
      clearing: await bankPosted('clearing'),
      settlement: await bankPosted('settlement'),
      payments: await paymentRows(),
    });

    // ---- apps and consents ---------------------------------------------------------------------------------

    /** An app: its OAuth configuration and an app-level (client credentials) token. */
    const newApp = (scopes: readonly string[] = ['payments']) =>
      newClientApp({ built, issuer }, developer, {
        name: `Pay Now ${++apps}`,
        scopes: ['openid', ...scopes],
        redirectUri: REDIRECT,
      });
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    const createConsent = async (app: TestApp, body: Record<string, unknown>) =>
      json<{ id: string }>(
        await call('POST', '/v1/consents', { token: app.appToken, body: { expiresAt: inDays(1), ...body } }),
        201,
      ).id;
    const consentStatus = async (app: TestApp, consentId: string) =>
      json<{ status: string }>(await call('GET', `/v1/consents/${consentId}`, { token: app.appToken }))
        .status;

    /** The customer authorises the consent at the bank, choosing `account`; returns the access token. */
    const authorise = async (
      app: TestApp,
      consentId: string,
      {
        username = 'alice',
        account = aliceCurrent,
        type = 'payment_initiation',
        scope = 'openid payments',
      } = {},
    ) => {
      const { accessToken } = await authoriseConsent({
        issuer,
        config: app.config,
        redirectUri: REDIRECT,
        scope,
        type,
        consentId,
        username,
        password: PASSWORD,
        accounts: [account],
      });
      assert.equal(await consentStatus(app, consentId), 'authorised');
      return accessToken;
    };
    /** A payment consent for `instruction`, authorised by Alice from `account`: its id and the token. */
    const authorisedPayment = async (
      app: TestApp,
      instruction: Instruction,
      options: { username?: string; account?: string } = {},
    ) => {
      const consentId = await createConsent(app, { type: 'payment_initiation', ...instruction });
      return { consentId, token: await authorise(app, consentId, options) };
    };
    const payByApp = (token: string, body: unknown, key: string | null = nextKey()) =>
      call('POST', '/v1/payments', { token, body, ...(key && { key }) });

    const toShop = (amount = '12.50', reference = 'Invoice 42'): Instruction => ({
      instructedAmount: { amount, currency: 'EUR' },
      creditor: { name: 'Corner Shop', iban: EXTERNAL_IBAN },
      reference,
    });
    const toBob = (amount: string, reference = 'Dinner'): Instruction => ({
      instructedAmount: { amount, currency: 'EUR' },
      creditor: { name: 'Bob Baker', iban: ibanOf.get(bobCurrent) ?? '' },
      reference,
    });

    before(async () => {
      db = await database.open();
      ({ built, issuer } = await startBank(db, { adminToken: TOKEN }));
      developer = await signUpDeveloper(built.app, 'payments-dev@example.com', PASSWORD);
      alice = await createCustomer(built, {
        username: 'alice',
        password: PASSWORD,
        legalName: 'Alice Able',
        accounts: [
          { product: 'current', currency: 'EUR' },
          { product: 'savings', currency: 'EUR' },
          { product: 'current', currency: 'GBP' },
        ],
      });
      bob = await createCustomer(built, { username: 'bob', password: PASSWORD, legalName: 'Bob Baker' });
      // These tests make many payments fast, as no customer would: the fraud rules stay off but for the
      // tests of the screening itself, which turn on the one they need.
      for (const rule of (await built.fraud?.rules()) ?? []) {
        await built.fraud?.updateRule(rule.id, { enabled: false, changedBy: 'payments-test' });
      }
      carol = await createCustomer(built, { username: 'carol', password: PASSWORD, legalName: 'Carol Cole' });
      [aliceCurrent = '', aliceSavings = '', aliceGbp = ''] = alice.accountIds;
      [bobCurrent = ''] = bob.accountIds;
      [carolCurrent = ''] = carol.accountIds;
      for (const id of [aliceCurrent, aliceSavings, aliceGbp, bobCurrent, carolCurrent]) {
        ibanOf.set(id, (await built.accounts?.find(id))?.iban ?? '');
      }
      // Funded from other banks, which also gives the bank's settlement account what outbound payments take.
      for (const [id, amount] of [
        [aliceCurrent, '1000.00'],
        [aliceSavings, '100.00'],
        [bobCurrent, '50.00'],
        [carolCurrent, '10.00'],
      ] as const) {
        json(await receive(ibanOf.get(id) ?? '', amount), 201);
      }
      json(await receive(ibanOf.get(aliceGbp) ?? '', '20.00', 'incoming-gbp', 'GBP'), 201);
      assert.equal(await posted(aliceCurrent), 100_000n);
      assert.equal(await bankPosted('settlement'), 116_000n);
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    it('pays another customer under an authorised consent, once', async () => {
      const app = await newApp();
      const { consentId, token } = await authorisedPayment(app, toBob('25.00'));
      const before = await snapshot();

      const response = await payByApp(token, toBob('25.00'));
      const payment = json<PaymentJson>(response, 201);
      assert.equal(response.headers['idempotent-replayed'], undefined);
      assert.deepEqual(
        { ...payment, id: undefined, createdAt: undefined, statusHistory: undefined },
        {
          id: undefined,
          status: 'settled',
          type: 'internal',
          debtorAccountId: aliceCurrent,
          creditor: { name: 'Bob Baker', iban: ibanOf.get(bobCurrent) },
          instructedAmount: { amount: '25.00', currency: 'EUR' },
          reference: 'Dinner',
          rejectionCode: null,
          consentId,
          createdAt: undefined,
          statusHistory: undefined,
        },
      );
      assert.deepEqual(
        payment.statusHistory.map((change) => change.status),
        ['received', 'settled'],
      );
      assert.equal(await posted(aliceCurrent), (before.accounts[0]?.[1] as bigint) - 2500n);
      assert.equal(await posted(bobCurrent), (before.accounts[3]?.[1] as bigint) + 2500n);
      assert.equal(await bankPosted('clearing'), before.clearing, 'an internal payment never clears');
      assert.equal(await consentStatus(app, consentId), 'consumed');

      // A consumed consent pays once: another payment under it is refused, the same request again is a replay.
      const afterPayment = await snapshot();
      assert.deepEqual(problem(await payByApp(token, toBob('25.00'))), [409, 'consent_not_active']);
      const replay = await payByApp(token, toBob('25.00'), `payment-${paymentKeys - 1}`);
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      assert.equal(json<PaymentJson>(replay, 201).id, payment.id);
      assert.deepEqual(await snapshot(), afterPayment);

      // The app sees its payment with its app token; another app does not, nor a token without the consent.
      assert.deepEqual(
        json<PaymentJson>(await call('GET', `/v1/payments/${payment.id}`, { token: app.appToken })),
        payment,
      );
      const other = await newApp();
      assert.deepEqual(problem(await call('GET', `/v1/payments/${payment.id}`, { token: other.appToken })), [
        404,
        'not_found',
      ]);
      assert.deepEqual(problem(await payByApp(app.appToken, toBob('25.00'))), [403, 'insufficient_scope']);
      assert.deepEqual(await snapshot(), afterPayment);
    });

    it('takes a payment to another bank into clearing, settles it in a cycle, and returns it', async () => {
      await settleCycle(); // whatever earlier tests left accepted
      const start = await snapshot();
      const pay = async (amount: string) =>
        json<PaymentJson>(
          await payAtBank('alice', { ...toShop(amount), debtorAccountId: aliceCurrent }),
          201,
        );

      const settledLater = await pay('30.00');
      assert.equal(settledLater.status, 'accepted');
      assert.equal(settledLater.type, 'domestic');
      assert.equal(settledLater.consentId, null);
      assert.equal(await posted(aliceCurrent), (start.accounts[0]?.[1] as bigint) - 3000n);
      assert.equal(await bankPosted('clearing'), start.clearing + 3000n);
      assert.equal(await bankPosted('settlement'), start.settlement);

      assert.equal(await settleCycle(), 1);
      const cookie = await signIn('alice');
      const settled = json<PaymentJson>(await call('GET', `/v1/me/payments/${settledLater.id}`, { cookie }));
      assert.equal(settled.status, 'settled');
      assert.deepEqual(
        settled.statusHistory.map((change) => change.status),
        ['received', 'accepted', 'settling', 'settled'],
      );
      assert.equal(await bankPosted('clearing'), start.clearing);
      assert.equal(await bankPosted('settlement'), start.settlement - 3000n, 'the money left the bank');
      assert.equal(await settleCycle(), 0, 'a second cycle finds nothing to settle');
      assert.equal(await bankPosted('settlement'), start.settlement - 3000n);

      // The receiving bank sends it back: from settlement, since it had settled.
      const returned = json<PaymentJson>(
        await admin('POST', `/v1/sandbox/payments/${settledLater.id}/return`, { reasonCode: 'AC04' }),
      );
      assert.equal(returned.status, 'returned');
      assert.equal(returned.rejectionCode, 'AC04');
      assert.deepEqual(returned.statusHistory.at(-1)?.code, 'AC04');
      assert.deepEqual(
        returned.statusHistory.map((change) => change.status),
        ['received', 'accepted', 'settling', 'settled', 'returning', 'returned'],
      );
      assert.equal(await posted(aliceCurrent), start.accounts[0]?.[1]);
      assert.equal(await bankPosted('settlement'), start.settlement);
      assert.equal(await bankPosted('clearing'), start.clearing);
      assert.deepEqual(
        problem(
          await admin('POST', `/v1/sandbox/payments/${settledLater.id}/return`, { reasonCode: 'AC04' }),
        ),
        [409, 'payment_not_returnable'],
      );
      assert.equal(await posted(aliceCurrent), start.accounts[0]?.[1], 'returned once');

      // Returned before its cycle: from clearing, and the cycle then has nothing to settle.
      const returnedEarly = await pay('5.00');
      assert.equal(await bankPosted('clearing'), start.clearing + 500n);
      const early = json<PaymentJson>(
        await admin('POST', `/v1/sandbox/payments/${returnedEarly.id}/return`, { reasonCode: 'AC04' }),
      );
      assert.deepEqual(
        early.statusHistory.map((change) => change.status),
        ['received', 'accepted', 'returning', 'returned'],
      );
      assert.equal(await bankPosted('clearing'), start.clearing);
      assert.equal(await settleCycle(), 0);
      assert.equal(await posted(aliceCurrent), start.accounts[0]?.[1]);
      assert.equal(await bankPosted('settlement'), start.settlement);

      // Only payments to another bank go back; only operators send them back.
      const internal = json<PaymentJson>(
        await payAtBank('alice', { ...toBob('1.00'), debtorAccountId: aliceCurrent }),
        201,
      );
      assert.equal(internal.status, 'settled');
      assert.deepEqual(
        problem(await admin('POST', `/v1/sandbox/payments/${internal.id}/return`, { reasonCode: 'AC04' })),
        [409, 'payment_not_returnable'],
      );
      assert.deepEqual(
        problem(
          await admin('POST', '/v1/sandbox/payments/00000000-0000-7000-8000-000000000000/return', {
            reasonCode: 'AC04',
          }),
        ),
        [404, 'not_found'],
      );
      const anonymous = await call('POST', `/v1/sandbox/payments/${returnedEarly.id}/return`, {
        body: { reasonCode: 'AC04' },
      });
      assert.equal(anonymous.statusCode, 401);
      assert.equal((await call('POST', '/v1/admin/payments/settlement-cycles')).statusCode, 401);
    });

    it('refuses any payment that differs from the one authorised, and still makes the right one', async () => {
      const app = await newApp();
      const right = toShop();
      const { consentId, token } = await authorisedPayment(app, right);
      const before = await snapshot();
      const mismatches: [string, unknown][] = [
        ['amount', { ...right, instructedAmount: { amount: '12.51', currency: 'EUR' } }],
        ['currency', { ...right, instructedAmount: { amount: '12.50', currency: 'GBP' } }],
        ['creditor IBAN', { ...right, creditor: { name: 'Corner Shop', iban: 'GB82WEST12345698765432' } }],
        ['creditor name', { ...right, creditor: { name: 'Corner Shop Ltd', iban: EXTERNAL_IBAN } }],
        ['reference', { ...right, reference: 'Invoice 43' }],
        ['no reference', { instructedAmount: right.instructedAmount, creditor: right.creditor }],
        ['debtor account', { ...right, debtorAccountId: aliceSavings }],
      ];
      for (const [what, body] of mismatches) {
        assert.deepEqual(problem(await payByApp(token, body)), [422, 'consent_mismatch'], what);
      }
      assert.deepEqual(problem(await payByApp(token, { ...right, tip: '1.00' })), [400, 'validation_failed']);
      assert.deepEqual(problem(await payByApp(token, right, null)), [400, 'idempotency_key_missing']);
      assert.deepEqual(await snapshot(), before, 'nothing moved, nothing recorded');
      assert.equal(await consentStatus(app, consentId), 'authorised');

      // The same payment, the IBAN spaced and in lower case, naming the account the customer chose.
      const paid = json<PaymentJson>(
        await payByApp(token, {
          ...right,
          creditor: { name: 'Corner Shop', iban: 'de89 3704 0044 0532 0130 00' },
          debtorAccountId: aliceCurrent,
        }),
        201,
      );
      assert.equal(paid.status, 'accepted');
      assert.deepEqual(paid.creditor, { name: 'Corner Shop', iban: EXTERNAL_IBAN });
      assert.equal(await posted(aliceCurrent), (before.accounts[0]?.[1] as bigint) - 1250n);
      assert.equal(await bankPosted('clearing'), before.clearing + 1250n);
      assert.equal(await consentStatus(app, consentId), 'consumed');
    });

    it('makes one payment of one Idempotency-Key, however often and however concurrently it is sent', async () => {
      const cookie = await signIn('alice');
      const body = { ...toBob('2.00'), debtorAccountId: aliceCurrent };
      const start = await snapshot();
      const first = await payAtBank('alice', body, 'same-key-1');
      const again = await payAtBank('alice', body, 'same-key-1');
      const payment = json<PaymentJson>(first, 201);
      assert.equal(first.headers['idempotent-replayed'], undefined);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.deepEqual(json<PaymentJson>(again, 201), payment);
      assert.equal(await posted(aliceCurrent), (start.accounts[0]?.[1] as bigint) - 200n);
      assert.equal(await paymentRows(), start.payments + 1);

      const moved = await snapshot();
      assert.deepEqual(problem(await payAtBank('alice', { ...body, reference: 'Lunch' }, 'same-key-1')), [
        422,
        'idempotency_key_reused',
      ]);
      assert.deepEqual(problem(await payAtBank('alice', body, null)), [400, 'idempotency_key_missing']);
      assert.deepEqual(await snapshot(), moved);
      // Keys belong to their caller: Bob's same key is his own payment.
      const bobs = json<PaymentJson>(
        await payAtBank('bob', { ...toShop('1.00'), debtorAccountId: bobCurrent }, 'same-key-1'),
        201,
      );
      assert.notEqual(bobs.id, payment.id);

      // Twins at once: one payment, one movement, and every answer names it.
      const twins = await Promise.all(
        Array.from({ length: 5 }, () => payAtBank('alice', body, 'same-key-2')),
      );
      const ids = new Set(twins.map((response) => json<PaymentJson>(response, 201).id));
      assert.equal(ids.size, 1);
      assert.equal(twins.filter((response) => response.headers['idempotent-replayed'] === 'true').length, 4);
      const [twinId = ''] = ids;
      const twin = json<PaymentJson>(await call('GET', `/v1/me/payments/${twinId}`, { cookie }));
      assert.equal(twin.status, 'settled');
      assert.deepEqual(
        twin.statusHistory.map((change) => change.status),
        ['received', 'settled'],
      );
      assert.equal(await posted(aliceCurrent), (start.accounts[0]?.[1] as bigint) - 400n);
      assert.equal(await posted(bobCurrent), (start.accounts[3]?.[1] as bigint) + 400n - 100n);

      // The same through an app: the twins either replay the payment or find the consent used up.
      const app = await newApp();
      const { consentId, token } = await authorisedPayment(app, toBob('3.00'));
      const beforeApp = await snapshot();
      const answers = await Promise.all(
        Array.from({ length: 3 }, () => payByApp(token, toBob('3.00'), 'app-key')),
      );
      const created = answers.filter((response) => response.statusCode === 201);
      assert.ok(created.length >= 1);
      for (const response of answers) {
        if (response.statusCode !== 201) {
          assert.ok(
            ['idempotency_key_in_flight', 'consent_not_active'].includes(String(problem(response)[1])),
            response.body,
          );
        }
      }
      assert.equal(new Set(created.map((response) => json<PaymentJson>(response, 201).id)).size, 1);
      const appPaymentId = json<PaymentJson>(created[0] as InjectResponse, 201).id;
      assert.equal(
        json<PaymentJson>(await call('GET', `/v1/payments/${appPaymentId}`, { token: app.appToken })).status,
        'settled',
      );
      assert.equal(await posted(aliceCurrent), (beforeApp.accounts[0]?.[1] as bigint) - 300n);
      assert.equal(await paymentRows(), beforeApp.payments + 1);
      assert.equal(await consentStatus(app, consentId), 'consumed');
    });

    it('never both moves the money and lets a racing revocation win', async () => {
      const revokers = [
        async (_app: TestApp, consentId: string) =>
          call('DELETE', `/v1/me/consents/${consentId}`, { cookie: await signIn('alice') }),
        async (app: TestApp, consentId: string) =>
          call('DELETE', `/v1/consents/${consentId}`, { token: app.appToken }),
      ];
      for (const revoke of revokers) {
        const app = await newApp();
        const { consentId, token } = await authorisedPayment(app, toBob('3.00'));
        const before = await snapshot();
        const [paid, revoked] = await Promise.all([payByApp(token, toBob('3.00')), revoke(app, consentId)]);
        const status = await consentStatus(app, consentId);
        if (status === 'consumed') {
          assert.equal(json<PaymentJson>(paid, 201).status, 'settled');
          assert.deepEqual(problem(revoked), [409, 'consent_not_active']);
          assert.equal(await posted(aliceCurrent), (before.accounts[0]?.[1] as bigint) - 300n);
          assert.equal(await paymentRows(), before.payments + 1);
        } else {
          assert.equal(status, 'revoked');
          assert.equal(revoked.statusCode, 204);
          assert.ok(
            [
              [401, 'invalid_token'],
              [409, 'consent_not_active'],
            ].some((refusal) => JSON.stringify(refusal) === JSON.stringify(problem(paid))),
            paid.body,
          );
          assert.deepEqual(await snapshot(), before);
        }
      }
    });

    it('records a payment the account cannot cover as rejected, moving nothing and using up the consent', async () => {
      const app = await newApp();
      const { consentId, token } = await authorisedPayment(app, toShop('12.50'), {
        username: 'carol',
        account: carolCurrent,
      });
      const before = await snapshot();
      const payment = json<PaymentJson>(await payByApp(token, toShop('12.50')), 201);
      assert.equal(payment.status, 'rejected');
      assert.equal(payment.rejectionCode, 'insufficient_funds');
      assert.deepEqual(
        payment.statusHistory.map(({ status, code }) => [status, code]),
        [
          ['received', undefined],
          ['rejected', 'insufficient_funds'],
        ],
      );
      assert.deepEqual(await snapshot(), { ...before, payments: before.payments + 1 });
      // The consent was for this one payment, and it was made (and refused): a new attempt needs a new consent.
      assert.equal(await consentStatus(app, consentId), 'consumed');
      const ended = (await eventsAbout(db, consentId)).filter(({ type }) => type === 'consent.consumed');
      assert.deepEqual(
        ended.map(({ payload }) => payload),
        [
          {
            consentId,
            clientId: app.id,
            customerId: carol.customerId,
            type: 'payment_initiation',
            status: 'consumed',
          },
        ],
      );
    });

    it('moves the money of concurrent payments each to its own outcome, and leaves none recorded but unmoved', async () => {
      // Concurrent payments share a transaction and one ledger call (src/db/group-commit.ts): each keeps its
      // own result, and a refusal is only its own.
      const cookies = await Promise.all(['alice', 'bob', 'carol'].map((username) => signIn(username)));
      const before = await snapshot();
      const pay = (cookie: string, debtorAccountId: string, amount: string) =>
        call('POST', '/v1/me/payments', {
          cookie,
          key: nextKey(),
          body: {
            instructedAmount: { amount, currency: 'EUR' },
            creditor: { name: 'Corner Shop', iban: EXTERNAL_IBAN },
            debtorAccountId,
          },
        }).then((response) => json<PaymentJson>(response, 201));
      const [fromAlice, fromBob, fromCarol] = await Promise.all([
        pay(cookies[0] as string, aliceCurrent, '1.00'),
        pay(cookies[1] as string, bobCurrent, '2.00'),
        pay(cookies[2] as string, carolCurrent, '900000.00'),
      ]);
      assert.deepEqual(
        [fromAlice, fromBob, fromCarol].map((payment) => [payment.status, payment.rejectionCode]),
        [
          ['accepted', null],
          ['accepted', null],
          ['rejected', 'insufficient_funds'],
        ],
      );
      const after = await snapshot();
      const moved = new Map(
        after.accounts.map(([id, amount], i) => [
          id,
          (amount as bigint) - (before.accounts[i]?.[1] as bigint),
        ]),
      );
      assert.equal(moved.get(aliceCurrent), -100n);
      assert.equal(moved.get(bobCurrent), -200n);
      assert.equal(moved.get(carolCurrent), 0n);
      assert.equal(after.clearing - before.clearing, 300n);
      assert.equal(after.payments, before.payments + 3);
      const unmoved = await db.query("select id from payments where status = 'received'");
      assert.equal(unmoved.length, 0);
      // Each change is an event, in order, at the time the payment's history gives it.
      for (const payment of [fromAlice, fromBob, fromCarol]) {
        const events = await eventsAbout(db, payment.id);
        assert.deepEqual(
          events.map(({ type, payload, createdAt }) => [type, payload.status, createdAt.toISOString()]),
          payment.statusHistory.map(({ status, at }) => [`payment.${status}`, status, at]),
        );
      }
      assert.ok((await built.ledger.verify()).ok);
    });

    it('records the payments of one joint call, each with its events, and one payment per key', async () => {
      // A group's payments are inserted in one statement (src/db/group-commit.ts).
      const at = (ms: number) => new Date(Date.UTC(2026, 10, 27, 9, 0, 0, ms));
      const payment = (key: string, code: string, refusedAt: Date): StoredPayment => ({
        id: uuidv7(),
        clientId: null,
        customerId: alice.customerId,
        consentId: null,
        idempotencyScope: `joint-call-test:${alice.customerId}`,
        idempotencyKey: key,
        requestHash: 'hash',
        debtorAccountId: aliceCurrent,
        type: 'domestic',
        creditorNameEnc: 'sealed',
        creditorIban: EXTERNAL_IBAN,
        creditorAccountId: null,
        currency: 'EUR',
        amount: 12_345_678_901_234_567n,
        reference: null,
        quoteId: null,
        status: 'rejected',
        rejectionCode: code,
        statusHistory: [statusChange('received', null, at(1)), statusChange('rejected', code, refusedAt)],
        createdAt: at(1),
        updatedAt: refusedAt,
      });
      const eventsOf = (p: StoredPayment) =>
        p.statusHistory.map(({ status }) => ({ type: `payment.${status}`, payload: { status } }));
      // Refused payments: the ledger's invariants (clearing holds what is accepted) stay as they were.
      const [first, twin, other] = [
        payment('a', 'payment_blocked', at(2)),
        payment('a', 'insufficient_funds', at(3)),
        payment('b', 'insufficient_funds', at(4)),
      ];
      assert.deepEqual(
        await insertPayments(
          db,
          [first, twin, other].map((p) => ({ payment: p, events: eventsOf(p) })),
        ),
        [true, false, true],
      );
      const stored = await db.query<{ id: string; amount: bigint; status_history: unknown }>(
        'select id, amount, status_history from payments where idempotency_scope = $1 order by idempotency_key',
        [`joint-call-test:${alice.customerId}`],
      );
      assert.deepEqual(
        stored.map((row) => [row.id, BigInt(row.amount), row.status_history]),
        [first, other].map((p) => [p.id, p.amount, p.statusHistory]),
      );
      for (const p of [first, twin, other]) {
        const events = await eventsAbout(db, p.id);
        assert.deepEqual(
          events.map(({ type, payload, createdAt }) => [type, payload, createdAt.toISOString()]),
          p === twin ? [] : p.statusHistory.map(({ status, at }) => [`payment.${status}`, { status }, at]),
        );
      }
    });

    it("lets the customer pay at the bank's pages, from their own account only", async () => {
      const start = await snapshot();
      const response = await payAtBank('alice', { ...toBob('4.00', 'Books'), debtorAccountId: aliceSavings });
      const payment = json<PaymentJson>(response, 201);
      assert.deepEqual(
        [payment.status, payment.type, payment.debtorAccountId, payment.consentId],
        ['settled', 'internal', aliceSavings, null],
      );
      assert.equal(await posted(aliceSavings), (start.accounts[1]?.[1] as bigint) - 400n);
      assert.equal(await posted(bobCurrent), (start.accounts[3]?.[1] as bigint) + 400n);

      const paid = await snapshot();
      assert.deepEqual(problem(await payAtBank('alice', { ...toShop(), debtorAccountId: bobCurrent })), [
        404,
        'not_found',
      ]);
      assert.deepEqual(problem(await payAtBank('alice', toShop())), [400, 'validation_failed']);
      const anonymous = await call('POST', '/v1/me/payments', {
        key: nextKey(),
        body: { ...toShop(), debtorAccountId: aliceCurrent },
      });
      assert.deepEqual(problem(anonymous), [401, 'unauthorized']);
      assert.deepEqual(await snapshot(), paid);

      // To an account of this bank in another currency: refused before anything is recorded.
      const toGbp = await payAtBank('alice', {
        instructedAmount: { amount: '1.00', currency: 'EUR' },
        creditor: { name: 'Alice Able', iban: ibanOf.get(aliceGbp) },
        debtorAccountId: aliceCurrent,
      });
      assert.deepEqual(problem(toGbp), [422, 'currency_mismatch']);
      assert.deepEqual(await snapshot(), paid);

      const mine = json<PaymentJson>(
        await call('GET', `/v1/me/payments/${payment.id}`, { cookie: await signIn('alice') }),
      );
      assert.deepEqual(mine, payment);
      assert.deepEqual(
        problem(await call('GET', `/v1/me/payments/${payment.id}`, { cookie: await signIn('bob') })),
        [404, 'not_found'],
        'the payee does not see the payer',
      );
      assert.equal((await call('GET', `/v1/me/payments/${payment.id}`)).statusCode, 401);
      const app = await newApp();
      assert.deepEqual(problem(await call('GET', `/v1/payments/${payment.id}`, { token: app.appToken })), [
        404,
        'not_found',
      ]);
    });

    it('credits money from another bank once, to an account of this bank in its currency', async () => {
      const bobIban = ibanOf.get(bobCurrent) ?? '';
      const start = await snapshot();
      const first = json<{ transferId: string }>(await receive(bobIban, '7.25', 'incoming-once'), 201);
      const again = json<{ transferId: string }>(await receive(bobIban, '7.25', 'incoming-once'), 201);
      assert.equal(again.transferId, first.transferId);
      assert.equal(await posted(bobCurrent), (start.accounts[3]?.[1] as bigint) + 725n);
      assert.equal(await bankPosted('settlement'), start.settlement + 725n);
      // Spaced and lower case, as people write IBANs.
      const spaced = bobIban.toLowerCase().replace(/(.{4})/g, '$1 ');
      json(await receive(spaced, '0.75'), 201);
      assert.equal(await posted(bobCurrent), (start.accounts[3]?.[1] as bigint) + 800n);

      const received = await snapshot();
      assert.deepEqual(problem(await receive(bobIban, '7.26', 'incoming-once')), [
        422,
        'idempotency_key_reused',
      ]);
      assert.deepEqual(problem(await receive(EXTERNAL_IBAN, '1.00')), [404, 'not_found']);
      assert.deepEqual(problem(await receive(bobIban, '1.00', undefined, 'GBP')), [422, 'currency_mismatch']);
      assert.deepEqual(problem(await receive(bobIban, '1.5')), [400, 'amount_scale_mismatch']);
      assert.deepEqual(problem(await receive(bobIban, '0.00')), [400, 'validation_failed']);
      const unkeyed = await call('POST', '/v1/sandbox/incoming-payments', {
        token: TOKEN,
        body: {
          creditorIban: bobIban,
          instructedAmount: { amount: '1.00', currency: 'EUR' },
          debtor: { name: 'X' },
        },
      });
      assert.deepEqual(problem(unkeyed), [400, 'idempotency_key_missing']);
      const anonymous = await call('POST', '/v1/sandbox/incoming-payments', {
        key: 'incoming-anonymous',
        body: {
          creditorIban: bobIban,
          instructedAmount: { amount: '1.00', currency: 'EUR' },
          debtor: { name: 'X' },
        },
      });
      assert.equal(anonymous.statusCode, 401);
      assert.deepEqual(await snapshot(), received);

      // A closed account takes nothing in.
      const dan = await createCustomer(built, { username: 'dan', password: PASSWORD });
      const [danAccount = ''] = dan.accountIds;
      await setStatus(danAccount, 'closed');
      const danIban = (await built.accounts?.find(danAccount))?.iban ?? '';
      assert.deepEqual(problem(await receive(danIban, '1.00')), [409, 'account_closed']);
      assert.equal(await posted(danAccount), 0n);
    });

    it('confirms funds up to the available balance of the account the customer chose, and nothing else', async () => {
      const app = await newApp(['funds_confirmation']);
      const consentId = await createConsent(app, { type: 'funds_confirmation' });
      const token = await authorise(app, consentId, {
        username: 'bob',
        account: bobCurrent,
        type: 'funds_confirmation',
        scope: 'openid funds_confirmation',
      });
      const bobAccount = await built.accounts?.find(bobCurrent);
      assert.ok(bobAccount);
      const available = (await built.accounts?.balances(bobAccount))?.available ?? 0n;
      assert.ok(available > 0n);
      const ask = (amount: string, currency = 'EUR', as = token) =>
        call('POST', '/v1/funds-confirmations', {
          token: as,
          body: { instructedAmount: { amount, currency } },
        });
      const answer = async (amount: string) =>
        json<{ fundsAvailable: boolean }>(await ask(amount)).fundsAvailable;
      assert.equal(await answer('0.01'), true);
      assert.equal(await answer(decimal(available)), true);
      assert.equal(await answer(decimal(available + 1n)), false);
      assert.equal(await answer('1000000.00'), false);
      assert.deepEqual(problem(await ask('1.00', 'GBP')), [422, 'currency_mismatch']);
      assert.deepEqual(problem(await ask('1.5')), [400, 'amount_scale_mismatch']);
      assert.deepEqual(problem(await ask('0.00')), [400, 'validation_failed']);
      assert.deepEqual(problem(await ask('1.00', 'EUR', app.appToken)), [403, 'insufficient_scope']);
      // Asking moves nothing and uses nothing up.
      assert.equal(await posted(bobCurrent), available);
      assert.equal(await consentStatus(app, consentId), 'authorised');

      // A payment consent's token answers no funds question, and a funds consent pays nothing.
      const payer = await newApp();
      const { token: paymentToken } = await authorisedPayment(payer, toShop('1.00'));
      assert.deepEqual(problem(await ask('1.00', 'EUR', paymentToken)), [403, 'insufficient_scope']);
      assert.deepEqual(problem(await payByApp(token, toShop('1.00'))), [403, 'insufficient_scope']);
    });

    it('refuses bad payments with a problem, never a server error, and stores nothing', async () => {
      const before = await snapshot();
      const base = { ...toShop(), debtorAccountId: aliceCurrent };
      const cases: [string, unknown, number, string][] = [
        [
          'IBAN check digits',
          { ...base, creditor: { name: 'Corner Shop', iban: 'DE00370400440532013000' } },
          422,
          'invalid_creditor_iban',
        ],
        [
          'IBAN characters',
          { ...base, creditor: { name: 'Corner Shop', iban: 'DE89-3704-0044-0532-0130' } },
          400,
          'validation_failed',
        ],
        [
          'too many decimals',
          { ...base, instructedAmount: { amount: '12.505', currency: 'EUR' } },
          400,
          'amount_scale_mismatch',
        ],
        [
          'too few decimals',
          { ...base, instructedAmount: { amount: '12.5', currency: 'EUR' } },
          400,
          'amount_scale_mismatch',
        ],
        [
          'negative',
          { ...base, instructedAmount: { amount: '-12.50', currency: 'EUR' } },
          400,
          'validation_failed',
        ],
        [
          'zero',
          { ...base, instructedAmount: { amount: '0.00', currency: 'EUR' } },
          400,
          'validation_failed',
        ],
        [
          'number',
          { ...base, instructedAmount: { amount: 12.5, currency: 'EUR' } },
          400,
          'validation_failed',
        ],
        [
          'past any balance',
          { ...base, instructedAmount: { amount: '9999999999999999999.99', currency: 'EUR' } },
          400,
          'validation_failed',
        ],
        [
          'not a currency',
          { ...base, instructedAmount: { amount: '12.50', currency: 'XXX' } },
          400,
          'unsupported_currency',
        ],
        [
          "not the account's currency",
          { ...base, instructedAmount: { amount: '12.50', currency: 'GBP' } },
          422,
          'currency_mismatch',
        ],
        ['unknown field', { ...base, priority: 'urgent' }, 400, 'validation_failed'],
        [
          'unknown creditor field',
          { ...base, creditor: { ...base.creditor, bic: 'COBADEFFXXX' } },
          400,
          'validation_failed',
        ],
        [
          'no creditor name',
          { ...base, creditor: { name: '', iban: EXTERNAL_IBAN } },
          400,
          'validation_failed',
        ],
        ['empty reference', { ...base, reference: '' }, 400, 'validation_failed'],
        ['malformed account id', { ...base, debtorAccountId: 'current' }, 400, 'validation_failed'],
        [
          'unknown account',
          { ...base, debtorAccountId: '00000000-0000-7000-8000-000000000000' },
          404,
          'not_found',
        ],
        ["somebody else's account", { ...base, debtorAccountId: bobCurrent }, 404, 'not_found'],
        [
          "somebody else's account, paid to itself",
          { ...base, debtorAccountId: bobCurrent, creditor: { name: 'Bob', iban: ibanOf.get(bobCurrent) } },
          404,
          'not_found',
        ],
        [
          'same account',
          { ...base, creditor: { name: 'Alice Able', iban: ibanOf.get(aliceCurrent) } },
          422,
          'same_account',
        ],
        ['not an object', [base], 400, 'validation_failed'],
      ];
      for (const [what, body, status, code] of cases) {
        assert.deepEqual(problem(await payAtBank('alice', body)), [status, code], what);
      }
      const malformedKey = await call('POST', '/v1/me/payments', {
        cookie: await signIn('alice'),
        key: 'k'.repeat(256),
        body: base,
      });
      assert.deepEqual(problem(malformedKey), [400, 'idempotency_key_invalid']);
      assert.deepEqual(await snapshot(), before);
    });

    it('rejects a payment from or to an account that is not active, moving nothing', async () => {
      const body = { ...toBob('1.00'), debtorAccountId: carolCurrent };
      await setStatus(carolCurrent, 'frozen');
      const before = await snapshot();
      const fromFrozen = json<PaymentJson>(await payAtBank('carol', body), 201);
      assert.deepEqual(
        [fromFrozen.status, fromFrozen.rejectionCode],
        ['rejected', 'debtor_account_not_active'],
      );
      assert.deepEqual(
        fromFrozen.statusHistory.map(({ status, code }) => [status, code]),
        [
          ['received', undefined],
          ['rejected', 'debtor_account_not_active'],
        ],
      );
      assert.deepEqual(await snapshot(), { ...before, payments: before.payments + 1 });
      await setStatus(carolCurrent, 'active');

      await setStatus(bobCurrent, 'frozen');
      const toFrozen = json<PaymentJson>(await payAtBank('carol', body), 201);
      assert.deepEqual(
        [toFrozen.status, toFrozen.rejectionCode],
        ['rejected', 'creditor_account_not_active'],
      );
      assert.deepEqual(await snapshot(), { ...before, payments: before.payments + 2 });
      await setStatus(bobCurrent, 'active');

      // Through an app too: the consent was authorised while the account was active.
      const app = await newApp();
      const { consentId, token } = await authorisedPayment(app, toShop('2.00'), {
        username: 'carol',
        account: carolCurrent,
      });
      await setStatus(carolCurrent, 'frozen');
      const byApp = json<PaymentJson>(await payByApp(token, toShop('2.00')), 201);
      assert.deepEqual([byApp.status, byApp.rejectionCode], ['rejected', 'debtor_account_not_active']);
      assert.deepEqual(await snapshot(), { ...before, payments: before.payments + 3 });
      assert.equal(await consentStatus(app, consentId), 'consumed');
      await setStatus(carolCurrent, 'active');

      const paid = json<PaymentJson>(await payAtBank('carol', body), 201);
      assert.equal(paid.status, 'settled');
      assert.equal(await posted(carolCurrent), (before.accounts[4]?.[1] as bigint) - 100n);
    });

    it('never both settles and returns a payment when a return races a settlement cycle', async () => {
      const payments = built.payments;
      assert.ok(payments);
      for (let round = 0; round < 6; round++) {
        const paid = json<PaymentJson>(
          await payAtBank('alice', {
            instructedAmount: { amount: '0.10', currency: 'EUR' },
            creditor: { name: 'Racing Payee', iban: EXTERNAL_IBAN },
            debtorAccountId: aliceCurrent,
          }),
          201,
        );
        const before = await posted(aliceCurrent);
        // Both started before either is awaited: they run together.
        const settling = payments.settleCycle();
        const returning: Promise<unknown> = payments.returnPayment(paid.id, 'AC04');
        await settling;
        const returned: unknown = await returning;
        const alice = (await built.accounts?.find(aliceCurrent))?.customerId ?? '';
        const final = await payments.get({ customerId: alice }, paid.id);
        assert.ok(final && ['settled', 'returned', 'accepted'].includes(final.status), final?.status);
        if (final?.status === 'returned') {
          assert.equal(await posted(aliceCurrent), (before as bigint) + 10n, 'the money came back once');
        } else {
          assert.equal(returned, 'not_returnable');
          assert.equal(await posted(aliceCurrent), before);
        }
      }
      await payments.settleCycle();
      assert.ok((await built.ledger.verify()).ok);
    });

    it('screens every payment: a block-listed payee is refused, and nobody is told why', async () => {
      const fraud = built.fraud;
      assert.ok(fraud);
      await fraud.updateRule('blocklisted_payee', { enabled: true, changedBy: 'payments-test' });
      await fraud.addToBlocklist({ iban: EXTERNAL_IBAN, reason: 'mule account', addedBy: 'ops' });
      try {
        const before = await snapshot();
        const refused = json<PaymentJson>(
          await payAtBank('alice', {
            instructedAmount: { amount: '5.00', currency: 'EUR' },
            creditor: { name: 'Mule', iban: EXTERNAL_IBAN },
            debtorAccountId: aliceCurrent,
          }),
          201,
        );
        assert.deepEqual([refused.status, refused.rejectionCode], ['rejected', 'payment_blocked']);
        assert.deepEqual(await snapshot(), { ...before, payments: before.payments + 1 }, 'no money moved');
        const cases = await admin('GET', '/v1/admin/fraud/cases?status=open');
        assert.ok(JSON.stringify(json(cases)).includes(refused.id), 'a case for operators');
      } finally {
        await fraud.removeFromBlocklist(EXTERNAL_IBAN);
        await fraud.updateRule('blocklisted_payee', { enabled: false, changedBy: 'payments-test' });
      }
    });

    it("screens one customer's concurrent payments one after another, however they are grouped", async () => {
      const fraud = built.fraud;
      assert.ok(fraud);
      // Concurrent payments share transactions (src/db/group-commit.ts); a customer's two never may, or
      // each would be screened against a history without the other.
      const recent = async (customer: Customer) =>
        Number(
          (
            await db.query<{ n: number }>(
              `select count(*)::int as n from fraud_screenings
                where customer_id = $1 and in_history and at > now() - interval '10 minutes'`,
              [customer.customerId],
            )
          )[0]?.n,
        );
      // Alice may make two more payments; Bob, with a shorter history, pays alongside and fills the groups.
      const history = { alice: await recent(alice), bob: await recent(bob) };
      const maxCount = history.alice + 2;
      await fraud.updateRule('velocity_10m', {
        enabled: true,
        parameters: { windowMinutes: 10, maxCount },
        changedBy: 'payments-test',
      });
      try {
        const before = await snapshot();
        const pay = (payer: 'alice' | 'bob', debtorAccountId: string) =>
          payAtBank(payer, {
            instructedAmount: { amount: '0.10', currency: 'EUR' },
            creditor: { name: 'Velocity Payee', iban: EXTERNAL_IBAN },
            debtorAccountId,
          }).then((response) => json<PaymentJson>(response, 201).status);
        const statuses = await Promise.all([
          ...Array.from({ length: 6 }, () => pay('alice', aliceCurrent)),
          ...Array.from({ length: 6 }, () => pay('bob', bobCurrent)),
        ]);
        // Beyond the limit a payment waits for a one-time code; none slipped under it alongside another.
        const byPayer = { alice: statuses.slice(0, 6), bob: statuses.slice(6) };
        for (const payer of ['alice', 'bob'] as const) {
          const accepted = Math.min(6, Math.max(0, maxCount - history[payer]));
          assert.deepEqual(
            byPayer[payer].sort(),
            [...Array(accepted).fill('accepted'), ...Array(6 - accepted).fill('awaiting_sca')],
            payer,
          );
        }
        assert.equal((await snapshot()).payments, before.payments + 12, 'every payment recorded, none twice');
        assert.ok((await built.ledger.verify()).ok);
      } finally {
        await fraud.updateRule('velocity_10m', { enabled: false, changedBy: 'payments-test' });
      }
    });

    it('asks for strong authentication only where the payment has not had it', async () => {
      const fraud = built.fraud;
      assert.ok(fraud);
      // Every payment of 1.00 or more to a new payee asks for step-up.
      await fraud.updateRule('new_payee', {
        enabled: true,
        parameters: { ignoreBelow: { EUR: '1.00' } },
        changedBy: 'payments-test',
      });
      try {
        const newPayee = { name: 'First Time Payee', iban: 'GB82WEST12345698765432' };
        const held = async (creditor = newPayee) =>
          json<PaymentJson>(
            await payAtBank('alice', {
              instructedAmount: { amount: '2.00', currency: 'EUR' },
              creditor,
              debtorAccountId: aliceCurrent,
            }),
            201,
          );
        // A signed-in session is not SCA for this payment: it waits for a fresh one-time code.
        const before = await snapshot();
        const atBank = await held();
        assert.deepEqual([atBank.status, atBank.rejectionCode], ['awaiting_sca', 'sca_required']);
        assert.deepEqual(await snapshot(), { ...before, payments: before.payments + 1 }, 'nothing moved yet');
        const cookie = await signIn('alice');
        const confirm = (id: string, code: string) =>
          call('POST', `/v1/me/payments/${id}/confirm`, { cookie, body: { code } });
        assert.deepEqual(problem(await confirm(atBank.id, '654321')), [403, 'one_time_code_invalid']);
        const confirmed = json<PaymentJson>(await confirm(atBank.id, '123456'));
        assert.deepEqual(
          [confirmed.status, confirmed.statusHistory.map((change) => change.status)],
          ['accepted', ['received', 'awaiting_sca', 'received', 'accepted']],
        );
        assert.equal(confirmed.rejectionCode, null, 'confirmed, it is no longer held for sca_required');
        assert.equal(await posted(aliceCurrent), (before.accounts[0]?.[1] as bigint) - 200n);
        assert.deepEqual(problem(await confirm(atBank.id, '123456')), [409, 'payment_not_awaiting_sca']);
        // Declined instead: nothing moves. Another customer cannot touch it.
        const declined = await held({ name: 'Another New Payee', iban: 'GB33BUKB20201555555555' });
        assert.equal(declined.status, 'awaiting_sca');
        assert.deepEqual(
          problem(
            await call('POST', `/v1/me/payments/${declined.id}/cancel`, { cookie: await signIn('bob') }),
          ),
          [404, 'not_found'],
        );
        const cancelled = json<PaymentJson>(
          await call('POST', `/v1/me/payments/${declined.id}/cancel`, { cookie }),
        );
        assert.deepEqual([cancelled.status, cancelled.rejectionCode], ['rejected', 'cancelled_by_customer']);
        assert.equal(await posted(aliceCurrent), (before.accounts[0]?.[1] as bigint) - 200n);
        // An app's payment: the customer authorised exactly this payment at the consent page.
        const app = await newApp();
        const instruction = {
          instructedAmount: { amount: '2.00', currency: 'EUR' },
          creditor: { name: 'Third New Payee', iban: 'DE44500105175407324931' },
        };
        const { token } = await authorisedPayment(app, instruction);
        const byApp = json<PaymentJson>(await payByApp(token, instruction), 201);
        assert.equal(byApp.status, 'accepted');
      } finally {
        await fraud.updateRule('new_payee', { enabled: false, changedBy: 'payments-test' });
      }
    });

    it('leaves a ledger that balances, with clearing holding exactly the unsettled outbound payments', async () => {
      const report = await built.ledger.verify();
      assert.ok(
        report.ok,
        JSON.stringify(report, (_, value) => (typeof value === 'bigint' ? `${value}` : value)),
      );
      const [unsettled] = await db.query<{ total: string }>(
        `select coalesce(sum(amount), 0)::text as total from payments where status = 'accepted' and type = 'domestic'`,
      );
      assert.equal(await bankPosted('clearing'), BigInt(unsettled?.total ?? '-1'));
      const [stuck] = await db.query<{ n: number }>(
        `select count(*)::int as n from payments where status = 'received'`,
      );
      assert.equal(stuck?.n, 0, 'every recorded payment was executed');
    });
  });
}
