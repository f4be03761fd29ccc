// The UK Open Banking v4.0 Confirmation of Funds API, exercised the way a third party integrating the
// standard would, with every request and response passing through Prism against the official file: a
// response that does not conform fails the test. Also keeps
// its record in the conformance table (docs/conformance.md).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { BuiltApp } from '../../main.ts';
import { newClientApp } from '../../testing/bank.ts';
import { authoriseConsent } from '../../testing/consent-flow.ts';
import { type TestDb, testDatabases } from '../../testing/databases.ts';
import {
  type BankBehindPrism,
  bankBehindPrism,
  callAsThirdParty,
  type Exchange,
  type PrismProxy,
} from '../../testing/prism.ts';
import { keepRecord, recordOf } from '../conformance.ts';
import { CBPII_PREFIX } from './cbpii.ts';

const TOKEN = 'uk-ob-cbpii-test-operator-token-0123456789';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'uk ob cbpii test password';
const SPEC = fileURLToPath(
  new URL('../../../specs/uk-open-banking-v4.0/confirmation-funds-openapi.yaml', import.meta.url),
);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const observed: Exchange[] = [];

interface ObConsent {
  Data: { ConsentId: string; Status: string; DebtorAccount: { SchemeName: string; Identification: string } };
}
interface ObConfirmation {
  Data: { FundsConfirmationId: string; ConsentId: string; FundsAvailable: boolean; Reference: string };
}
interface ObErrors {
  Errors: { ErrorCode: string; Message: string; Path?: string }[];
}

