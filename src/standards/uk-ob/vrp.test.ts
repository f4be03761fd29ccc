// The UK Open Banking v4.0 Variable Recurring Payments API (domestic VRPs, onto the bank's mandates),
// exercised the way a third party integrating the standard would, with every request and response passing
// through Prism against the official file: a response that does not conform fails the test. Also keeps its
// record in the conformance table (docs/conformance.md).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type createLocalJWKSet, decodeJwt, exportJWK, generateKeyPair, type JWK } from 'jose';
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
import { VRP_PREFIX } from './vrp.ts';

const TOKEN = 'uk-ob-vrp-test-operator-token-0123456789';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'uk ob vrp test password';
const SPEC = fileURLToPath(new URL('../../../specs/uk-open-banking-v4.0/vrp-openapi.yaml', import.meta.url));
// A valid IBAN of another bank: VRPs here are paid to accounts of this bank only.
const EXTERNAL_IBAN = 'GB33BUKB20201555555555';
const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();
const observed: Exchange[] = [];

interface ObConsent {
  Data: {
    ConsentId: string;
    Status: string;
    ControlParameters: Record<string, unknown>;
    Initiation: Record<string, unknown>;
    DebtorAccount?: { SchemeName: string; Identification: string };
  };
  Risk: Record<string, unknown>;
}
interface ObVrp {
  Data: {
    DomesticVRPId: string;
    ConsentId: string;
    Status: string;
    StatusReason?: { StatusReasonDescription: string }[];
    Initiation: Record<string, unknown>;
    Instruction: Record<string, unknown>;
    Refund?: { Identification: string };
    DebtorAccount?: { Identification: string };
  };
}
interface ObErrors {
  Errors: { ErrorCode: string; Message: string; Path?: string }[];
}
interface Funds {
  Data: { ConsentId: string; FundsAvailableResult: { FundsAvailable: string }; InstructedAmount: object };
}
type Creditor = { iban: string; name: string };

