// The Berlin Group NextGenPSD2 1.3.9 Payment Initiation Service and confirmation of funds, exercised as a
// third party would, every call through Prism against the official file. Also keeps its record in the
// conformance table (docs/conformance.md).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { BuiltApp } from '../../main.ts';
import { newClientApp } from '../../testing/bank.ts';
import { followConsentLink } from '../../testing/consent-flow.ts';
import { type TestDb, testDatabases } from '../../testing/databases.ts';
import {
  type BankBehindPrism,
  bankBehindPrism,
  berlinGroupAnswer,
  berlinGroupCall,
  callAsThirdParty,
  type Exchange,
  type PrismProxy,
  type ThirdPartyCall,
  tppMessageCodes,
} from '../../testing/prism.ts';
import { keepRecord, recordOf } from '../conformance.ts';
import { BG_PREFIX } from './ais.ts';

const TOKEN = 'bg-pis-operator-token-0123456789abcdef';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'berlin group test password';
const SPEC = fileURLToPath(
  new URL('../../../specs/berlin-group-nextgenpsd2-1.3.9/psd2-api-1.3.9.yaml', import.meta.url),
);
// At another bank: a valid IBAN no account here has.
const ELSEWHERE = 'DE89370400440532013000';
const SCT = '/v1/payments/sepa-credit-transfers';
const INST = '/v1/payments/instant-sepa-credit-transfers';
const observed: Exchange[] = [];

interface Initiated {
  transactionStatus: string;
  paymentId: string;
  _links: Record<string, { href: string }>;
}

