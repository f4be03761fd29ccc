// The UK Open Banking v4.0 Payment Initiation API's international payments, exercised the way a third party
// integrating the standard would, with every request and response passing through Prism against the
// official file: a response that does not conform fails the test. The payments are the bank's cross-border
// ones (src/fx/, src/payments/): a quote at the moment of payment, a pacs.008, settlement through the nostro.
// Also keeps its record in the conformance table (docs/conformance.md).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type createLocalJWKSet, exportJWK, generateKeyPair } from 'jose';
import type { BuiltApp } from '../../main.ts';
import { parseAmount } from '../../money.ts';
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

const TOKEN = 'uk-ob-pisp-international-operator-token-0123';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'uk ob pisp international test password';
const SPEC = fileURLToPath(
  new URL('../../../specs/uk-open-banking-v4.0/payment-initiation-openapi.yaml', import.meta.url),
);
// A valid IBAN of a bank in Germany: a payment in euros leaves through clearing, abroad.
const GERMAN_IBAN = 'DE89370400440532013000';
const observed: Exchange[] = [];

interface ObConsent {
  Data: {
    ConsentId: string;
    Status: string;
    Initiation: Record<string, unknown>;
    Charges?: { ChargeBearer: string; Type: string; Amount: { Amount: string; Currency: string } }[];
    ExchangeRateInformation?: { UnitCurrency: string; ExchangeRate: number; RateType: string };
  };
  Risk: Record<string, unknown>;
}
interface ObPayment {
  Data: {
    InternationalPaymentId: string;
    ConsentId: string;
    Status: string;
    StatusReason?: { StatusReasonDescription: string }[];
    Charges?: { Amount: { Amount: string; Currency: string } }[];
    ExchangeRateInformation?: { UnitCurrency: string; ExchangeRate: number; RateType: string };
    Initiation: Record<string, unknown>;
  };
}
interface ObErrors {
  Errors: { ErrorCode: string; Message: string; Path?: string }[];
}

/** Pounds from the customer's account, in euros to the creditor (CurrencyOfTransfer). */
const initiationOf = (
  amount: string,
  options: { iban?: string; name?: string; rate?: 'Actual' | 'Indicative' } = {},
) => ({
  InstructionIdentification: 'ACME413',
  EndToEndIdentification: 'FRESCO.21302.GFX.21',
  CurrencyOfTransfer: 'EUR',
  InstructedAmount: { Amount: amount, Currency: 'GBP' },
  ...(options.rate && { ExchangeRateInformation: { UnitCurrency: 'GBP', RateType: options.rate } }),
  CreditorAccount: {
    SchemeName: 'UK.OBIE.IBAN',
    Identification: options.iban ?? GERMAN_IBAN,
    Name: options.name ?? 'Berliner Bäckerei',
  },
  RemittanceInformation: { Unstructured: ['Invoice 77'] },
});

