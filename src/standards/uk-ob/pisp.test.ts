// The UK Open Banking v4.0 Payment Initiation API (domestic payments), exercised the way a third party
// integrating the standard would, with every request and response passing through Prism against the
// official file: a response that does not conform fails the test. Also keeps its record in the
// conformance table (docs/conformance.md).
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type createLocalJWKSet, exportJWK, generateKeyPair } from 'jose';
import type { BuiltApp } from '../../main.ts';
import { newClientApp } from '../../testing/bank.ts';
import { authoriseConsent } from '../../testing/consent-flow.ts';
import { type TestDb, testDatabases } from '../../testing/databases.ts';
import {
  type BankBehindPrism,
  bankBehindPrism,
  callAsThirdParty,
  detachedJws,
  type Exchange,
  obSignatureClaims,
  type PrismProxy,
  signedObAnswer,
  type ThirdPartyCall,
} from '../../testing/prism.ts';
import { keepRecord, recordOf } from '../conformance.ts';
import { PISP_PREFIX } from './pisp.ts';

const TOKEN = 'uk-ob-pisp-test-operator-token-0123456789';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'uk ob pisp test password';
const SPEC = fileURLToPath(
  new URL('../../../specs/uk-open-banking-v4.0/payment-initiation-openapi.yaml', import.meta.url),
);
// A valid IBAN of another bank: a domestic payment leaves through clearing.
const EXTERNAL_IBAN = 'GB33BUKB20201555555555';
const observed: Exchange[] = [];

interface ObConsent {
  Data: { ConsentId: string; Status: string; Initiation: Record<string, unknown> };
  Risk: Record<string, unknown>;
}
interface ObPayment {
  Data: {
    DomesticPaymentId: string;
    ConsentId: string;
    Status: string;
    StatusReason?: { StatusReasonDescription: string }[];
    Initiation: Record<string, unknown>;
  };
}
interface ObErrors {
  Errors: { ErrorCode: string; Message: string; Path?: string }[];
}

const initiationOf = (amount: string, creditor = { iban: EXTERNAL_IBAN, name: 'Corner Shop' }) => ({
  InstructionIdentification: 'ACME412',
  EndToEndIdentification: 'FRESCO.21302.GFX.20',
  InstructedAmount: { Amount: amount, Currency: 'GBP' },
  CreditorAccount: { SchemeName: 'UK.OBIE.IBAN', Identification: creditor.iban, Name: creditor.name },
  RemittanceInformation: { Unstructured: ['Invoice 42'] },
});