for (const database of testDatabases()) {
  describe(`Berlin Group NextGenPSD2 1.3.9 PIS on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let issuer: string;
    let prism: PrismProxy;
    let lax: PrismProxy;
    let bank: BankBehindPrism;
    let developer: Record<string, string>;
    let apps = 0;
    let alice: { customerId: string; accountIds: string[]; ledgerAccountIds: string[] };
    let bob: { customerId: string; accountIds: string[]; ledgerAccountIds: string[] };
    let aliceIban = '';
    let aliceSavingsIban = '';
    let bobIban = '';

    before(async () => {
      db = await database.open();
      bank = await bankBehindPrism(db, {
        spec: SPEC,
        prefix: BG_PREFIX,
        adminToken: TOKEN,
        password: PASSWORD,
        aliceAccounts: [
          { product: 'current', currency: 'EUR' },
          { product: 'savings', currency: 'EUR' },
        ],
        aliceFunds: { amount: '500.00', from: 'Northwind GmbH' },
      });
      ({ built, issuer, prism, lax, developer, alice, bob } = bank);
      [aliceIban, aliceSavingsIban, bobIban] = await Promise.all([
        bank.ibanOf(alice.accountIds[0]),
        bank.ibanOf(alice.accountIds[1]),
        bank.ibanOf(bob.accountIds[0]),
      ]);
    });
    after(async () => {
      if (bank) observed.push(...(await bank.close()));
      await db?.close();
    });

    const newApp = async () =>
      newClientApp({ built, issuer }, developer, {
        name: `Zahlfix ${++apps}`,
        scopes: ['openid', 'payments', 'funds_confirmation'],
        redirectUri: REDIRECT,
      });
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    const call = (token: string, path: string, init: ThirdPartyCall & { proxy?: PrismProxy } = {}) =>
      berlinGroupCall(init.proxy ?? prism, token, path, init);
    const json = berlinGroupAnswer;
    const codes = tppMessageCodes;
    const payment = (creditorIban: string, amount: string, extra: object = {}) => ({
      debtorAccount: { iban: aliceIban },
      instructedAmount: { currency: 'EUR', amount },
      creditorAccount: { iban: creditorIban },
      creditorName: 'Bob Baker',
      remittanceInformationUnstructured: 'Miete Mai',
      ...extra,
    });
    const initiate = async (app: TestApp, path: string, body: object) =>
      json<Initiated>(
        await call(app.appToken, path, {
          method: 'POST',
          body,
          headers: { 'tpp-redirect-uri': REDIRECT },
        }),
        201,
      );
    const status = async (app: TestApp, path: string, id: string) =>
      (await json<{ transactionStatus: string }>(await call(app.appToken, `${path}/${id}/status`), 200))
        .transactionStatus;
    /** Alice signs in at the bank and approves at the consent page, paying from `account`. */
    const authorise = async (app: TestApp, url: URL, account: string) => {
      const token = await followConsentLink({
        issuer,
        config: app.config,
        link: url.href,
        username: 'alice',
        password: PASSWORD,
        accounts: [account],
      });
      assert.ok(token);
      return token;
    };
    const balance = async (accountId: string | undefined) => {
      const account = await built.accounts?.find(accountId ?? '');
      assert.ok(account);
      return (await built.accounts?.balances(account))?.posted;
    };
    const verified = async () => assert.ok((await built.ledger.verify()).ok, 'ledger verify');

    it('initiates a SEPA credit transfer, the customer authorises it at the bank, it executes and settles', async () => {
      const app = await newApp();
      const requestId = randomUUID();
      const response = await call(app.appToken, SCT, {
        method: 'POST',
        body: payment(ELSEWHERE, '120.00'),
        headers: { 'x-request-id': requestId, 'tpp-redirect-uri': REDIRECT },
      });
      assert.equal(response.headers.get('x-request-id'), requestId);
      assert.equal(response.headers.get('aspsp-sca-approach'), 'REDIRECT');
      const created = await json<Initiated>(response, 201);
      assert.equal(created.transactionStatus, 'RCVD');
      assert.equal(created._links.status?.href, `${issuer}/berlin-group${SCT}/${created.paymentId}/status`);
      const redirect = new URL(created._links.scaRedirect?.href ?? '');
      assert.equal(`${redirect.origin}${redirect.pathname}`, `${issuer}/oauth/authorize`);
      assert.deepEqual(JSON.parse(redirect.searchParams.get('authorization_details') ?? ''), [
        { type: 'payment_initiation', consentId: created.paymentId },
      ]);
      // The bank's own consent, with the payment's terms.
      const consent = await built.consents?.find(created.paymentId);
      assert.equal(consent?.type, 'payment_initiation');
      assert.deepEqual(consent?.details.instructedAmount, { currency: 'EUR', amount: '120.00' });
      assert.equal(await status(app, SCT, created.paymentId), 'RCVD');
      const before = await balance(alice.accountIds[0]);

      await authorise(app, redirect, alice.accountIds[0] ?? '');
      // The third party's next call executes it: to another bank, accepted for the next settlement cycle.
      assert.equal(await status(app, SCT, created.paymentId), 'ACSP');
      assert.equal(await balance(alice.accountIds[0]), (before ?? 0n) - 12000n);
      assert.equal(await status(app, SCT, created.paymentId), 'ACSP', 'polling again moves no money');
      assert.equal(await balance(alice.accountIds[0]), (before ?? 0n) - 12000n);
      const info = await json<Record<string, unknown>>(
        await call(app.appToken, `${SCT}/${created.paymentId}`),
        200,
      );
      assert.deepEqual(info, {
        debtorAccount: { iban: aliceIban },
        instructedAmount: { currency: 'EUR', amount: '120.00' },
        creditorAccount: { iban: ELSEWHERE },
        creditorName: 'Bob Baker',
        remittanceInformationUnstructured: 'Miete Mai',
        transactionStatus: 'ACSP',
      });
      // Executed, not yet settled: too late to cancel, and nothing changes.
      assert.deepEqual(
        await codes(await call(app.appToken, `${SCT}/${created.paymentId}`, { method: 'DELETE' }), 405),
        ['CANCELLATION_INVALID'],
      );
      assert.equal(await status(app, SCT, created.paymentId), 'ACSP');
      assert.equal(await balance(alice.accountIds[0]), (before ?? 0n) - 12000n);
      const cycle = await built.payments?.settleCycle();
      assert.deepEqual(cycle, { settled: 1, deferred: 0, deferredFor: {} });
      assert.equal(await status(app, SCT, created.paymentId), 'ACSC');
      // Executed: the bank can no longer cancel it.
      assert.deepEqual(
        await codes(await call(app.appToken, `${SCT}/${created.paymentId}`, { method: 'DELETE' }), 405),
        ['CANCELLATION_INVALID'],
      );
      await verified();
    });

    it('pays an instant transfer to an account at the bank at once, and refuses one elsewhere', async () => {
      const app = await newApp();
      const created = await initiate(app, INST, payment(bobIban, '30.00'));
      const bobBefore = await balance(bob.accountIds[0]);
      await authorise(app, new URL(created._links.scaRedirect?.href ?? ''), alice.accountIds[0] ?? '');
      assert.equal(await status(app, INST, created.paymentId), 'ACCC');
      assert.equal(await balance(bob.accountIds[0]), (bobBefore ?? 0n) + 3000n);
      // The same payment is not reachable under the other product.
      assert.deepEqual(await codes(await call(app.appToken, `${SCT}/${created.paymentId}/status`), 404), [
        'RESOURCE_UNKNOWN',
      ]);
      const count = await consentCount();
      assert.deepEqual(
        await codes(
          await call(app.appToken, INST, { method: 'POST', body: payment(ELSEWHERE, '1.00') }),
          403,
        ),
        ['PRODUCT_INVALID'],
      );
      assert.equal(await consentCount(), count);
      await verified();
    });

    it('cancels what has not executed, and refuses a debtor account other than the one named', async () => {
      const app = await newApp();
      const waiting = await initiate(app, SCT, payment(ELSEWHERE, '5.00'));
      assert.equal(
        (await call(app.appToken, `${SCT}/${waiting.paymentId}`, { method: 'DELETE' })).status,
        204,
      );
      assert.equal(await status(app, SCT, waiting.paymentId), 'CANC');

      // Authorised, but the customer picked another account than debtorAccount: nothing moves.
      const other = await initiate(app, SCT, payment(ELSEWHERE, '6.00'));
      const before = await balance(alice.accountIds[1]);
      await authorise(app, new URL(other._links.scaRedirect?.href ?? ''), alice.accountIds[1] ?? '');
      assert.equal(await status(app, SCT, other.paymentId), 'RJCT');
      assert.equal(await balance(alice.accountIds[1]), before);
      assert.notEqual(aliceSavingsIban, aliceIban);

      // Authorised and not yet executed: cancelled before the third party's next call would execute it.
      const authorised = await initiate(app, SCT, payment(ELSEWHERE, '7.00'));
      const current = await balance(alice.accountIds[0]);
      await authorise(app, new URL(authorised._links.scaRedirect?.href ?? ''), alice.accountIds[0] ?? '');
      assert.equal(
        (await call(app.appToken, `${SCT}/${authorised.paymentId}`, { method: 'DELETE' })).status,
        204,
      );
      assert.equal(await status(app, SCT, authorised.paymentId), 'CANC');
      assert.equal(await balance(alice.accountIds[0]), current);
      // Cancelled stays cancelled: a second DELETE changes nothing, and no later call executes it.
      assert.equal(
        (await call(app.appToken, `${SCT}/${authorised.paymentId}`, { method: 'DELETE' })).status,
        204,
      );
      assert.equal(await status(app, SCT, authorised.paymentId), 'CANC');
      assert.equal(await balance(alice.accountIds[0]), current);
      await verified();
    });

    it("keeps one app's payments from another", async () => {
      const owner = await newApp();
      const stranger = await newApp();
      const created = await initiate(owner, SCT, payment(ELSEWHERE, '2.00'));
      for (const [method, path] of [
        ['GET', `${SCT}/${created.paymentId}`],
        ['GET', `${SCT}/${created.paymentId}/status`],
        ['DELETE', `${SCT}/${created.paymentId}`],
      ] as const) {
        assert.deepEqual(await codes(await call(stranger.appToken, path, { method }), 404), [
          'RESOURCE_UNKNOWN',
        ]);
      }
      assert.equal(await status(owner, SCT, created.paymentId), 'RCVD');
    });

    const consentCount = async () =>
      Number((await db.query<{ n: number }>('select count(*)::int as n from consents'))[0]?.n);

    it('refuses bad initiations in tppMessages form, creating nothing', async () => {
      const app = await newApp();
      const refusals: [string, unknown, number, string, PrismProxy?][] = [
        [
          SCT,
          payment(ELSEWHERE, '1.00', { instructedAmount: { currency: 'USD', amount: '1.00' } }),
          400,
          'FORMAT_ERROR',
        ],
        [SCT, payment(ELSEWHERE, '1.5'), 400, 'FORMAT_ERROR'],
        [SCT, payment(ELSEWHERE, '0.00'), 400, 'FORMAT_ERROR'],
        [SCT, payment('DE00370400440532013000', '1.00'), 400, 'FORMAT_ERROR'],
        [SCT, payment(aliceIban, '1.00'), 400, 'FORMAT_ERROR'],
        ['/v1/payments/target-2-payments', payment(ELSEWHERE, '1.00'), 404, 'PRODUCT_UNKNOWN'],
        // Requests the spec itself forbids, past Prism's request check.
        [SCT, { instructedAmount: { currency: 'EUR', amount: '1.00' } }, 400, 'FORMAT_ERROR', lax],
        [SCT, payment(ELSEWHERE, '1.00', { ultimateCreditor: 'X' }), 400, 'FORMAT_ERROR', lax],
      ];
      const before = await consentCount();
      for (const [path, body, code, message, proxy] of refusals) {
        assert.deepEqual(
          [
            ...new Set(
              await codes(
                await call(app.appToken, path, { method: 'POST', body, ...(proxy && { proxy }) }),
                code,
              ),
            ),
          ],
          [message],
          JSON.stringify(body),
        );
      }
      const badId = await call(app.appToken, SCT, {
        method: 'POST',
        body: payment(ELSEWHERE, '1.00'),
        proxy: lax,
        headers: { 'x-request-id': 'not a uuid' },
      });
      assert.deepEqual(await codes(badId, 400), ['FORMAT_ERROR']);
      // The PSU's IP address is mandatory on initiation, and an IP address.
      const noAddress = await callAsThirdParty(lax, app.appToken, SCT, {
        method: 'POST',
        body: payment(ELSEWHERE, '1.00'),
        headers: { 'x-request-id': randomUUID() },
      });
      assert.deepEqual(await codes(noAddress, 400), ['FORMAT_ERROR']);
      const badAddress = await call(app.appToken, SCT, {
        method: 'POST',
        body: payment(ELSEWHERE, '1.00'),
        proxy: lax,
        headers: { 'psu-ip-address': 'localhost' },
      });
      assert.deepEqual(await codes(badAddress, 400), ['FORMAT_ERROR']);
      // A redirect the app did not register would fail only at the bank, in front of the customer.
      const strangeRedirect = await call(app.appToken, SCT, {
        method: 'POST',
        body: payment(ELSEWHERE, '1.00'),
        headers: { 'tpp-redirect-uri': 'https://elsewhere.example/callback' },
      });
      assert.deepEqual(await codes(strangeRedirect, 400), ['FORMAT_ERROR']);
      assert.equal(await consentCount(), before);
      assert.deepEqual(await codes(await call(app.appToken, `${SCT}/${randomUUID()}/status`), 404), [
        'RESOURCE_UNKNOWN',
      ]);
    });

    it('confirms funds under a funds_confirmation consent: yes, no, and refusals', async () => {
      const app = await newApp();
      const created = await built.consents?.create(app.id, {
        type: 'funds_confirmation',
        details: {},
        expiresAt: new Date(Date.now() + 86_400_000),
      });
      assert.ok(created?.ok);
      // The same authorization request the payment links carry, for this consent.
      const url = new URL(`${issuer}/oauth/authorize`);
      for (const [name, value] of Object.entries({
        client_id: app.id,
        response_type: 'code',
        scope: 'openid funds_confirmation',
        redirect_uri: REDIRECT,
        authorization_details: JSON.stringify([
          { type: 'funds_confirmation', consentId: created.consent.id },
        ]),
      })) {
        url.searchParams.set(name, value);
      }
      const token = await authorise(app, url, alice.accountIds[0] ?? '');
      const ask = (amount: string, iban = aliceIban, currency = 'EUR') =>
        call(token, '/v1/funds-confirmations', {
          method: 'POST',
          body: { account: { iban }, instructedAmount: { currency, amount } },
        });
      assert.deepEqual(await json(await ask('1.00'), 200), { fundsAvailable: true });
      assert.deepEqual(await json(await ask('99999.00'), 200), { fundsAvailable: false });
      assert.deepEqual(await codes(await ask('1.00', aliceSavingsIban), 404), ['RESOURCE_UNKNOWN']);
      assert.deepEqual(await codes(await ask('1.00', aliceIban, 'USD'), 400), ['FORMAT_ERROR']);
      // The app's own token carries no customer's consent.
      assert.deepEqual(
        await codes(
          await call(app.appToken, '/v1/funds-confirmations', {
            method: 'POST',
            body: { account: { iban: aliceIban }, instructedAmount: { currency: 'EUR', amount: '1.00' } },
          }),
          403,
        ),
        ['CONSENT_UNKNOWN'],
      );
    });
  });
}

// What the tests saw is their record in the conformance table: written on request, otherwise checked.
after(() => {
  if (observed.length === 0) return;
  keepRecord(
    'berlin-group-pis',
    recordOf('berlin-group', 'src/standards/berlin-group/pis.test.ts', observed, {
      initiatePayment:
        'single payments, JSON sepa-credit-transfers and instant-sepa-credit-transfers (to accounts at this bank) only; redirect SCA approach only',
    }),
  );
});