for (const database of testDatabases()) {
  describe(`UK Open Banking v4.0 PISP international payments on ${database.name}`, () => {
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
        bobAccounts: [{ product: 'current', currency: 'EUR' }],
        aliceFunds: { amount: '1000.00', from: 'Northwind Ltd' },
      });
      ({ built, issuer, prism, lax, developer, alice, bob, bankKeys } = bank);
    });
    after(async () => {
      if (bank) observed.push(...(await bank.close()));
      await db?.close();
    });

    /** An app with a PS256 signing key of its own, registered as its JWKS. */
    const newApp = async () => {
      const kid = `tpp-international-${++apps}`;
      const { privateKey, publicKey } = await generateKeyPair('PS256');
      const registered = await newClientApp({ built, issuer }, developer, {
        name: `Pay Abroad ${apps}`,
        scopes: ['openid', 'payments'],
        redirectUri: REDIRECT,
        jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'PS256', use: 'sig' }] },
      });
      return { ...registered, signingKey: privateKey, kid };
    };
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    const nextKey = () => `pisp-international-key-${++keys}`;
    /** A call as `app`, its body signed with the app's key and the profile's claims (`signed: false`: not). */
    const call = (
      proxy: PrismProxy,
      app: TestApp,
      token: string,
      path: string,
      init: ThirdPartyCall & { key?: string | null; signed?: boolean } = {},
    ) => {
      const key = init.key === undefined ? nextKey() : init.key;
      return callAsThirdParty(proxy, token, path, init, async (body) => ({
        ...(init.signed !== false && {
          'x-jws-signature': await detachedJws(app.signingKey, app.kid, body, obSignatureClaims(app.id)),
        }),
        ...(key !== null && { 'x-idempotency-key': key }),
      }));
    };
    /** The answer, after checking its interaction id and the bank's detached signature over its body. */
    const json = <T>(response: Response, status: number) => signedObAnswer<T>(bankKeys, response, status);
    const errorCodes = async (response: Response, status: number) =>
      (await json<ObErrors>(response, status)).Errors.map((error) => error.ErrorCode);
    const createConsent = async (app: TestApp, initiation: object, key?: string) =>
      json<ObConsent>(
        await call(prism, app, app.appToken, '/international-payment-consents', {
          method: 'POST',
          body: { Data: { Initiation: initiation }, Risk: { PaymentContextCode: 'TransferToThirdParty' } },
          ...(key && { key }),
        }),
        201,
      );
    const authorise = async (app: TestApp, consentId: string) =>
      authoriseConsent({
        issuer,
        config: app.config,
        redirectUri: REDIRECT,
        scope: 'openid payments',
        type: 'payment_initiation',
        consentId,
        username: 'alice',
        password: PASSWORD,
        accounts: [alice.accountIds[0] ?? ''],
      });
    const pay = (app: TestApp, token: string, consentId: string, initiation: object, key?: string) =>
      call(prism, app, token, '/international-payments', {
        method: 'POST',
        body: { Data: { ConsentId: consentId, Initiation: initiation }, Risk: {} },
        ...(key && { key }),
      });
    const consentStatus = async (app: TestApp, consentId: string) =>
      (
        await json<ObConsent>(
          await call(prism, app, app.appToken, `/international-payment-consents/${consentId}`),
          200,
        )
      ).Data.Status;
    const fundsAvailable = async (app: TestApp, token: string, consentId: string) =>
      (
        await json<{ Data: { FundsAvailableResult: { FundsAvailable: boolean } } }>(
          await call(prism, app, token, `/international-payment-consents/${consentId}/funds-confirmation`),
          200,
        )
      ).Data.FundsAvailableResult.FundsAvailable;
    const available = async (accountId: string) => {
      const account = await built.accounts?.find(accountId);
      assert.ok(account);
      return (await built.accounts?.balances(account))?.available ?? 0n;
    };
    const count = async (table: string) =>
      Number((await db.query<{ n: number }>(`select count(*)::int as n from ${table}`))[0]?.n);

    it('pays abroad in euros what the customer authorised in pounds: consent, fee, payment, pacs.008, settlement', async () => {
      const app = await newApp();
      const initiation = initiationOf('100.00', { rate: 'Indicative' });
      const consent = await createConsent(app, initiation);
      assert.equal(consent.Data.Status, 'AWAU');
      assert.deepEqual(consent.Data.Initiation, initiation);
      // The bank's fee, disclosed before the customer authorises: 10 bps of the amount sold.
      assert.deepEqual(consent.Data.Charges, [
        {
          ChargeBearer: 'BorneByDebtor',
          Type: 'UK.APIBANK.FXFee',
          Amount: { Amount: '0.10', Currency: 'GBP' },
        },
      ]);
      assert.equal(consent.Data.ExchangeRateInformation?.RateType, 'Indicative');
      assert.equal(consent.Data.ExchangeRateInformation?.UnitCurrency, 'GBP');
      assert.ok((consent.Data.ExchangeRateInformation?.ExchangeRate ?? 0) > 1, 'euros per pound');
      const consentId = consent.Data.ConsentId;
      // In the bank's own terms: the pounds that leave the account, which its consent page shows.
      const own = await built.consents?.find(consentId);
      assert.deepEqual(own?.details.instructedAmount, { amount: '100.00', currency: 'GBP' });
      assert.deepEqual(own?.details.fxFee, { amount: '0.10', currency: 'GBP' });

      const { page, accessToken: token } = await authorise(app, consentId);
      assert.match(page, /Pay 100\.00 GBP in EUR, plus a fee of 0\.10 GBP, to Berliner Bäckerei/);
      assert.equal(await consentStatus(app, consentId), 'AUTH');
      assert.equal(await fundsAvailable(app, token, consentId), true);

      const before = await available(alice.accountIds[0] ?? '');
      const created = await json<ObPayment>(await pay(app, token, consentId, initiation), 201);
      assert.equal(created.Data.ConsentId, consentId);
      assert.deepEqual(created.Data.Initiation, initiation);
      assert.equal(created.Data.Status, 'ACSP', 'accepted, on its way abroad');
      // Debited exactly what the customer authorised: the amount and the fee.
      assert.equal(before - (await available(alice.accountIds[0] ?? '')), 10_010n);
      assert.deepEqual(created.Data.Charges?.[0]?.Amount, { Amount: '0.10', Currency: 'GBP' });
      assert.equal(created.Data.ExchangeRateInformation?.RateType, 'Actual');
      const paymentId = created.Data.InternationalPaymentId;
      const payment = await built.payments?.get({ clientId: app.id }, paymentId);
      assert.equal(payment?.type, 'cross_border');
      assert.equal(payment?.quote?.sellAmount, 10_000n);
      assert.equal(payment?.quote?.buyCurrency, 'EUR');
      assert.equal(
        String(created.Data.ExchangeRateInformation?.ExchangeRate),
        String(Number(payment?.quote?.rate)),
      );
      const pacs008 = await built.fx?.message(paymentId);
      assert.match(pacs008 ?? '', /<IntrBkSttlmAmt Ccy="EUR">/);
      assert.match(pacs008 ?? '', /<ChrgBr>DEBT<\/ChrgBr>/);
      assert.equal(await consentStatus(app, consentId), 'COND');

      // Settled through the bank's euro nostro, once the treasury funded it.
      const euros = parseAmount('1000.00');
      assert.ok(euros);
      assert.ok((await built.fx?.fundNostro('pisp-international-nostro', 'EUR', euros))?.ok);
      assert.equal((await built.payments?.settleCycle())?.settled, 1);
      const read = await json<ObPayment>(
        await call(prism, app, app.appToken, `/international-payments/${paymentId}`),
        200,
      );
      assert.equal(read.Data.Status, 'ACSC');
      const details = await json<{ Data: { PaymentStatus: { Status: string }[] } }>(
        await call(prism, app, app.appToken, `/international-payments/${paymentId}/payment-details`),
        200,
      );
      assert.deepEqual(
        details.Data.PaymentStatus.map((entry) => entry.Status),
        ['PDNG', 'ACSP', 'ACSP', 'ACSC'],
        'received, accepted, settling, settled',
      );
      // Used up: no second payment under it, and no more funds checks.
      assert.deepEqual(await errorCodes(await pay(app, token, consentId, initiation), 400), ['U009']);
      assert.deepEqual(
        await errorCodes(
          await call(prism, app, token, `/international-payment-consents/${consentId}/funds-confirmation`),
          400,
        ),
        ['NARR'],
      );
      assert.ok((await built.ledger.verify()).ok);
    });

    it('replays a payment under the same x-idempotency-key at its first quote, debiting once', async () => {
      const app = await newApp();
      // No ExchangeRateInformation: the rate of the moment of payment, none to give before.
      const initiation = initiationOf('20.00');
      const consent = await createConsent(app, initiation);
      assert.equal(consent.Data.ExchangeRateInformation, undefined);
      const { accessToken: token } = await authorise(app, consent.Data.ConsentId);
      const key = nextKey();
      const before = await available(alice.accountIds[0] ?? '');
      const quotes = await count('fx_quotes');
      const paid = await json<ObPayment>(await pay(app, token, consent.Data.ConsentId, initiation, key), 201);
      const again = await json<ObPayment>(
        await pay(app, token, consent.Data.ConsentId, initiation, key),
        201,
      );
      assert.equal(again.Data.InternationalPaymentId, paid.Data.InternationalPaymentId);
      assert.equal(
        before - (await available(alice.accountIds[0] ?? '')),
        2002n,
        'debited once, fee included',
      );
      assert.equal(await count('fx_quotes'), quotes + 1, 'the retry took no new quote');
      // The same key for another payment, under another consent, is refused: nothing is paid.
      const next = await createConsent(app, initiationOf('21.00'));
      const { accessToken: nextToken } = await authorise(app, next.Data.ConsentId);
      assert.deepEqual(
        await errorCodes(await pay(app, nextToken, next.Data.ConsentId, initiationOf('21.00'), key), 400),
        ['U006'],
      );
      assert.equal(before - (await available(alice.accountIds[0] ?? '')), 2002n);
      assert.equal(await consentStatus(app, next.Data.ConsentId), 'AUTH');
      assert.ok((await built.ledger.verify()).ok);
    });

    it('pays a customer of the bank in euros at once, and says when the pounds would not cover a payment', async () => {
      const app = await newApp();
      const bobIban = (await built.accounts?.find(bob.accountIds[0] ?? ''))?.iban ?? '';
      const initiation = initiationOf('10.00', { iban: bobIban, name: 'Bob Baker' });
      const consent = await createConsent(app, initiation);
      const { accessToken: token } = await authorise(app, consent.Data.ConsentId);
      const bobBefore = await available(bob.accountIds[0] ?? '');
      const paid = await json<ObPayment>(await pay(app, token, consent.Data.ConsentId, initiation), 201);
      assert.equal(paid.Data.Status, 'ACCC', 'credited to the creditor account here');
      const payment = await built.payments?.get({ clientId: app.id }, paid.Data.InternationalPaymentId);
      assert.equal((await available(bob.accountIds[0] ?? '')) - bobBefore, payment?.quote?.buyAmount);

      const tooMuch = initiationOf('99999.00');
      const big = await createConsent(app, tooMuch);
      const { accessToken: bigToken } = await authorise(app, big.Data.ConsentId);
      assert.equal(await fundsAvailable(app, bigToken, big.Data.ConsentId), false);
      const refused = await json<ObPayment>(await pay(app, bigToken, big.Data.ConsentId, tooMuch), 201);
      assert.equal(refused.Data.Status, 'RJCT');
      assert.ok(refused.Data.StatusReason?.[0]?.StatusReasonDescription);
      const details = await json<{
        Data: { PaymentStatus: { Status: string; StatusDetail?: Record<string, string> }[] };
      }>(
        await call(
          prism,
          app,
          bigToken,
          `/international-payments/${refused.Data.InternationalPaymentId}/payment-details`,
        ),
        200,
      );
      const last = details.Data.PaymentStatus.at(-1);
      assert.deepEqual([last?.Status, last?.StatusDetail?.Status], ['RJCT', 'RJCT']);
      assert.ok(last?.StatusDetail?.StatusReasonDescription);
      assert.ok((await built.ledger.verify()).ok);
    });

    it('refuses a payment that differs from the consent, is unsigned or is not the customer’s, paying nothing', async () => {
      const owner = await newApp();
      const other = await newApp();
      const initiation = initiationOf('30.00');
      const { Data } = await createConsent(owner, initiation);
      const { accessToken: token } = await authorise(owner, Data.ConsentId);
      const payments = await count('payments');
      const before = await available(alice.accountIds[0] ?? '');
      for (const variant of [
        initiationOf('30.01'),
        initiationOf('30.00', { name: 'Someone Else' }),
        { ...initiation, CurrencyOfTransfer: 'USD' },
      ]) {
        const errors = await json<ObErrors>(await pay(owner, token, Data.ConsentId, variant), 400);
        assert.deepEqual(
          errors.Errors.map((error) => [error.ErrorCode, error.Path]),
          [['U002', 'Data.Initiation']],
        );
      }
      // Unsigned: only past Prism's request check does the bank see it, and refuses it.
      assert.deepEqual(
        await errorCodes(
          await call(lax, owner, token, '/international-payments', {
            method: 'POST',
            body: { Data: { ConsentId: Data.ConsentId, Initiation: initiation }, Risk: {} },
            signed: false,
          }),
          400,
        ),
        ['U019'],
      );
      // The owner's app token (client credentials) is not the customer's authorisation.
      assert.deepEqual(await errorCodes(await pay(owner, owner.appToken, Data.ConsentId, initiation), 403), [
        'NARR',
      ]);
      // A ConsentId the token was not issued under.
      const second = await createConsent(owner, initiation);
      assert.deepEqual(await errorCodes(await pay(owner, token, second.Data.ConsentId, initiation), 400), [
        'U011',
      ]);
      assert.equal(await count('payments'), payments);
      assert.equal(await available(alice.accountIds[0] ?? ''), before);
      assert.equal(await consentStatus(owner, Data.ConsentId), 'AUTH', 'still usable for the right payment');

      // Another app sees neither the consent nor the payment.
      const paid = await json<ObPayment>(await pay(owner, token, Data.ConsentId, initiation), 201);
      for (const path of [
        `/international-payment-consents/${Data.ConsentId}`,
        `/international-payments/${paid.Data.InternationalPaymentId}`,
        `/international-payments/${paid.Data.InternationalPaymentId}/payment-details`,
      ]) {
        assert.deepEqual(
          await errorCodes(await call(prism, other, other.appToken, path), 400),
          ['U011'],
          path,
        );
      }
      // A domestic payment consent is not an international one, nor the other way round.
      assert.deepEqual(
        await errorCodes(
          await call(prism, owner, owner.appToken, `/domestic-payment-consents/${Data.ConsentId}`),
          400,
        ),
        ['U011'],
      );
      assert.deepEqual(
        await errorCodes(
          await call(prism, owner, owner.appToken, '/international-payments/not-a-payment'),
          400,
        ),
        ['U011'],
      );
    });

    it('refuses what it cannot honour exactly or read, in OBErrorResponse1 form, creating nothing', async () => {
      const app = await newApp();
      const valid = initiationOf('1.00');
      const post = (
        initiation: unknown,
        proxy = prism,
        init: { key?: string | null; signed?: boolean } = {},
      ) =>
        call(proxy, app, app.appToken, '/international-payment-consents', {
          method: 'POST',
          body: { Data: { Initiation: initiation }, Risk: {} },
          ...init,
        });
      const refusals: [unknown, string, string, PrismProxy?][] = [
        // An amount fixed in the currency of transfer: what the customer's account pays is not known yet.
        [
          { ...valid, InstructedAmount: { Amount: '1.00', Currency: 'EUR' } },
          'U002',
          'Data.Initiation.InstructedAmount.Currency',
        ],
        [
          {
            ...valid,
            ExchangeRateInformation: {
              UnitCurrency: 'GBP',
              RateType: 'Agreed',
              ExchangeRate: 1.17,
              ContractIdentification: 'FX-1',
            },
          },
          'U002',
          'Data.Initiation.ExchangeRateInformation.RateType',
        ],
        [
          {
            ...valid,
            ExchangeRateInformation: { UnitCurrency: 'GBP', RateType: 'Indicative', ExchangeRate: 1.17 },
          },
          'U005',
          'Data.Initiation.ExchangeRateInformation.ExchangeRate',
        ],
        [
          {
            ...valid,
            ExchangeRateInformation: {
              UnitCurrency: 'GBP',
              RateType: 'Actual',
              ContractIdentification: 'FX-1',
            },
          },
          'U005',
          'Data.Initiation.ExchangeRateInformation.ContractIdentification',
        ],
        [
          { ...valid, ExchangeRateInformation: { UnitCurrency: 'EUR', RateType: 'Actual' } },
          'U002',
          'Data.Initiation.ExchangeRateInformation.UnitCurrency',
        ],
        [
          { ...valid, CreditorAgent: { SchemeName: 'UK.OBIE.BICFI', Identification: 'COBADEFFXXX' } },
          'U002',
          'Data.Initiation.CreditorAgent',
        ],
        [{ ...valid, Creditor: { Name: 'Someone Else' } }, 'U002', 'Data.Initiation.Creditor.Name'],
        [
          {
            ...valid,
            Creditor: { Name: 'Berliner Bäckerei', PostalAddress: { TownName: 'Berlin', Country: 'DE' } },
          },
          'U002',
          'Data.Initiation.Creditor.PostalAddress',
        ],
        [{ ...valid, ChargeBearer: 'Shared' }, 'U002', 'Data.Initiation.ChargeBearer'],
        [{ ...valid, DestinationCountryCode: 'FR' }, 'U002', 'Data.Initiation.DestinationCountryCode'],
        [{ ...valid, CurrencyOfTransfer: 'XXX' }, 'U002', 'Data.Initiation.CurrencyOfTransfer'],
        [{ ...valid, InstructionPriority: 'Urgent' }, 'U002', 'Data.Initiation.InstructionPriority'],
        [
          {
            ...valid,
            CreditorAccount: {
              SchemeName: 'UK.OBIE.SortCodeAccountNumber',
              Identification: '08080021325698',
              Name: 'X',
            },
          },
          'U002',
          'Data.Initiation.CreditorAccount.SchemeName',
        ],
        // Requests the spec itself forbids, sent past Prism's request check to reach the bank.
        [{ ...valid, CurrencyOfTransfer: undefined }, 'U004', 'Data.Initiation.CurrencyOfTransfer', lax],
      ];
      const consents = await count('consents');
      const quotes = await count('fx_quotes');
      for (const [initiation, code, path, proxy] of refusals) {
        const errors = await json<ObErrors>(await post(initiation, proxy), 400);
        assert.deepEqual(
          [errors.Errors[0]?.ErrorCode, errors.Errors[0]?.Path],
          [code, path],
          JSON.stringify(initiation),
        );
      }
      assert.deepEqual(await errorCodes(await post(valid, lax, { signed: false }), 400), ['U019']);
      assert.deepEqual(await errorCodes(await post(valid, lax, { key: null }), 400), ['U006']);
      assert.equal(await count('consents'), consents);
      assert.equal(await count('fx_quotes'), quotes, 'no quote was taken for a refused consent');
      assert.deepEqual(
        await errorCodes(
          await call(prism, app, app.appToken, '/international-payment-consents/not-a-consent'),
          400,
        ),
        ['U011'],
      );
      // The same key and body again: the same consent, not a second one.
      const key = nextKey();
      const first = await createConsent(app, valid, key);
      const again = await createConsent(app, valid, key);
      assert.equal(again.Data.ConsentId, first.Data.ConsentId);
      assert.equal(await count('consents'), consents + 1);
    });
  });
}

// What the tests saw is their record in the conformance table: written on request, otherwise checked.
after(() => {
  if (observed.length === 0) return;
  keepRecord(
    'uk-ob-pisp-international',
    recordOf('uk-ob-pisp', 'src/standards/uk-ob/pisp-international.test.ts', observed, {
      CreateInternationalPaymentConsents:
        'InstructedAmount in the debtor account’s currency only (an amount fixed in CurrencyOfTransfer is refused: the debit would be unknown at authorisation); RateType Actual or Indicative, no Agreed rates (quotes hold 30 s); creditor by UK.OBIE.IBAN only; no CreditorAgent (the pacs.008 names no creditor agent), DebtorAccount, Creditor address, LocalInstrument, InstructionPriority, RegulatoryReporting, Authorisation or SCASupportData; the pacs.008 carries the bank’s own ids, not EndToEndIdentification',
    }),
  );
});