for (const database of testDatabases()) {
  describe(`UK Open Banking v4.0 PISP on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let issuer: string;
    let prism: PrismProxy;
    let lax: PrismProxy;
    let bank: BankBehindPrism;
    let developer: Record<string, string>;
    let apps = 0;
    let keys = 0;
    let bankKeys: ReturnType<typeof createLocalJWKSet>;
    let alice: { customerId: string; accountIds: string[]; ledgerAccountIds: string[] };
    let bob: { customerId: string; accountIds: string[]; ledgerAccountIds: string[] };

    before(async () => {
      db = await database.open();
      bank = await bankBehindPrism(db, {
        spec: SPEC,
        prefix: PISP_PREFIX,
        adminToken: TOKEN,
        password: PASSWORD,
        aliceAccounts: [{ product: 'current', currency: 'GBP' }],
        bobAccounts: [{ product: 'current', currency: 'GBP' }],
        aliceFunds: { amount: '1000.00', from: 'Northwind Ltd' },
      });
      ({ built, issuer, prism, lax, developer, alice, bob, bankKeys } = bank);
    });
    after(async () => {
      if (bank) observed.push(...(await bank.close()));
      await db?.close();
    });

    /** An app with a signing key of its own, registered as its JWKS (`alg`: PS256, or ES256 for EC). */
    const newApp = async (options: { alg?: 'PS256' | 'ES256'; registerKey?: boolean } = {}) => {
      const alg = options.alg ?? 'PS256';
      const kid = `tpp-key-${++apps}`;
      const { privateKey, publicKey } = await generateKeyPair(alg);
      const registered = await newClientApp({ built, issuer }, developer, {
        name: `Pay Pal ${apps}`,
        scopes: ['openid', 'payments'],
        redirectUri: REDIRECT,
        ...(options.registerKey !== false && {
          jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }] },
        }),
      });
      return { ...registered, signingKey: privateKey, kid, alg };
    };
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    const nextKey = () => `pisp-key-${++keys}`;
    /**
     * A call as `app`, its body signed as the specification requires: a detached JWS with the profile's
     * claims, by the app's key (`signature` replaces it: null sends none).
     */
    const call = (
      proxy: PrismProxy,
      app: TestApp,
      token: string,
      path: string,
      init: ThirdPartyCall & {
        key?: string | null;
        signature?: ((body: string) => Promise<string>) | null;
      } = {},
    ) => {
      const key = init.key === undefined ? nextKey() : init.key;
      const sign =
        init.signature === undefined
          ? (body: string) =>
              detachedJws(app.signingKey, app.kid, body, { alg: app.alg, ...obSignatureClaims(app.id) })
          : init.signature;
      return callAsThirdParty(proxy, token, path, init, async (body) => ({
        ...(sign !== null && { 'x-jws-signature': await sign(body) }),
        ...(key !== null && { 'x-idempotency-key': key }),
      }));
    };
    /** The answer, after checking its interaction id and the bank's detached signature over its body. */
    const json = <T>(response: Response, status: number) => signedObAnswer<T>(bankKeys, response, status);
    const errorCodes = async (response: Response, status: number) =>
      (await json<ObErrors>(response, status)).Errors.map((error) => error.ErrorCode);
    const createConsent = async (app: TestApp, initiation: object, key?: string) =>
      json<ObConsent>(
        await call(prism, app, app.appToken, '/domestic-payment-consents', {
          method: 'POST',
          body: { Data: { Initiation: initiation }, Risk: { PaymentContextCode: 'TransferToThirdParty' } },
          ...(key && { key }),
        }),
        201,
      );
    const authorise = async (app: TestApp, consentId: string) =>
      (
        await authoriseConsent({
          issuer,
          config: app.config,
          redirectUri: REDIRECT,
          scope: 'openid payments',
          type: 'payment_initiation',
          consentId,
          username: 'alice',
          password: PASSWORD,
          accounts: [alice.accountIds[0] ?? ''],
        })
      ).accessToken;
    const pay = (app: TestApp, token: string, consentId: string, initiation: object, key?: string) =>
      call(prism, app, token, '/domestic-payments', {
        method: 'POST',
        body: { Data: { ConsentId: consentId, Initiation: initiation }, Risk: {} },
        ...(key && { key }),
      });
    const consentStatus = async (app: TestApp, consentId: string) =>
      (
        await json<ObConsent>(
          await call(prism, app, app.appToken, `/domestic-payment-consents/${consentId}`),
          200,
        )
      ).Data.Status;
    const available = async () => {
      const account = await built.accounts?.find(alice.accountIds[0] ?? '');
      assert.ok(account);
      return (await built.accounts?.balances(account))?.available;
    };
    const count = async (table: string) =>
      Number((await db.query<{ n: number }>(`select count(*)::int as n from ${table}`))[0]?.n);

    it('runs the whole flow: consent, authorisation, code exchange, funds, payment, status, details', async () => {
      const app = await newApp();
      const interactionId = '93bac548-d2de-4546-b106-880a5018460d';
      const initiation = initiationOf('12.50');
      const createdResponse = await call(prism, app, app.appToken, '/domestic-payment-consents', {
        method: 'POST',
        body: { Data: { Initiation: initiation }, Risk: {} },
        headers: { 'x-fapi-interaction-id': interactionId },
      });
      assert.equal(createdResponse.headers.get('x-fapi-interaction-id'), interactionId);
      const consent = await json<ObConsent>(createdResponse, 201);
      assert.equal(consent.Data.Status, 'AWAU');
      assert.deepEqual(consent.Data.Initiation, initiation);
      const consentId = consent.Data.ConsentId;
      // The same consent in the bank's own terms, which its consent page shows and dynamic linking checks.
      const own = await built.consents?.find(consentId);
      assert.equal(own?.type, 'payment_initiation');
      assert.deepEqual(own?.details.instructedAmount, { amount: '12.50', currency: 'GBP' });
      assert.deepEqual(own?.details.creditor, { name: 'Corner Shop', iban: EXTERNAL_IBAN });
      assert.equal(own?.details.reference, 'Invoice 42');

      const token = await authorise(app, consentId);
      assert.equal(await consentStatus(app, consentId), 'AUTH');
      const funds = await json<{ Data: { FundsAvailableResult: { FundsAvailable: boolean } } }>(
        await call(prism, app, token, `/domestic-payment-consents/${consentId}/funds-confirmation`),
        200,
      );
      assert.equal(funds.Data.FundsAvailableResult.FundsAvailable, true);

      const before = await available();
      const created = await json<ObPayment>(await pay(app, token, consentId, initiation), 201);
      assert.equal(created.Data.ConsentId, consentId);
      assert.deepEqual(created.Data.Initiation, initiation);
      // To another bank: accepted and on its way through clearing until the settlement cycle.
      assert.equal(created.Data.Status, 'ACSP');
      assert.equal((before ?? 0n) - ((await available()) ?? 0n), 1250n);
      assert.equal(await consentStatus(app, consentId), 'COND');
      const paymentId = created.Data.DomesticPaymentId;

      assert.equal((await built.payments?.settleCycle())?.settled, 1);
      const read = await json<ObPayment>(
        await call(prism, app, app.appToken, `/domestic-payments/${paymentId}`),
        200,
      );
      assert.equal(read.Data.Status, 'ACSC');
      const details = await json<{
        Data: { PaymentStatus: { Status: string; PaymentTransactionId: string }[] };
      }>(await call(prism, app, app.appToken, `/domestic-payments/${paymentId}/payment-details`), 200);
      assert.deepEqual(
        details.Data.PaymentStatus.map((entry) => entry.Status),
        ['PDNG', 'ACSP', 'ACSP', 'ACSC'],
        'received, accepted, settling, settled',
      );
      // Used up: no second payment under it, and no more funds checks.
      assert.deepEqual(
        await errorCodes(
          await call(prism, app, token, `/domestic-payment-consents/${consentId}/funds-confirmation`),
          400,
        ),
        ['NARR'],
      );
      assert.deepEqual(await errorCodes(await pay(app, token, consentId, initiation), 409), ['NARR']);
      assert.ok((await built.ledger.verify()).ok);
    });

    it('pays another customer of the bank at once, and says when funds would not cover a payment', async () => {
      const app = await newApp();
      const bobIban = (await built.accounts?.find(bob.accountIds[0] ?? ''))?.iban ?? '';
      const initiation = initiationOf('5.00', { iban: bobIban, name: 'Bob Baker' });
      const { Data } = await createConsent(app, initiation);
      const token = await authorise(app, Data.ConsentId);
      const paid = await json<ObPayment>(await pay(app, token, Data.ConsentId, initiation), 201);
      assert.equal(paid.Data.Status, 'ACCC', 'credited to the creditor account here');

      const tooMuch = initiationOf('99999.00');
      const big = await createConsent(app, tooMuch);
      const bigToken = await authorise(app, big.Data.ConsentId);
      const funds = await json<{ Data: { FundsAvailableResult: { FundsAvailable: boolean } } }>(
        await call(
          prism,
          app,
          bigToken,
          `/domestic-payment-consents/${big.Data.ConsentId}/funds-confirmation`,
        ),
        200,
      );
      assert.equal(funds.Data.FundsAvailableResult.FundsAvailable, false);
      // Paid anyway: refused by the ledger, the payment exists and says so.
      const refused = await json<ObPayment>(await pay(app, bigToken, big.Data.ConsentId, tooMuch), 201);
      assert.equal(refused.Data.Status, 'RJCT');
      assert.ok(refused.Data.StatusReason?.[0]?.StatusReasonDescription);
      // Its details end with the refusal and why, in the specification's StatusDetail form.
      const details = await json<{
        Data: { PaymentStatus: { Status: string; StatusDetail?: Record<string, string> }[] };
      }>(
        await call(
          prism,
          app,
          bigToken,
          `/domestic-payments/${refused.Data.DomesticPaymentId}/payment-details`,
        ),
        200,
      );
      const last = details.Data.PaymentStatus.at(-1);
      assert.equal(last?.Status, 'RJCT');
      assert.equal(last?.StatusDetail?.Status, 'RJCT');
      assert.ok(last?.StatusDetail?.StatusReasonDescription);
      assert.ok((await built.ledger.verify()).ok);
    });

    it('refuses a payment that differs from the consent in any way, paying nothing', async () => {
      const app = await newApp();
      const initiation = initiationOf('20.00');
      const { Data } = await createConsent(app, initiation);
      const token = await authorise(app, Data.ConsentId);
      const payments = await count('payments');
      const before = await available();
      const variants = [
        initiationOf('20.01'),
        initiationOf('20.00', { iban: EXTERNAL_IBAN, name: 'Someone Else' }),
        { ...initiation, RemittanceInformation: { Unstructured: ['Invoice 43'] } },
        { ...initiation, EndToEndIdentification: 'ANOTHER.ONE' },
      ];
      for (const variant of variants) {
        const errors = await json<ObErrors>(await pay(app, token, Data.ConsentId, variant), 400);
        assert.deepEqual(
          errors.Errors.map((error) => [error.ErrorCode, error.Path]),
          [['U002', 'Data.Initiation']],
        );
      }
      // A ConsentId the token was not issued under.
      const other = await createConsent(app, initiation);
      assert.deepEqual(await errorCodes(await pay(app, token, other.Data.ConsentId, initiation), 400), [
        'U011',
      ]);
      assert.equal(await count('payments'), payments);
      assert.equal(await available(), before);
      assert.equal(await consentStatus(app, Data.ConsentId), 'AUTH', 'still usable for the right payment');
    });

    it('replays a payment and a consent under the same x-idempotency-key, moving money once', async () => {
      const app = await newApp();
      const initiation = initiationOf('7.25');
      const consentKey = nextKey();
      const first = await createConsent(app, initiation, consentKey);
      const consents = await count('consents');
      const again = await createConsent(app, initiation, consentKey);
      assert.equal(again.Data.ConsentId, first.Data.ConsentId);
      assert.equal(await count('consents'), consents);
      // The same key for another consent is refused.
      assert.deepEqual(
        await errorCodes(
          await call(prism, app, app.appToken, '/domestic-payment-consents', {
            method: 'POST',
            body: { Data: { Initiation: initiationOf('7.26') }, Risk: {} },
            key: consentKey,
          }),
          400,
        ),
        ['NARR'],
      );

      const token = await authorise(app, first.Data.ConsentId);
      const key = nextKey();
      const before = await available();
      const paid = await json<ObPayment>(await pay(app, token, first.Data.ConsentId, initiation, key), 201);
      const replayed = await json<ObPayment>(
        await pay(app, token, first.Data.ConsentId, initiation, key),
        201,
      );
      assert.equal(replayed.Data.DomesticPaymentId, paid.Data.DomesticPaymentId);
      assert.equal((before ?? 0n) - ((await available()) ?? 0n), 725n, 'debited once');
      assert.ok((await built.ledger.verify()).ok);
    });

    it("keeps one app's consents and payments from another, and app tokens from paying", async () => {
      const owner = await newApp();
      const other = await newApp();
      const initiation = initiationOf('3.00');
      const { Data } = await createConsent(owner, initiation);
      assert.deepEqual(
        await errorCodes(
          await call(prism, other, other.appToken, `/domestic-payment-consents/${Data.ConsentId}`),
          400,
        ),
        ['U011'],
      );
      // The owner's app token (client credentials) is not the customer's authorisation.
      assert.deepEqual(await errorCodes(await pay(owner, owner.appToken, Data.ConsentId, initiation), 403), [
        'NARR',
      ]);
      const token = await authorise(owner, Data.ConsentId);
      const paid = await json<ObPayment>(await pay(owner, token, Data.ConsentId, initiation), 201);
      for (const path of [
        `/domestic-payments/${paid.Data.DomesticPaymentId}`,
        `/domestic-payments/${paid.Data.DomesticPaymentId}/payment-details`,
      ]) {
        assert.deepEqual(
          await errorCodes(await call(prism, other, other.appToken, path), 400),
          ['U011'],
          path,
        );
      }
      assert.equal(
        (
          await json<ObPayment>(
            await call(prism, owner, owner.appToken, `/domestic-payments/${paid.Data.DomesticPaymentId}`),
            200,
          )
        ).Data.DomesticPaymentId,
        paid.Data.DomesticPaymentId,
      );
    });

    it('refuses what it cannot honour or read, in OBErrorResponse1 form, creating nothing', async () => {
      const app = await newApp();
      const post = (body: unknown, proxy = prism, key?: string | null) =>
        call(proxy, app, app.appToken, '/domestic-payment-consents', {
          method: 'POST',
          body,
          ...(key !== undefined && { key }),
        });
      const valid = initiationOf('1.00');
      const refusals: [unknown, string, string | undefined, PrismProxy?][] = [
        [
          {
            Data: {
              Initiation: {
                ...valid,
                DebtorAccount: { SchemeName: 'UK.OBIE.IBAN', Identification: EXTERNAL_IBAN },
              },
            },
            Risk: {},
          },
          'U002',
          'Data.Initiation.DebtorAccount',
        ],
        [
          {
            Data: {
              Initiation: {
                ...valid,
                CreditorAccount: {
                  SchemeName: 'UK.OBIE.SortCodeAccountNumber',
                  Identification: '08080021325698',
                  Name: 'X',
                },
              },
            },
            Risk: {},
          },
          'U002',
          'Data.Initiation.CreditorAccount.SchemeName',
        ],
        [
          {
            Data: { Initiation: initiationOf('1.00', { iban: 'GB00BUKB20201555555555', name: 'X' }) },
            Risk: {},
          },
          'U002',
          'Data.Initiation.CreditorAccount.Identification',
        ],
        [
          { Data: { Initiation: initiationOf('1.5') }, Risk: {} },
          'U002',
          'Data.Initiation.InstructedAmount.Amount',
        ],
        [
          { Data: { Initiation: initiationOf('0.00') }, Risk: {} },
          'U002',
          'Data.Initiation.InstructedAmount.Amount',
        ],
        [
          {
            Data: { Initiation: { ...valid, InstructedAmount: { Amount: '1.00', Currency: 'XXX' } } },
            Risk: {},
          },
          'U002',
          'Data.Initiation.InstructedAmount.Currency',
        ],
        [
          { Data: { Initiation: valid, Authorisation: { AuthorisationType: 'Single' } }, Risk: {} },
          'U002',
          'Data.Authorisation',
        ],
        // Requests the spec itself forbids, sent past Prism's request check to reach the bank.
        [{ Data: {}, Risk: {} }, 'U004', 'Data.Initiation', lax],
        [
          {
            Data: { Initiation: { ...valid, InstructedAmount: { Amount: 'ten', Currency: 'GBP' } } },
            Risk: {},
          },
          'U002',
          'Data.Initiation.InstructedAmount.Amount',
          lax,
        ],
      ];
      const consents = await count('consents');
      for (const [body, code, path, proxy] of refusals) {
        const errors = await json<ObErrors>(await post(body, proxy), 400);
        assert.deepEqual(
          [errors.Errors[0]?.ErrorCode, errors.Errors[0]?.Path],
          [code, path],
          JSON.stringify(body),
        );
      }
      // The spec requires x-idempotency-key on every POST: without it the bank refuses too.
      assert.deepEqual(
        await errorCodes(await post({ Data: { Initiation: valid }, Risk: {} }, lax, null), 400),
        ['U006'],
      );
      assert.equal(await count('consents'), consents);
      assert.deepEqual(
        await errorCodes(
          await call(prism, app, app.appToken, '/domestic-payment-consents/not-a-consent'),
          400,
        ),
        ['U011'],
      );
    });

    it('verifies the request signature: only the app, with its registered key and claims, creates anything', async () => {
      const app = await newApp();
      const other = await newApp();
      const initiation = initiationOf('4.00');
      const body = { Data: { Initiation: initiation }, Risk: {} };
      const signedAs =
        (
          key: TestApp['signingKey'],
          kid: string,
          claims: Record<string, unknown> = obSignatureClaims(app.id),
          alg = 'PS256',
        ) =>
        (text: string) =>
          detachedJws(key, kid, text, { alg, ...claims });
      const stranger = await generateKeyPair('PS256');
      const rs256 = await generateKeyPair('RS256');
      const refusals: [string, ((text: string) => Promise<string>) | null, string, string, PrismProxy?][] = [
        // The specification requires the header: only past Prism's request check does the bank see it missing.
        ['missing', null, 'U019', 'x-jws-signature', lax],
        ['not a detached JWS', async () => 'not-a-jws', 'U018', 'x-jws-signature'],
        ['a key the app never registered', signedAs(stranger.privateKey, app.kid), 'U015', 'x-jws-signature'],
        ['a kid the app never registered', signedAs(app.signingKey, 'not-registered'), 'U016', 'kid'],
        // Another app's key and kid, even naming the app as issuer: its JWKS is not this app's.
        ['another app’s key', signedAs(other.signingKey, other.kid), 'U016', 'kid'],
        [
          'another app as issuer',
          signedAs(app.signingKey, app.kid, obSignatureClaims(other.id)),
          'U016',
          'http://openbanking.org.uk/iss',
        ],
        [
          'another trust anchor',
          signedAs(
            app.signingKey,
            app.kid,
            obSignatureClaims(app.id, { 'http://openbanking.org.uk/tan': 'example.com' }),
          ),
          'U016',
          'http://openbanking.org.uk/tan',
        ],
        [
          'signed an hour ahead',
          signedAs(
            app.signingKey,
            app.kid,
            obSignatureClaims(app.id, {
              'http://openbanking.org.uk/iat': Math.floor(Date.now() / 1000) + 3600,
            }),
          ),
          'U016',
          'http://openbanking.org.uk/iat',
        ],
        ['RS256', signedAs(rs256.privateKey, app.kid, obSignatureClaims(app.id), 'RS256'), 'U016', 'alg'],
        ['no claims', signedAs(app.signingKey, app.kid, {}), 'U017', 'crit'],
        [
          'no trust anchor',
          signedAs(app.signingKey, app.kid, {
            'http://openbanking.org.uk/iat': Math.floor(Date.now() / 1000),
            'http://openbanking.org.uk/iss': app.id,
            crit: ['http://openbanking.org.uk/iat', 'http://openbanking.org.uk/iss'],
          }),
          'U017',
          'http://openbanking.org.uk/tan',
        ],
        [
          'claims not critical',
          signedAs(app.signingKey, app.kid, {
            ...obSignatureClaims(app.id),
            crit: ['http://openbanking.org.uk/iat', 'http://openbanking.org.uk/iss'],
          }),
          'U016',
          'crit',
        ],
        // The app's own key over another body: a changed amount does not verify.
        [
          'a tampered body',
          async () =>
            detachedJws(
              app.signingKey,
              app.kid,
              JSON.stringify({ Data: { Initiation: initiationOf('0.01') }, Risk: {} }),
              {
                ...obSignatureClaims(app.id),
              },
            ),
          'U015',
          'x-jws-signature',
        ],
      ];
      const consents = await count('consents');
      for (const [what, signature, code, path, proxy] of refusals) {
        const errors = await json<ObErrors>(
          await call(proxy ?? prism, app, app.appToken, '/domestic-payment-consents', {
            method: 'POST',
            body,
            signature,
          }),
          400,
        );
        assert.deepEqual(
          errors.Errors.map((error) => [error.ErrorCode, error.Path]),
          [[code, path]],
          what,
        );
      }
      // No body at all: nothing signed, nothing to read.
      assert.deepEqual(
        await errorCodes(
          await call(lax, app, app.appToken, '/domestic-payment-consents', { method: 'POST' }),
          400,
        ),
        ['U019'],
      );
      assert.equal(await count('consents'), consents, 'nothing was created');

      // An app that registered no keys cannot sign at all.
      const keyless = await newApp({ registerKey: false });
      assert.deepEqual(
        await errorCodes(
          await call(prism, keyless, keyless.appToken, '/domestic-payment-consents', {
            method: 'POST',
            body,
          }),
          400,
        ),
        ['U016'],
      );

      // The payment too: a tampered or unsigned one moves no money and leaves the consent usable.
      const { Data } = await createConsent(app, initiation);
      const token = await authorise(app, Data.ConsentId);
      const before = await available();
      const payments = await count('payments');
      const paymentBody = { Data: { ConsentId: Data.ConsentId, Initiation: initiation }, Risk: {} };
      for (const [signature, code, proxy] of [
        [null, 'U019', lax],
        [signedAs(other.signingKey, other.kid), 'U016', prism],
        [
          async () =>
            detachedJws(
              app.signingKey,
              app.kid,
              JSON.stringify({
                ...paymentBody,
                Risk: { PaymentContextCode: 'BillingGoodsAndServicesInAdvance' },
              }),
              obSignatureClaims(app.id),
            ),
          'U015',
          prism,
        ],
      ] as const) {
        assert.deepEqual(
          await errorCodes(
            await call(proxy, app, token, '/domestic-payments', {
              method: 'POST',
              body: paymentBody,
              signature,
            }),
            400,
          ),
          [code],
        );
      }
      assert.equal(await count('payments'), payments);
      assert.equal(await available(), before);
      assert.equal(await consentStatus(app, Data.ConsentId), 'AUTH');
      assert.equal(
        (await json<ObPayment>(await pay(app, token, Data.ConsentId, initiation), 201)).Data.Status,
        'ACSP',
      );
    });

    it('verifies with the keys an app publishes at its jwksUri', async () => {
      const { privateKey, publicKey } = await generateKeyPair('PS256');
      const jwks = {
        keys: [{ ...(await exportJWK(publicKey)), kid: 'published-1', alg: 'PS256', use: 'sig' }],
      };
      const server = createServer((_request, response) => {
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify(jwks));
      });
      await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
      try {
        const { port } = server.address() as AddressInfo;
        const registered = await newClientApp({ built, issuer }, developer, {
          name: `Pay Pal ${++apps}`,
          scopes: ['openid', 'payments'],
          redirectUri: REDIRECT,
          jwksUri: `http://127.0.0.1:${port}/jwks.json`,
        });
        const app = { ...registered, signingKey: privateKey, kid: 'published-1', alg: 'PS256' as const };
        assert.equal((await createConsent(app, initiationOf('6.00'))).Data.Status, 'AWAU');
        const stranger = await generateKeyPair('PS256');
        assert.deepEqual(
          await errorCodes(
            await call(prism, app, app.appToken, '/domestic-payment-consents', {
              method: 'POST',
              body: { Data: { Initiation: initiationOf('6.00') }, Risk: {} },
              signature: (text) =>
                detachedJws(stranger.privateKey, 'published-1', text, obSignatureClaims(app.id)),
            }),
            400,
          ),
          ['U015'],
        );
      } finally {
        await new Promise((done) => server.close(done));
      }
    });

    it('takes an ES256 signature from an app whose registered key is EC', async () => {
      const app = await newApp({ alg: 'ES256' });
      const consent = await createConsent(app, initiationOf('2.00'));
      assert.equal(consent.Data.Status, 'AWAU');
    });
  });
}

// What the tests saw is their record in the conformance table: written on request, otherwise checked.
after(() => {
  if (observed.length === 0) return;
  keepRecord(
    'uk-ob-pisp-domestic',
    recordOf('uk-ob-pisp', 'src/standards/uk-ob/pisp.test.ts', observed, {
      CreateDomesticPaymentConsents:
        'creditor by UK.OBIE.IBAN only; no DebtorAccount, Authorisation or SCASupportData',
    }),
  );
});