for (const database of testDatabases()) {
  describe(`UK Open Banking v4.0 CBPII on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let issuer: string;
    let prism: PrismProxy;
    let lax: PrismProxy;
    let bank: BankBehindPrism;
    let developer: Record<string, string>;
    let apps = 0;
    let alice: { customerId: string; accountIds: string[] };
    let aliceIban: string;
    let aliceSavingsIban: string;
    let bobIban: string;

    before(async () => {
      db = await database.open();
      bank = await bankBehindPrism(db, {
        spec: SPEC,
        prefix: CBPII_PREFIX,
        adminToken: TOKEN,
        password: PASSWORD,
        aliceAccounts: [
          { product: 'current', currency: 'GBP' },
          { product: 'savings', currency: 'GBP' },
        ],
        bobAccounts: [{ product: 'current', currency: 'GBP' }],
        aliceFunds: { amount: '100.00', from: 'Northwind Ltd' },
      });
      ({ built, issuer, prism, lax, developer, alice } = bank);
      [aliceIban, aliceSavingsIban, bobIban] = await Promise.all([
        bank.ibanOf(alice.accountIds[0]),
        bank.ibanOf(alice.accountIds[1]),
        bank.ibanOf(bank.bob.accountIds[0]),
      ]);
    });
    after(async () => {
      if (bank) observed.push(...(await bank.close()));
      await db?.close();
    });

    const newApp = async () =>
      newClientApp({ built, issuer }, developer, {
        name: `Card Issuer ${++apps}`,
        scopes: ['openid', 'funds_confirmation'],
        redirectUri: REDIRECT,
      });
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    const call = callAsThirdParty;
    const json = async <T>(response: Response, status: number) => {
      const text = await response.text();
      assert.equal(response.status, status, text);
      assert.match(response.headers.get('x-fapi-interaction-id') ?? '', UUID);
      return JSON.parse(text) as T;
    };
    const errors = async (response: Response, status: number) =>
      (await json<ObErrors>(response, status)).Errors.map((error) => [error.ErrorCode, error.Path]);
    const debtor = (iban: string) => ({ SchemeName: 'UK.OBIE.IBAN', Identification: iban });
    const createConsent = async (app: TestApp, iban = aliceIban) =>
      json<ObConsent>(
        await call(prism, app.appToken, '/funds-confirmation-consents', {
          method: 'POST',
          body: { Data: { DebtorAccount: debtor(iban) } },
        }),
        201,
      );
    const authorise = async (app: TestApp, consentId: string, account = alice.accountIds[0] ?? '') =>
      (
        await authoriseConsent({
          issuer,
          config: app.config,
          redirectUri: REDIRECT,
          scope: 'openid funds_confirmation',
          type: 'funds_confirmation',
          consentId,
          username: 'alice',
          password: PASSWORD,
          accounts: [account],
        })
      ).accessToken;
    const confirm = (token: string, consentId: string, amount: string, proxy = prism) =>
      call(proxy, token, '/funds-confirmations', {
        method: 'POST',
        body: {
          Data: {
            ConsentId: consentId,
            Reference: 'Purchase01',
            InstructedAmount: { Amount: amount, Currency: 'GBP' },
          },
        },
      });
    const consentStatus = async (app: TestApp, consentId: string) =>
      (
        await json<ObConsent>(
          await call(prism, app.appToken, `/funds-confirmation-consents/${consentId}`),
          200,
        )
      ).Data.Status;
    const count = async (table: string) =>
      Number((await db.query<{ n: number }>(`select count(*)::int as n from ${table}`))[0]?.n);

    it('runs the whole flow: consent, authorisation, confirmations yes and no, delete, then 401 and 403', async () => {
      const app = await newApp();
      const interactionId = '6f1b2a3c-4d5e-4f60-8a7b-9c0d1e2f3a4b';
      const created = await call(prism, app.appToken, '/funds-confirmation-consents', {
        method: 'POST',
        body: { Data: { DebtorAccount: debtor(aliceIban) } },
        headers: { 'x-fapi-interaction-id': interactionId },
      });
      assert.equal(created.headers.get('x-fapi-interaction-id'), interactionId);
      const consent = await json<ObConsent>(created, 201);
      assert.equal(consent.Data.Status, 'AWAU');
      assert.deepEqual(consent.Data.DebtorAccount, debtor(aliceIban));
      const consentId = consent.Data.ConsentId;
      assert.equal((await built.consents?.find(consentId))?.type, 'funds_confirmation');

      const token = await authorise(app, consentId);
      assert.equal(await consentStatus(app, consentId), 'AUTH');
      const yes = await json<ObConfirmation>(await confirm(token, consentId, '100.00'), 201);
      assert.equal(yes.Data.FundsAvailable, true);
      assert.equal(yes.Data.ConsentId, consentId);
      assert.equal(yes.Data.Reference, 'Purchase01');
      const no = await json<ObConfirmation>(await confirm(token, consentId, '100.01'), 201);
      assert.equal(no.Data.FundsAvailable, false);
      assert.notEqual(no.Data.FundsConfirmationId, yes.Data.FundsConfirmationId);
      // The app token (client credentials) is not the customer's authorisation.
      assert.deepEqual(await errors(await confirm(app.appToken, consentId, '1.00'), 403), [
        ['NARR', undefined],
      ]);

      const deleted = await call(prism, app.appToken, `/funds-confirmation-consents/${consentId}`, {
        method: 'DELETE',
      });
      assert.equal(deleted.status, 204);
      assert.equal(await consentStatus(app, consentId), 'CANC');
      // Deleting again changes nothing.
      assert.equal(
        (await call(prism, app.appToken, `/funds-confirmation-consents/${consentId}`, { method: 'DELETE' }))
          .status,
        204,
      );
      // Every token issued under it stopped working: the specification's 401, with no body.
      const revoked = await confirm(token, consentId, '1.00');
      assert.equal(revoked.status, 401);
      assert.equal(await revoked.text(), '');
      assert.match(revoked.headers.get('x-fapi-interaction-id') ?? '', UUID);
      assert.ok((await built.ledger.verify()).ok);
    });

    it("keeps one app's consents from another, and answers only for the consent's DebtorAccount", async () => {
      const owner = await newApp();
      const other = await newApp();
      const { Data } = await createConsent(owner);
      for (const method of ['GET', 'DELETE']) {
        assert.deepEqual(
          await errors(
            await call(prism, other.appToken, `/funds-confirmation-consents/${Data.ConsentId}`, { method }),
            400,
          ),
          [['U011', 'ConsentId']],
          method,
        );
      }
      assert.equal(await consentStatus(owner, Data.ConsentId), 'AWAU', 'not deleted by the other app');
      const token = await authorise(owner, Data.ConsentId);
      // Another consent's id under this token.
      const second = await createConsent(owner);
      assert.deepEqual(await errors(await confirm(token, second.Data.ConsentId, '1.00'), 400), [
        ['U011', 'Data.ConsentId'],
      ]);

      // A consent for Bob's account that Alice authorised with her own: no answer about either account.
      const bobs = await createConsent(owner, bobIban);
      const aliceToken = await authorise(owner, bobs.Data.ConsentId);
      assert.deepEqual(await errors(await confirm(aliceToken, bobs.Data.ConsentId, '1.00'), 403), [
        ['NARR', undefined],
      ]);
      // Her savings account named, her current account ticked: likewise.
      const savings = await createConsent(owner, aliceSavingsIban);
      const savingsToken = await authorise(owner, savings.Data.ConsentId);
      assert.deepEqual(await errors(await confirm(savingsToken, savings.Data.ConsentId, '1.00'), 403), [
        ['NARR', undefined],
      ]);
    });

    it('refuses what it cannot honour or read, in OBErrorResponse1 form, creating nothing', async () => {
      const app = await newApp();
      const consents = await count('consents');
      const refusals: [unknown, string, string | undefined, PrismProxy?][] = [
        [
          {
            Data: {
              DebtorAccount: {
                SchemeName: 'UK.OBIE.SortCodeAccountNumber',
                Identification: '08080021325698',
              },
            },
          },
          'U002',
          'Data.DebtorAccount.SchemeName',
        ],
        [
          { Data: { DebtorAccount: debtor('GB00BUKB20201555555555') } },
          'U002',
          'Data.DebtorAccount.Identification',
        ],
        [
          { Data: { DebtorAccount: { ...debtor(aliceIban), Name: 'Alice Able' } } },
          'U002',
          'Data.DebtorAccount.Name',
        ],
        [
          { Data: { DebtorAccount: debtor(aliceIban), ExpirationDateTime: '2020-01-01T00:00:00Z' } },
          'U002',
          'Data.ExpirationDateTime',
        ],
        // Requests the spec itself forbids, sent past Prism's request check to reach the bank.
        [{ Data: {} }, 'U004', 'Data.DebtorAccount', lax],
        [{ Data: { DebtorAccount: debtor(aliceIban), Extra: 1 } }, 'U002', 'Data.Extra', lax],
      ];
      for (const [body, code, path, proxy] of refusals) {
        const response = await call(proxy ?? prism, app.appToken, '/funds-confirmation-consents', {
          method: 'POST',
          body,
        });
        assert.deepEqual((await errors(response, 400))[0], [code, path], JSON.stringify(body));
      }
      assert.equal(await count('consents'), consents);
      assert.deepEqual(
        await errors(await call(prism, app.appToken, '/funds-confirmation-consents/not-a-consent'), 400),
        [['U011', 'ConsentId']],
      );

      const { Data } = await createConsent(app);
      const token = await authorise(app, Data.ConsentId);
      assert.deepEqual(await errors(await confirm(token, Data.ConsentId, '1.5'), 400), [
        ['U002', 'Data.InstructedAmount.Amount'],
      ]);
      assert.deepEqual(await errors(await confirm(token, Data.ConsentId, '0.00'), 400), [
        ['U002', 'Data.InstructedAmount.Amount'],
      ]);
      assert.deepEqual(await errors(await confirm(token, Data.ConsentId, 'ten', lax), 400), [
        ['U002', 'Data.InstructedAmount.Amount'],
      ]);
    });
  });
}

// What the tests saw is their record in the conformance table: written on request, otherwise checked.
after(() => {
  if (observed.length === 0) return;
  keepRecord(
    'uk-ob-cbpii',
    recordOf('uk-ob-cbpii', 'src/standards/uk-ob/cbpii.test.ts', observed, {
      CreateFundsConfirmationConsents:
        'DebtorAccount by UK.OBIE.IBAN only, without Name, SecondaryIdentification or Proxy',
    }),
  );
});