for (const database of testDatabases()) {
  describe(`UK Open Banking v4.0 VRP on ${database.name}`, () => {
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
    let tppKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
    let tppPublicJwk: JWK;
    let alice: { customerId: string; accountIds: string[]; ledgerAccountIds: string[] };
    let bob: { customerId: string; accountIds: string[]; ledgerAccountIds: string[] };
    const ibanOf = new Map<string, string>();
    // The merchant the VRPs pay (Bob's account here), and Alice's own savings for sweeping.
    let merchant: Creditor;
    let aliceSavings: Creditor;

    before(async () => {
      db = await database.open();
      bank = await bankBehindPrism(db, {
        spec: SPEC,
        prefix: VRP_PREFIX,
        adminToken: TOKEN,
        password: PASSWORD,
        aliceAccounts: [
          { product: 'current', currency: 'GBP' },
          { product: 'savings', currency: 'GBP' },
        ],
        bobAccounts: [{ product: 'current', currency: 'GBP' }],
        aliceFunds: { amount: '1000.00', from: 'Northwind Ltd' },
      });
      ({ built, issuer, prism, lax, developer, alice, bob, bankKeys } = bank);
      for (const id of [...alice.accountIds, ...bob.accountIds]) ibanOf.set(id, await bank.ibanOf(id));
      merchant = { iban: ibanOf.get(bob.accountIds[0] ?? '') ?? '', name: 'Bob Baker' };
      aliceSavings = { iban: ibanOf.get(alice.accountIds[1] ?? '') ?? '', name: 'Alice Able' };
      // VRPs come fast here, as no customer's payments would: the fraud rules stay off but for the one test
      // that turns one on (they screen every VRP, as every payment).
      for (const rule of (await built.fraud?.rules()) ?? []) {
        await built.fraud?.updateRule(rule.id, { enabled: false, changedBy: 'vrp-test' });
      }
      const pair = await generateKeyPair('PS256');
      tppKey = pair.privateKey;
      tppPublicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'tpp-test', alg: 'PS256', use: 'sig' };
    });
    after(async () => {
      if (bank) observed.push(...(await bank.close()));
      await db?.close();
    });

    // Every test app registers the public half of the key the test signs its requests with.
    const newApp = async () =>
      newClientApp({ built, issuer }, developer, {
        name: `Sweep Co ${++apps}`,
        scopes: ['openid', 'payments'],
        redirectUri: REDIRECT,
        jwks: { keys: [tppPublicJwk] },
      });
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    const nextKey = () => `vrp-key-${++keys}`;
    // Every request body is signed as a third party signs (a detached JWS with the Open Banking claims), by
    // the app the token was issued to; `signed: false` sends none, to see the bank refuse it.
    const call = (
      proxy: PrismProxy,
      token: string,
      path: string,
      init: ThirdPartyCall & { key?: string | null; signed?: boolean } = {},
    ) => {
      const key = init.key === undefined ? nextKey() : init.key;
      const clientId = String(decodeJwt(token).client_id);
      return callAsThirdParty(proxy, token, path, init, async (body) => ({
        ...(init.signed !== false && {
          'x-jws-signature': await detachedJws(tppKey, 'tpp-test', body, obSignatureClaims(clientId)),
        }),
        ...(key !== null && { 'x-idempotency-key': key }),
      }));
    };
    /** The answer, after checking its interaction id and the bank's detached signature over its body. */
    const json = <T>(response: Response, status: number) => signedObAnswer<T>(bankKeys, response, status);
    const errorsOf = async (response: Response, status: number) =>
      (await json<ObErrors>(response, status)).Errors.map((error) => [error.ErrorCode, error.Path]);

    const controlParameters = (overrides: Record<string, unknown> = {}) => ({
      ValidToDateTime: inDays(90),
      MaximumIndividualAmount: { Amount: '30.00', Currency: 'GBP' },
      PeriodicLimits: [
        { PeriodType: 'Day', PeriodAlignment: 'Calendar', Amount: '50.00', Currency: 'GBP' },
        { PeriodType: 'Month', PeriodAlignment: 'Calendar', Amount: '200.00', Currency: 'GBP' },
      ],
      VRPType: ['UK.OBIE.VRPType.Other'],
      PSUAuthenticationMethods: ['UK.OBIE.SCANotRequired'],
      PSUInteractionTypes: ['OffSession'],
      ...overrides,
    });
    const initiationOf = (creditor: Creditor = merchant) => ({
      CreditorAccount: { SchemeName: 'UK.OBIE.IBAN', Identification: creditor.iban, Name: creditor.name },
    });
    const RISK = { PaymentContextCode: 'BillingGoodsAndServicesInArrears' };
    const consentBody = (
      control: Record<string, unknown> = controlParameters(),
      initiation: Record<string, unknown> = initiationOf(),
      more: Record<string, unknown> = {},
    ) => ({ Data: { ControlParameters: control, Initiation: initiation, ...more }, Risk: RISK });
    const createConsent = async (app: TestApp, body: object = consentBody(), key?: string) =>
      json<ObConsent>(
        await call(prism, app.appToken, '/domestic-vrp-consents', {
          method: 'POST',
          body,
          ...(key && { key }),
        }),
        201,
      );
    /** The customer authorises at the bank's consent page: the page, and the token the app redeemed. */
    const authorise = async (app: TestApp, consentId: string, account = alice.accountIds[0] ?? '') =>
      authoriseConsent({
        issuer,
        config: app.config,
        redirectUri: REDIRECT,
        scope: 'openid payments',
        type: 'mandate',
        consentId,
        username: 'alice',
        password: PASSWORD,
        accounts: [account],
      });
    const authorisedConsent = async (app: TestApp, body: object = consentBody()) => {
      const { Data } = await createConsent(app, body);
      await authorise(app, Data.ConsentId);
      return Data.ConsentId;
    };
    const vrpBody = (
      consentId: string,
      amount: string,
      more: { creditor?: Creditor; currency?: string; data?: Record<string, unknown>; e2e?: string } = {},
    ) => ({
      Data: {
        ConsentId: consentId,
        PSUAuthenticationMethod: 'UK.OBIE.SCANotRequired',
        PSUInteractionType: 'OffSession',
        VRPType: 'UK.OBIE.VRPType.Other',
        Initiation: initiationOf(),
        Instruction: {
          InstructionIdentification: 'SWEEP-1',
          EndToEndIdentification: more.e2e ?? 'E2E.VRP.1',
          InstructedAmount: { Amount: amount, Currency: more.currency ?? 'GBP' },
          CreditorAccount: initiationOf(more.creditor).CreditorAccount,
          RemittanceInformation: { Unstructured: ['Ride 42'] },
        },
        ...more.data,
      },
      Risk: RISK,
    });
    const pay = (token: string, body: object, key?: string) =>
      call(prism, token, '/domestic-vrps', { method: 'POST', body, ...(key && { key }) });
    const fundsBody = (consentId: string, amount: string, currency = 'GBP') => ({
      Data: { ConsentId: consentId, InstructedAmount: { Amount: amount, Currency: currency } },
    });
    const fundsCheck = (token: string, consentId: string, amount: string, currency = 'GBP') =>
      call(prism, token, `/domestic-vrp-consents/${consentId}/funds-confirmation`, {
        method: 'POST',
        body: fundsBody(consentId, amount, currency),
        key: null,
      });
    const consentStatus = async (app: TestApp, consentId: string) =>
      (await json<ObConsent>(await call(prism, app.appToken, `/domestic-vrp-consents/${consentId}`), 200))
        .Data.Status;
    const posted = async (accountId: string) => {
      const account = await built.accounts?.find(accountId);
      assert.ok(account);
      return (await built.accounts?.balances(account))?.posted ?? 0n;
    };
    const count = async (table: string) =>
      Number((await db.query<{ n: number }>(`select count(*)::int as n from ${table}`))[0]?.n);
    /** Everything a refused request must leave as it was. */
    const snapshot = async () => ({
      alice: await posted(alice.accountIds[0] ?? ''),
      bob: await posted(bob.accountIds[0] ?? ''),
      consents: await count('consents'),
      mandates: await count('mandates'),
      charges: await count('mandate_charges'),
      payments: await count('payments'),
      vrps: await count('uk_ob_vrps'),
    });

    it('runs the whole flow: consent, authorisation at the consent page, funds, a VRP, its status', async () => {
      const app = await newApp();
      const interactionId = '2f0a64a1-0d3c-4b7a-9e0e-3a2a6c0b8e11';
      const body = consentBody(controlParameters(), initiationOf(), { ReadRefundAccount: 'Yes' });
      const createdResponse = await call(prism, app.appToken, '/domestic-vrp-consents', {
        method: 'POST',
        body,
        headers: { 'x-fapi-interaction-id': interactionId },
      });
      assert.equal(createdResponse.headers.get('x-fapi-interaction-id'), interactionId);
      const consent = await json<ObConsent>(createdResponse, 201);
      assert.equal(consent.Data.Status, 'AWAU');
      assert.deepEqual(consent.Data.ControlParameters, body.Data.ControlParameters);
      assert.deepEqual(consent.Data.Initiation, body.Data.Initiation);
      assert.deepEqual(consent.Risk, RISK);
      const consentId = consent.Data.ConsentId;
      // The same consent is the bank's mandate, with the terms its limits check.
      const mandate = await built.mandates?.get({ clientId: app.id }, consentId);
      assert.deepEqual(
        [mandate?.currency, mandate?.maxPerCharge, mandate?.periodicLimits, mandate?.creditor.iban],
        [
          'GBP',
          3000n,
          [
            { period: 'day', max: 5000n },
            { period: 'month', max: 20000n },
          ],
          merchant.iban,
        ],
      );
      assert.equal(mandate?.expiresAt.toISOString(), body.Data.ControlParameters.ValidToDateTime);

      const { page, accessToken } = await authorise(app, consentId);
      assert.match(page, /Take payments from your account without asking you each time/);
      assert.match(page, /at most 30\.00 GBP a payment/);
      assert.match(page, /at most 50\.00 GBP a day \(UTC\)/);
      assert.match(page, /at most 200\.00 GBP a calendar month \(UTC\)/);
      const authorised = await json<ObConsent>(
        await call(prism, app.appToken, `/domestic-vrp-consents/${consentId}`),
        200,
      );
      assert.equal(authorised.Data.Status, 'AUTH');
      assert.equal(authorised.Data.DebtorAccount?.Identification, ibanOf.get(alice.accountIds[0] ?? ''));

      // Funds, with the app's token and with the customer's issued under this consent.
      for (const token of [app.appToken, accessToken]) {
        const funds = await json<Funds>(await fundsCheck(token, consentId, '25.00'), 201);
        assert.deepEqual(
          [funds.Data.ConsentId, funds.Data.FundsAvailableResult.FundsAvailable, funds.Data.InstructedAmount],
          [consentId, 'Available', { Amount: '25.00', Currency: 'GBP' }],
        );
      }

      const before = await snapshot();
      const vrp = vrpBody(consentId, '12.50');
      const created = await json<ObVrp>(await pay(app.appToken, vrp), 201);
      assert.equal(created.Data.ConsentId, consentId);
      assert.equal(created.Data.Status, 'ACCC', 'credited to the merchant account here at once');
      assert.deepEqual(created.Data.Initiation, vrp.Data.Initiation);
      assert.deepEqual(created.Data.Instruction, vrp.Data.Instruction);
      assert.equal(created.Data.Refund?.Identification, ibanOf.get(alice.accountIds[0] ?? ''));
      assert.equal(await posted(alice.accountIds[0] ?? ''), before.alice - 1250n);
      assert.equal(await posted(bob.accountIds[0] ?? ''), before.bob + 1250n);
      // A real payment, under the mandate, with its reference.
      const payment = await built.payments?.get({ clientId: app.id }, created.Data.DomesticVRPId);
      assert.deepEqual(
        [payment?.consentId, payment?.reference, payment?.status],
        [consentId, 'Ride 42', 'settled'],
      );
      // The customer's token pays too.
      assert.equal(
        (await json<ObVrp>(await pay(accessToken, vrpBody(consentId, '1.00')), 201)).Data.Status,
        'ACCC',
      );

      const read = await json<ObVrp>(
        await call(prism, app.appToken, `/domestic-vrps/${created.Data.DomesticVRPId}`),
        200,
      );
      assert.deepEqual(read, created);
      const details = await json<{
        Data: { PaymentStatus: { Status: string; PaymentTransactionId: string }[] };
      }>(
        await call(prism, app.appToken, `/domestic-vrps/${created.Data.DomesticVRPId}/payment-details`),
        200,
      );
      assert.deepEqual(
        details.Data.PaymentStatus.map((entry) => [entry.Status, entry.PaymentTransactionId]),
        [
          ['RCVD', created.Data.DomesticVRPId],
          ['ACCC', created.Data.DomesticVRPId],
        ],
      );
      // Still authorised: a VRP consent is used again and again.
      assert.equal(await consentStatus(app, consentId), 'AUTH');
      assert.ok((await built.ledger.verify()).ok);
    });

    it('refuses a VRP over the per-payment or a periodic limit, moving nothing', async () => {
      const app = await newApp();
      const consentId = await authorisedConsent(app);
      const before = await snapshot();
      assert.deepEqual(await errorsOf(await pay(app.appToken, vrpBody(consentId, '30.01')), 400), [
        ['NARR', 'Data.ControlParameters.MaximumIndividualAmount'],
      ]);
      assert.deepEqual(await snapshot(), before);
      assert.equal(
        (await json<ObVrp>(await pay(app.appToken, vrpBody(consentId, '30.00')), 201)).Data.Status,
        'ACCC',
      );
      assert.equal(
        (await json<ObVrp>(await pay(app.appToken, vrpBody(consentId, '20.00')), 201)).Data.Status,
        'ACCC',
      );
      const full = await snapshot();
      const refused = await json<ObErrors>(await pay(app.appToken, vrpBody(consentId, '0.01')), 400);
      assert.deepEqual(
        refused.Errors.map((error) => [error.ErrorCode, error.Path]),
        [['NARR', 'Data.ControlParameters.PeriodicLimits.0']],
        'the Day limit, the first of the consent',
      );
      assert.match(
        refused.Errors[0]?.Message ?? '',
        /UK\.OBIE\.Rules\.FailsControlParameters: 0\.00 GBP left this day/,
      );
      assert.deepEqual(await snapshot(), full);
    });

    it('refuses a consent or a VRP its app did not sign, creating and moving nothing', async () => {
      const app = await newApp();
      const consentId = await authorisedConsent(app);
      const before = await snapshot();
      const stranger = (await generateKeyPair('PS256')).privateKey;
      const requests: [string, object][] = [
        ['/domestic-vrp-consents', consentBody()],
        ['/domestic-vrps', vrpBody(consentId, '1.00')],
        [`/domestic-vrp-consents/${consentId}/funds-confirmation`, fundsBody(consentId, '1.00')],
      ];
      for (const [path, body] of requests) {
        const unsigned = await call(lax, app.appToken, path, { method: 'POST', body, signed: false });
        assert.deepEqual(await errorsOf(unsigned, 400), [['U019', 'x-jws-signature']], path);
        const text = JSON.stringify(body);
        const forged = await callAsThirdParty(
          prism,
          app.appToken,
          path,
          { method: 'POST', body },
          async () => ({
            'x-jws-signature': await detachedJws(stranger, 'tpp-test', text, obSignatureClaims(app.id)),
            'x-idempotency-key': nextKey(),
          }),
        );
        assert.deepEqual(await errorsOf(forged, 400), [['U015', 'x-jws-signature']], path);
      }
      assert.deepEqual(await snapshot(), before);
    });

    it('lets VRPs arriving together take no more than a period allows', async () => {
      const app = await newApp();
      const consentId = await authorisedConsent(app);
      const before = await snapshot();
      const responses = await Promise.all(
        Array.from({ length: 5 }, () => pay(app.appToken, vrpBody(consentId, '20.00'))),
      );
      const statuses = responses.map((response) => response.status).sort();
      assert.deepEqual(statuses, [201, 201, 400, 400, 400], 'two fit in the day’s 50.00');
      for (const response of responses.filter((r) => r.status === 400)) {
        assert.deepEqual(await errorsOf(response, 400), [
          ['NARR', 'Data.ControlParameters.PeriodicLimits.0'],
        ]);
      }
      for (const response of responses.filter((r) => r.status === 201)) await json<ObVrp>(response, 201);
      assert.equal(await posted(alice.accountIds[0] ?? ''), before.alice - 4000n);
      assert.equal(await count('uk_ob_vrps'), before.vrps + 2);
    });

    it('refuses a VRP to another creditor, in another currency, or unlike its consent, moving nothing', async () => {
      const app = await newApp();
      const consentId = (await createConsent(app)).Data.ConsentId;
      const { accessToken } = await authorise(app, consentId);
      const before = await snapshot();
      const refusals: [object, [string, string]][] = [
        [
          vrpBody(consentId, '5.00', { creditor: aliceSavings }),
          ['NARR', 'Data.Instruction.CreditorAccount'],
        ],
        [
          vrpBody(consentId, '5.00', { creditor: { iban: merchant.iban, name: 'Someone Else' } }),
          ['NARR', 'Data.Instruction.CreditorAccount'],
        ],
        [
          vrpBody(consentId, '5.00', { currency: 'EUR' }),
          ['U002', 'Data.Instruction.InstructedAmount.Currency'],
        ],
        [vrpBody(consentId, '5.0'), ['U002', 'Data.Instruction.InstructedAmount.Amount']],
        [
          vrpBody(consentId, '5.00', { data: { Initiation: initiationOf(aliceSavings) } }),
          ['U002', 'Data.Initiation'],
        ],
        [
          vrpBody(consentId, '5.00', { data: { VRPType: 'UK.OBIE.VRPType.Sweeping' } }),
          ['NARR', 'Data.VRPType'],
        ],
        [
          vrpBody(consentId, '5.00', { data: { PSUAuthenticationMethod: 'UK.OBIE.SCA' } }),
          ['NARR', 'Data.PSUAuthenticationMethod'],
        ],
        [
          vrpBody(consentId, '5.00', { data: { PSUInteractionType: 'InSession' } }),
          ['NARR', 'Data.PSUInteractionType'],
        ],
        [{ ...vrpBody(consentId, '5.00'), Risk: {} }, ['U002', 'Risk']],
      ];
      for (const [body, expected] of refusals) {
        assert.deepEqual(
          await errorsOf(await pay(app.appToken, body), 400),
          [expected],
          JSON.stringify(body),
        );
      }
      // A ConsentId the customer's token was not issued under.
      const other = await createConsent(app);
      assert.deepEqual(await errorsOf(await pay(accessToken, vrpBody(other.Data.ConsentId, '5.00')), 400), [
        ['U011', 'ConsentId'],
      ]);
      // Before the customer authorised it.
      assert.deepEqual(await errorsOf(await pay(app.appToken, vrpBody(other.Data.ConsentId, '5.00')), 409), [
        ['NARR', undefined],
      ]);
      // The spec requires x-idempotency-key on every POST: without it the bank refuses too.
      assert.deepEqual(
        await errorsOf(
          await call(lax, app.appToken, '/domestic-vrps', {
            method: 'POST',
            body: vrpBody(consentId, '5.00'),
            key: null,
          }),
          400,
        ),
        [['U006', undefined]],
      );
      assert.deepEqual(await snapshot(), {
        ...before,
        consents: before.consents + 1,
        mandates: before.mandates + 1,
      });
    });

    it('sweeps only to the customer’s own account under a sweeping consent', async () => {
      const app = await newApp();
      const sweeping = controlParameters({ VRPType: ['UK.OBIE.VRPType.Sweeping'] });
      const toSavings = vrpBody('', '10.00', {
        creditor: aliceSavings,
        data: { VRPType: 'UK.OBIE.VRPType.Sweeping', Initiation: initiationOf(aliceSavings) },
      });
      const ownConsent = await authorisedConsent(app, consentBody(sweeping, initiationOf(aliceSavings)));
      const before = await posted(alice.accountIds[1] ?? '');
      const swept = await json<ObVrp>(
        await pay(app.appToken, { ...toSavings, Data: { ...toSavings.Data, ConsentId: ownConsent } }),
        201,
      );
      assert.equal(swept.Data.Status, 'ACCC');
      assert.equal(await posted(alice.accountIds[1] ?? ''), before + 1000n);
      // A "sweep" to somebody else's account is not one.
      const toBob = await authorisedConsent(app, consentBody(sweeping));
      const body = vrpBody(toBob, '10.00', { data: { VRPType: 'UK.OBIE.VRPType.Sweeping' } });
      const snap = await snapshot();
      assert.deepEqual(await errorsOf(await pay(app.appToken, body), 400), [['NARR', 'Data.VRPType']]);
      assert.deepEqual(await snapshot(), snap);
    });

    it('stops when the app deletes the consent, and keeps what was paid', async () => {
      const app = await newApp();
      const consentId = await authorisedConsent(app);
      const paid = await json<ObVrp>(await pay(app.appToken, vrpBody(consentId, '3.00')), 201);
      const deleted = await call(prism, app.appToken, `/domestic-vrp-consents/${consentId}`, {
        method: 'DELETE',
      });
      assert.equal(deleted.status, 204);
      assert.equal(await consentStatus(app, consentId), 'CANC');
      assert.equal(
        (await call(prism, app.appToken, `/domestic-vrp-consents/${consentId}`, { method: 'DELETE' })).status,
        204,
      );
      const before = await snapshot();
      assert.deepEqual(await errorsOf(await pay(app.appToken, vrpBody(consentId, '3.00')), 409), [
        ['NARR', undefined],
      ]);
      assert.deepEqual(await errorsOf(await fundsCheck(app.appToken, consentId, '1.00'), 400), [
        ['NARR', undefined],
      ]);
      assert.deepEqual(await snapshot(), before);
      // The mandate went with it, and what was paid is still there to read.
      assert.equal((await built.mandates?.get({ clientId: app.id }, consentId))?.status, 'revoked');
      assert.equal(
        (await json<ObVrp>(await call(prism, app.appToken, `/domestic-vrps/${paid.Data.DomesticVRPId}`), 200))
          .Data.Status,
        'ACCC',
      );
      // A consent the customer never authorised is withdrawn just the same; one they rejected has ended.
      const pending = await createConsent(app);
      assert.equal(
        (
          await call(prism, app.appToken, `/domestic-vrp-consents/${pending.Data.ConsentId}`, {
            method: 'DELETE',
          })
        ).status,
        204,
      );
      assert.equal(await consentStatus(app, pending.Data.ConsentId), 'CANC');
    });

    it('says whether funds would cover an amount, and refuses what it cannot check', async () => {
      const app = await newApp();
      const consentId = await authorisedConsent(app);
      const no = await json<Funds>(await fundsCheck(app.appToken, consentId, '99999.00'), 201);
      assert.equal(no.Data.FundsAvailableResult.FundsAvailable, 'NotAvailable');
      const yes = await json<Funds>(await fundsCheck(app.appToken, consentId, '0.01'), 201);
      assert.equal(yes.Data.FundsAvailableResult.FundsAvailable, 'Available');
      assert.deepEqual(await errorsOf(await fundsCheck(app.appToken, consentId, '1.00', 'EUR'), 400), [
        ['U002', 'Data.InstructedAmount.Currency'],
      ]);
      assert.deepEqual(await errorsOf(await fundsCheck(app.appToken, consentId, '1.001'), 400), [
        ['U002', 'Data.InstructedAmount.Amount'],
      ]);
      const unauthorised = await createConsent(app);
      assert.deepEqual(
        await errorsOf(await fundsCheck(app.appToken, unauthorised.Data.ConsentId, '1.00'), 400),
        [['NARR', undefined]],
      );
      // The body's ConsentId is the path's.
      assert.deepEqual(
        await errorsOf(
          await call(prism, app.appToken, `/domestic-vrp-consents/${consentId}/funds-confirmation`, {
            method: 'POST',
            body: {
              Data: {
                ConsentId: unauthorised.Data.ConsentId,
                InstructedAmount: { Amount: '1.00', Currency: 'GBP' },
              },
            },
            key: null,
          }),
          400,
        ),
        [['U002', 'Data.ConsentId']],
      );
    });

    it("keeps one app's consents and VRPs from another", async () => {
      const owner = await newApp();
      const other = await newApp();
      const consentId = await authorisedConsent(owner);
      const paid = await json<ObVrp>(await pay(owner.appToken, vrpBody(consentId, '2.00')), 201);
      const id = paid.Data.DomesticVRPId;
      const before = await snapshot();
      for (const [response, path] of [
        [await call(prism, other.appToken, `/domestic-vrp-consents/${consentId}`), 'ConsentId'],
        [
          await call(prism, other.appToken, `/domestic-vrp-consents/${consentId}`, { method: 'DELETE' }),
          'ConsentId',
        ],
        [await fundsCheck(other.appToken, consentId, '1.00'), 'ConsentId'],
        [await pay(other.appToken, vrpBody(consentId, '2.00')), 'ConsentId'],
        [await call(prism, other.appToken, `/domestic-vrps/${id}`), 'DomesticVRPId'],
        [await call(prism, other.appToken, `/domestic-vrps/${id}/payment-details`), 'DomesticVRPId'],
      ] as const) {
        assert.deepEqual(await errorsOf(response, 400), [['U011', path]]);
      }
      assert.deepEqual(await snapshot(), before);
      assert.equal(await consentStatus(owner, consentId), 'AUTH');
      assert.deepEqual(await errorsOf(await call(prism, owner.appToken, '/domestic-vrps/not-a-vrp'), 400), [
        ['U011', 'DomesticVRPId'],
      ]);
    });

    it('replays a consent and a VRP under the same x-idempotency-key, paying once', async () => {
      const app = await newApp();
      const consentKey = nextKey();
      // The same request again: the same body (its ValidToDateTime is computed once).
      const body = consentBody();
      const first = await createConsent(app, body, consentKey);
      const consents = await count('consents');
      const again = await createConsent(app, body, consentKey);
      assert.deepEqual(again, first);
      assert.equal(await count('consents'), consents);
      // The same key for another consent is refused.
      const otherTerms = consentBody(
        controlParameters({ MaximumIndividualAmount: { Amount: '29.00', Currency: 'GBP' } }),
      );
      assert.deepEqual(
        await errorsOf(
          await call(prism, app.appToken, '/domestic-vrp-consents', {
            method: 'POST',
            body: otherTerms,
            key: consentKey,
          }),
          400,
        ),
        [['NARR', undefined]],
      );
      assert.equal(await count('consents'), consents);

      await authorise(app, first.Data.ConsentId);
      const key = nextKey();
      const before = await snapshot();
      const vrp = vrpBody(first.Data.ConsentId, '7.25');
      const paid = await json<ObVrp>(await pay(app.appToken, vrp, key), 201);
      const replayed = await json<ObVrp>(await pay(app.appToken, vrp, key), 201);
      assert.deepEqual(replayed, paid);
      assert.equal(await posted(alice.accountIds[0] ?? ''), before.alice - 725n, 'debited once');
      // The key with any other request is refused, even one the charge alone would not tell apart.
      const otherE2e = vrpBody(first.Data.ConsentId, '7.25', { e2e: 'E2E.VRP.2' });
      assert.deepEqual(await errorsOf(await pay(app.appToken, otherE2e, key), 409), [['U006', undefined]]);
      assert.deepEqual(await snapshot(), {
        ...before,
        alice: before.alice - 725n,
        bob: before.bob + 725n,
        charges: before.charges + 1,
        payments: before.payments + 1,
        vrps: before.vrps + 1,
      });
      assert.ok((await built.ledger.verify()).ok);
    });

    it('records a VRP that funds or fraud screening refuse as rejected, counting it toward no limit', async () => {
      const app = await newApp();
      const consentId = await authorisedConsent(
        app,
        consentBody(
          controlParameters({
            MaximumIndividualAmount: { Amount: '5000.00', Currency: 'GBP' },
            PeriodicLimits: [
              { PeriodType: 'Week', PeriodAlignment: 'Calendar', Amount: '5000.00', Currency: 'GBP' },
            ],
          }),
        ),
      );
      const before = await snapshot();
      const short = await json<ObVrp>(await pay(app.appToken, vrpBody(consentId, '4999.00')), 201);
      assert.equal(short.Data.Status, 'RJCT');
      assert.match(short.Data.StatusReason?.[0]?.StatusReasonDescription ?? '', /insufficient_funds/);
      const fraud = built.fraud;
      assert.ok(fraud);
      await fraud.updateRule('blocklisted_payee', { enabled: true, changedBy: 'vrp-test' });
      await fraud.addToBlocklist({ iban: merchant.iban, reason: 'test', addedBy: 'ops' });
      try {
        const blocked = await json<ObVrp>(await pay(app.appToken, vrpBody(consentId, '1.00')), 201);
        assert.equal(blocked.Data.Status, 'RJCT');
        assert.match(blocked.Data.StatusReason?.[0]?.StatusReasonDescription ?? '', /payment_blocked/);
      } finally {
        await fraud.removeFromBlocklist(merchant.iban);
        await fraud.updateRule('blocklisted_payee', { enabled: false, changedBy: 'vrp-test' });
      }
      assert.equal(await posted(alice.accountIds[0] ?? ''), before.alice);
      const usage = await built.mandates?.usage(
        (await built.mandates?.get({ clientId: app.id }, consentId)) ?? assert.fail('no mandate'),
      );
      assert.equal(usage?.[0]?.charged, 0n);
    });

    it('refuses ControlParameters it cannot enforce exactly, in OBErrorResponse1 form, creating nothing', async () => {
      const app = await newApp();
      const post = (body: unknown, proxy = prism, key?: string | null) =>
        call(proxy, app.appToken, '/domestic-vrp-consents', {
          method: 'POST',
          body,
          ...(key !== undefined && { key }),
        });
      const limit = (
        PeriodType: string,
        PeriodAlignment = 'Calendar',
        Amount = '100.00',
        Currency = 'GBP',
      ) => ({
        PeriodicLimits: [{ PeriodType, PeriodAlignment, Amount, Currency }],
      });
      const cp = 'Data.ControlParameters';
      const refusals: [unknown, string, string, PrismProxy?][] = [
        [
          consentBody(controlParameters(limit('Day', 'Consent'))),
          'U002',
          `${cp}.PeriodicLimits.0.PeriodAlignment`,
        ],
        [
          consentBody(controlParameters(limit('Fortnight', 'Consent'))),
          'U002',
          `${cp}.PeriodicLimits.0.PeriodType`,
        ],
        [consentBody(controlParameters(limit('Half-year'))), 'U002', `${cp}.PeriodicLimits.0.PeriodType`],
        [consentBody(controlParameters(limit('Year'))), 'U002', `${cp}.PeriodicLimits.0.PeriodType`],
        [
          consentBody(controlParameters(limit('Week', 'Calendar', '100.00', 'EUR'))),
          'U002',
          `${cp}.PeriodicLimits.0.Currency`,
        ],
        [
          consentBody(controlParameters(limit('Week', 'Calendar', '20.00'))),
          'U002',
          `${cp}.MaximumIndividualAmount.Amount`,
        ],
        [
          consentBody(
            controlParameters({
              PeriodicLimits: [
                { PeriodType: 'Week', PeriodAlignment: 'Calendar', Amount: '100.00', Currency: 'GBP' },
                { PeriodType: 'Week', PeriodAlignment: 'Calendar', Amount: '90.00', Currency: 'GBP' },
              ],
            }),
          ),
          'U002',
          `${cp}.PeriodicLimits.1.PeriodType`,
        ],
        [consentBody(controlParameters({ ValidFromDateTime: inDays(2) })), 'U002', `${cp}.ValidFromDateTime`],
        [consentBody(controlParameters({ ValidToDateTime: undefined })), 'U004', `${cp}.ValidToDateTime`],
        [consentBody(controlParameters({ ValidToDateTime: inDays(181) })), 'U002', `${cp}.ValidToDateTime`],
        [
          consentBody(controlParameters({ PSUAuthenticationMethods: ['UK.OBIE.SCA'] })),
          'U002',
          `${cp}.PSUAuthenticationMethods`,
        ],
        [
          consentBody(controlParameters({ VRPType: ['UK.OBIE.VRPType.Gambling'] })),
          'U002',
          `${cp}.VRPType.0`,
        ],
        [
          consentBody(controlParameters({ MaximumIndividualAmount: { Amount: '30.5', Currency: 'GBP' } })),
          'U002',
          `${cp}.MaximumIndividualAmount.Amount`,
        ],
        [consentBody(controlParameters({ SupplementaryData: { x: 1 } })), 'U002', `${cp}.SupplementaryData`],
        [consentBody(controlParameters(), {}), 'U004', 'Data.Initiation.CreditorAccount'],
        [
          consentBody(controlParameters(), initiationOf({ iban: EXTERNAL_IBAN, name: 'Elsewhere' })),
          'U002',
          'Data.Initiation.CreditorAccount.Identification',
        ],
        [
          consentBody(controlParameters(), {
            ...initiationOf(),
            DebtorAccount: { SchemeName: 'UK.OBIE.IBAN', Identification: EXTERNAL_IBAN, Name: 'Alice' },
          }),
          'U002',
          'Data.Initiation.DebtorAccount',
        ],
        [
          consentBody(controlParameters(), {
            CreditorAccount: {
              SchemeName: 'UK.OBIE.SortCodeAccountNumber',
              Identification: '08080021325698',
              Name: 'X',
            },
          }),
          'U002',
          'Data.Initiation.CreditorAccount.SchemeName',
        ],
        // Requests the spec itself forbids, sent past Prism's request check to reach the bank.
        [{ Data: { Initiation: initiationOf() }, Risk: {} }, 'U004', 'Data.ControlParameters', lax],
        [
          consentBody(controlParameters({ MaximumIndividualAmount: { Amount: 'ten', Currency: 'GBP' } })),
          'U002',
          `${cp}.MaximumIndividualAmount.Amount`,
          lax,
        ],
      ];
      const before = await snapshot();
      for (const [body, code, path, proxy] of refusals) {
        const errors = await json<ObErrors>(await post(body, proxy), 400);
        assert.deepEqual(
          [errors.Errors[0]?.ErrorCode, errors.Errors[0]?.Path],
          [code, path],
          JSON.stringify(body),
        );
      }
      assert.deepEqual(await errorsOf(await post(consentBody(), lax, null), 400), [['U006', undefined]]);
      assert.deepEqual(await snapshot(), before);
      assert.deepEqual(
        await errorsOf(await call(prism, app.appToken, '/domestic-vrp-consents/not-a-consent'), 400),
        [['U011', 'ConsentId']],
      );
    });
  });
}

// What the tests saw is their record in the conformance table: written on request, otherwise checked.
after(() => {
  if (observed.length === 0) return;
  keepRecord(
    'uk-ob-vrp',
    recordOf('uk-ob-vrp', 'src/standards/uk-ob/vrp.test.ts', observed, {
      domesticVrpConsentsPost:
        'ControlParameters as the mandate enforces them: Day, Week and Month limits aligned on the calendar in UTC ' +
        '(no Consent alignment, Fortnight, Half-year or Year), no ValidFromDateTime ahead, a ValidToDateTime within ' +
        '180 days, UK.OBIE.SCANotRequired allowed; a creditor fixed in the consent, by UK.OBIE.IBAN, at this bank; ' +
        'no DebtorAccount or SupplementaryData',
      domesticVrpPost:
        'no per-payment SCA (UK.OBIE.SCA), LocalInstrument or SupplementaryData; a breach of the ControlParameters ' +
        'is a NARR naming UK.OBIE.Rules.FailsControlParameters',
    }),
  );
});
