// The UK Open Banking v4.0 Account and Transaction API, exercised the way a third party integrating the
// standard would, with every request and response passing through Prism against the official file: a
// response that does not conform fails the test. Also keeps
// its record in the conformance table (docs/conformance.md).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { BuiltApp } from '../../main.ts';
import { parseAmount } from '../../money.ts';
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
import { AISP_PREFIX } from './aisp.ts';

const TOKEN = 'uk-ob-test-operator-token-0123456789abcdef';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'uk ob test password';
const SPEC = fileURLToPath(
  new URL('../../../specs/uk-open-banking-v4.0/account-info-openapi.yaml', import.meta.url),
);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();
const observed: Exchange[] = [];

interface ObConsent {
  Data: { ConsentId: string; Status: string; Permissions: string[]; ExpirationDateTime: string };
  Links: { Self: string };
}
interface ObErrors {
  Errors: { ErrorCode: string; Message: string; Path?: string }[];
}

for (const database of testDatabases()) {
  describe(`UK Open Banking v4.0 AISP on ${database.name}`, () => {
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

    before(async () => {
      db = await database.open();
      bank = await bankBehindPrism(db, {
        spec: SPEC,
        prefix: AISP_PREFIX,
        adminToken: TOKEN,
        password: PASSWORD,
        aliceAccounts: [
          { product: 'current', currency: 'GBP' },
          { product: 'savings', currency: 'GBP' },
        ],
      });
      ({ built, issuer, prism, lax, developer, alice, bob } = bank);
      const settlement = (
        await built.ledger.createAccount({
          currency: 'GBP',
          exponent: 2,
          normalBalance: 'debit',
          allowOverdraft: false,
          code: null,
          metadata: {},
        })
      ).account.id;
      const move = async (
        key: string,
        from: string,
        to: string,
        amount: string,
        metadata: Record<string, unknown>,
      ) => {
        const parsed = parseAmount(amount);
        assert.ok(parsed);
        const outcome = await built.ledger.transfer(key, {
          postings: [{ debitAccountId: from, creditAccountId: to, amount: parsed }],
          pending: false,
          expiresAt: null,
          metadata,
        });
        assert.ok(outcome.ok);
      };
      const [current = ''] = alice.ledgerAccountIds;
      await move('ob-1', settlement, current, '1000.00', {
        reference: 'Salary',
        counterparty: { name: 'Northwind Ltd' },
      });
      await move('ob-2', current, settlement, '12.34', {
        reference: 'Coffee beans',
        counterparty: { name: 'Corner Cafe', iban: 'GB33BUKB20201555555555' },
      });
    });
    after(async () => {
      observed.push(...(await bank.close()));
      await db.close();
    });

    const newApp = async () =>
      newClientApp({ built, issuer }, developer, {
        name: `Budget Buddy ${++apps}`,
        scopes: ['openid', 'accounts'],
        redirectUri: REDIRECT,
      });
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    const call = callAsThirdParty;
    const json = async <T>(response: Response, status: number) => {
      assert.equal(response.status, status, await response.clone().text());
      assert.match(response.headers.get('x-fapi-interaction-id') ?? '', UUID);
      return (await response.json()) as T;
    };
    const createConsent = async (app: TestApp, permissions: string[], extra: object = {}) =>
      json<ObConsent>(
        await call(prism, app.appToken, '/account-access-consents', {
          method: 'POST',
          body: { Data: { Permissions: permissions, ...extra }, Risk: {} },
        }),
        201,
      );
    /** Alice authorises the consent at the bank's page, ticking `accounts`; the app redeems the code. */
    /** What the consent page last told the customer. */
    let lastConsentPage = '';
    const authorise = async (app: TestApp, consentId: string, accounts: readonly string[]) => {
      const { page, accessToken } = await authoriseConsent({
        issuer,
        config: app.config,
        redirectUri: REDIRECT,
        scope: 'openid accounts',
        type: 'account_information',
        consentId,
        username: 'alice',
        password: PASSWORD,
        accounts,
      });
      lastConsentPage = page;
      return accessToken;
    };
    const errorCodes = async (response: Response, status: number) =>
      (await json<ObErrors>(response, status)).Errors.map((error) => error.ErrorCode);

    it('creates, reads and deletes an account-access consent, echoing the interaction id', async () => {
      const app = await newApp();
      const interactionId = '93bac548-d2de-4546-b106-880a5018460d';
      const created = await call(prism, app.appToken, '/account-access-consents', {
        method: 'POST',
        body: { Data: { Permissions: ['ReadAccountsDetail', 'ReadBalances'] }, Risk: {} },
        headers: { 'x-fapi-interaction-id': interactionId },
      });
      assert.equal(created.headers.get('x-fapi-interaction-id'), interactionId);
      const consent = ((await created.json()) as ObConsent).Data;
      assert.equal(created.status, 201);
      assert.equal(consent.Status, 'AWAU');
      assert.deepEqual(consent.Permissions, ['ReadAccountsDetail', 'ReadBalances']);
      // The same consent in the bank's own API: one consent, two faces.
      assert.deepEqual((await built.consents?.find(consent.ConsentId))?.details.permissions, [
        'details',
        'balances',
      ]);
      const read = await json<ObConsent>(
        await call(prism, app.appToken, `/account-access-consents/${consent.ConsentId}`),
        200,
      );
      assert.equal(read.Data.Status, 'AWAU');
      const deleted = await call(prism, app.appToken, `/account-access-consents/${consent.ConsentId}`, {
        method: 'DELETE',
      });
      assert.equal(deleted.status, 204);
      const after = await json<ObConsent>(
        await call(prism, app.appToken, `/account-access-consents/${consent.ConsentId}`),
        200,
      );
      assert.equal(after.Data.Status, 'CANC');
    });

    it('runs the whole flow: consent, authorisation at the bank, code exchange, accounts, balances, transactions', async () => {
      const app = await newApp();
      const consent = await createConsent(app, [
        'ReadAccountsDetail',
        'ReadBalances',
        'ReadTransactionsDetail',
        'ReadTransactionsCredits',
        'ReadTransactionsDebits',
      ]);
      const [current = '', savings = ''] = alice.accountIds;
      const token = await authorise(app, consent.Data.ConsentId, [current]);
      assert.equal(
        (
          await json<ObConsent>(
            await call(prism, app.appToken, `/account-access-consents/${consent.Data.ConsentId}`),
            200,
          )
        ).Data.Status,
        'AUTH',
      );

      const listed = await json<{
        Data: { Account: { AccountId: string; Account?: { Identification: string }[] }[] };
      }>(await call(prism, token, '/accounts'), 200);
      assert.deepEqual(
        listed.Data.Account.map((account) => account.AccountId),
        [current],
        'only the account Alice ticked',
      );
      assert.equal(
        listed.Data.Account[0]?.Account?.[0]?.Identification,
        (await built.accounts?.find(current))?.iban,
      );
      await json(await call(prism, token, `/accounts/${current}`), 200);

      const balances = await json<{ Data: { Balance: { Type: string; Amount: { Amount: string } }[] } }>(
        await call(prism, token, `/accounts/${current}/balances`),
        200,
      );
      assert.deepEqual(
        balances.Data.Balance.map((balance) => [balance.Type, balance.Amount.Amount]),
        [
          ['ITBD', '987.66'],
          ['ITAV', '987.66'],
        ],
      );

      const transactions = await json<{
        Data: {
          Transaction: {
            CreditDebitIndicator: string;
            Amount: { Amount: string };
            TransactionInformation?: string;
          }[];
        };
      }>(await call(prism, token, `/accounts/${current}/transactions`), 200);
      assert.deepEqual(
        transactions.Data.Transaction.map((t) => [
          t.CreditDebitIndicator,
          t.Amount.Amount,
          t.TransactionInformation,
        ]),
        [
          ['Debit', '12.34', 'Corner Cafe · Coffee beans'],
          ['Credit', '1000.00', 'Northwind Ltd · Salary'],
        ],
      );
      // A date window the spec's query parameters give.
      const none = await json<{ Data: { Transaction: unknown[] } }>(
        await call(prism, token, `/accounts/${current}/transactions?toBookingDateTime=2000-01-01T00:00:00Z`),
        200,
      );
      assert.deepEqual(none.Data.Transaction, []);

      // An account Alice did not tick, and Bob's, are refused alike (the spec declares 403, no 404).
      for (const other of [savings, bob.accountIds[0] ?? '']) {
        for (const path of [
          `/accounts/${other}`,
          `/accounts/${other}/balances`,
          `/accounts/${other}/transactions`,
        ]) {
          assert.deepEqual(await errorCodes(await call(prism, token, path), 403), ['U011'], path);
        }
      }
      // Revoked: the token stops at once (401, no body, as the spec declares).
      await call(prism, app.appToken, `/account-access-consents/${consent.Data.ConsentId}`, {
        method: 'DELETE',
      });
      const revoked = await call(prism, token, '/accounts');
      assert.equal(revoked.status, 401);
    });

    it('gives only what the permissions grant: Basic without numbers, credits only, no balances', async () => {
      const app = await newApp();
      const consent = await createConsent(app, [
        'ReadAccountsBasic',
        'ReadTransactionsBasic',
        'ReadTransactionsCredits',
      ]);
      const [current = ''] = alice.accountIds;
      const token = await authorise(app, consent.Data.ConsentId, [current]);
      const listed = await json<{ Data: { Account: { Account?: unknown }[] } }>(
        await call(prism, token, '/accounts'),
        200,
      );
      assert.equal(
        listed.Data.Account[0]?.Account,
        undefined,
        'no account number without ReadAccountsDetail',
      );
      const transactions = await json<{ Data: { Transaction: Record<string, unknown>[] } }>(
        await call(prism, token, `/accounts/${current}/transactions`),
        200,
      );
      assert.deepEqual(
        transactions.Data.Transaction.map((t) => t.CreditDebitIndicator),
        ['Credit'],
      );
      assert.equal(
        transactions.Data.Transaction[0]?.TransactionInformation,
        undefined,
        'Basic has no narrative',
      );
      assert.equal(transactions.Data.Transaction[0]?.Balance, undefined);
      assert.deepEqual(await errorCodes(await call(prism, token, `/accounts/${current}/balances`), 403), [
        'NARR',
      ]);
    });

    /** Alice's (or Bob's) payment order, set up at the bank's pages: a standing order when `frequency` is given. */
    const order = async (
      who: { customerId: string },
      debtorAccountId: string,
      key: string,
      reference: string,
      frequency?: 'monthly',
      currency = 'GBP',
    ) => {
      const created = await built.orders?.create({ kind: 'customer', customerId: who.customerId }, key, {
        instructedAmount: { amount: '25.50', currency },
        creditor: { name: 'Harbour Lettings', iban: 'GB33BUKB20201555555555' },
        reference,
        debtorAccountId,
        schedule: {
          firstDate: inDays(7).slice(0, 10),
          ...(frequency && { frequency, count: 12 }),
        },
      });
      assert.ok(created?.ok, JSON.stringify(created));
      return created.order.id;
    };
    interface ObOrder {
      AccountId: string;
      StandingOrderId?: string;
      ScheduledPaymentId?: string;
      CreditorAccount?: { Identification: string; Name: string };
      MandateRelatedInformation?: { Frequency: { Type: string } };
      NumberOfPayments?: string;
      InstructedAmount?: { Amount: string };
      NextPaymentAmount?: { Amount: string };
    }

    it('lists standing orders and scheduled payments under the consent, with the payee only for Detail', async () => {
      const [current = '', savings = ''] = alice.accountIds;
      const [bobs = ''] = bob.accountIds;
      const rent = await order(alice, current, 'ob-so-rent', 'Rent', 'monthly');
      await order(alice, savings, 'ob-so-savings', 'Not under the consent', 'monthly');
      const once = await order(alice, current, 'ob-sp-once', 'Deposit');
      // Bob's account is in euros.
      await order(bob, bobs, 'ob-so-bob', 'Bob rent', 'monthly', 'EUR');
      const app = await newApp();
      const consent = await createConsent(app, [
        'ReadAccountsBasic',
        'ReadStandingOrdersDetail',
        'ReadScheduledPaymentsBasic',
      ]);
      const token = await authorise(app, consent.Data.ConsentId, [current]);
      // The customer was told all the consent grants, the standard's permissions included.
      assert.match(lastConsentPage, /your standing orders and whom they pay/);
      assert.match(lastConsentPage, /your scheduled payments(?! and)/);

      for (const path of [`/accounts/${current}/standing-orders`, '/standing-orders']) {
        const read = await json<{ Data: { StandingOrder: ObOrder[] } }>(await call(prism, token, path), 200);
        assert.deepEqual(
          read.Data.StandingOrder.map((o) => [
            o.StandingOrderId,
            o.AccountId,
            o.NumberOfPayments,
            o.NextPaymentAmount?.Amount,
            o.MandateRelatedInformation?.Frequency.Type,
            o.CreditorAccount?.Name,
          ]),
          [[rent, current, '12', '25.50', 'MNTH', 'Harbour Lettings']],
          path,
        );
      }
      for (const path of [`/accounts/${current}/scheduled-payments`, '/scheduled-payments']) {
        const read = await json<{ Data: { ScheduledPayment: ObOrder[] } }>(
          await call(prism, token, path),
          200,
        );
        assert.deepEqual(
          read.Data.ScheduledPayment.map((o) => [o.ScheduledPaymentId, o.InstructedAmount?.Amount]),
          [[once, '25.50']],
          path,
        );
        assert.equal(read.Data.ScheduledPayment[0]?.CreditorAccount, undefined, 'Basic: no payee');
      }
      // Bob's account and the account Alice did not tick are refused alike.
      for (const other of [savings, bobs]) {
        for (const path of [`/accounts/${other}/standing-orders`, `/accounts/${other}/scheduled-payments`]) {
          assert.deepEqual(await errorCodes(await call(prism, token, path), 403), ['U011'], path);
        }
      }
      // Cancelled: still listed as a standing order, with its status; a cancelled scheduled payment is gone.
      await built.orders?.cancel({ customerId: alice.customerId }, rent);
      await built.orders?.cancel({ customerId: alice.customerId }, once);
      const ended = await json<{ Data: { StandingOrder: { StandingOrderStatusCode: string }[] } }>(
        await call(prism, token, '/standing-orders'),
        200,
      );
      assert.deepEqual(
        ended.Data.StandingOrder.map((o) => o.StandingOrderStatusCode),
        ['CANC'],
      );
      const none = await json<{ Data: { ScheduledPayment: unknown[] } }>(
        await call(prism, token, '/scheduled-payments'),
        200,
      );
      assert.deepEqual(none.Data.ScheduledPayment, []);
    });

    it('gives the product, the party and all balances under the consent', async () => {
      const [current = '', savings = ''] = alice.accountIds;
      const app = await newApp();
      const consent = await createConsent(app, ['ReadProducts', 'ReadParty', 'ReadPartyPSU', 'ReadBalances']);
      const token = await authorise(app, consent.Data.ConsentId, [current, savings]);
      const product = async (account: string) =>
        (
          await json<{ Data: { Product: { AccountId: string; ProductType: string }[] } }>(
            await call(prism, token, `/accounts/${account}/product`),
            200,
          )
        ).Data.Product.map((p) => [p.AccountId, p.ProductType]);
      assert.deepEqual(await product(current), [[current, 'PersonalCurrentAccount']]);
      assert.deepEqual(await product(savings), [[savings, 'Other']]);
      const products = await json<{ Data: { Product: { AccountId: string; ProductType: string }[] } }>(
        await call(prism, token, '/products'),
        200,
      );
      assert.deepEqual(
        products.Data.Product.map((p) => [p.AccountId, p.ProductType]).sort(),
        [
          [current, 'PersonalCurrentAccount'],
          [savings, 'Other'],
        ].sort(),
      );

      const party = await json<{ Data: { Party: { PartyId: string; Name: string; PartyType?: string } } }>(
        await call(prism, token, `/accounts/${current}/party`),
        200,
      );
      assert.deepEqual(
        [party.Data.Party.PartyId, party.Data.Party.Name, party.Data.Party.PartyType],
        [alice.customerId, 'Alice Able', 'Sole'],
      );
      const psu = await json<{ Data: { Party: { Name: string } } }>(await call(prism, token, '/party'), 200);
      assert.equal(psu.Data.Party.Name, 'Alice Able');

      const balances = await json<{
        Data: { Balance: { AccountId: string; Type: string; Amount: { Amount: string } }[] };
      }>(await call(prism, token, '/balances'), 200);
      assert.deepEqual(
        balances.Data.Balance.map((b) => [b.AccountId, b.Type, b.Amount.Amount]).sort(),
        [
          [current, 'ITAV', '987.66'],
          [current, 'ITBD', '987.66'],
          [savings, 'ITAV', '0.00'],
          [savings, 'ITBD', '0.00'],
        ].sort(),
      );
      for (const path of [`/accounts/${bob.accountIds[0]}/product`, `/accounts/${bob.accountIds[0]}/party`]) {
        assert.deepEqual(await errorCodes(await call(prism, token, path), 403), ['U011'], path);
      }
    });

    it('refuses each new resource to a consent without its permission', async () => {
      const [current = ''] = alice.accountIds;
      const app = await newApp();
      const consent = await createConsent(app, ['ReadAccountsDetail']);
      const token = await authorise(app, consent.Data.ConsentId, [current]);
      for (const path of [
        `/accounts/${current}/standing-orders`,
        `/accounts/${current}/scheduled-payments`,
        `/accounts/${current}/product`,
        `/accounts/${current}/party`,
        '/standing-orders',
        '/scheduled-payments',
        '/party',
        '/products',
        '/balances',
      ]) {
        assert.deepEqual(await errorCodes(await call(prism, token, path), 403), ['NARR'], path);
      }
      // ReadParty is the account's party, ReadPartyPSU the user's: one does not grant the other.
      const partyOnly = await createConsent(app, ['ReadParty']);
      const partyToken = await authorise(app, partyOnly.Data.ConsentId, [current]);
      assert.deepEqual(await errorCodes(await call(prism, partyToken, '/party'), 403), ['NARR']);
      await json(await call(prism, partyToken, `/accounts/${current}/party`), 200);
    });

    it("keeps one app's consents from another, and app tokens from account data", async () => {
      const owner = await newApp();
      const other = await newApp();
      const consent = await createConsent(owner, ['ReadAccountsBasic']);
      const path = `/account-access-consents/${consent.Data.ConsentId}`;
      assert.deepEqual(await errorCodes(await call(prism, other.appToken, path), 400), ['U011']);
      assert.deepEqual(await errorCodes(await call(prism, other.appToken, path, { method: 'DELETE' }), 400), [
        'U011',
      ]);
      assert.equal(
        (await json<ObConsent>(await call(prism, owner.appToken, path), 200)).Data.Status,
        'AWAU',
        'the other app could not delete it',
      );
      assert.deepEqual(await errorCodes(await call(prism, owner.appToken, '/accounts'), 403), ['NARR']);
    });

    it('refuses what it cannot honour or read, in OBErrorResponse1 form, creating nothing', async () => {
      const app = await newApp();
      const post = (body: unknown, proxy = prism) =>
        call(proxy, app.appToken, '/account-access-consents', { method: 'POST', body });
      const refusals: [unknown, string, PrismProxy?][] = [
        [{ Data: { Permissions: ['ReadAccountsBasic', 'ReadStatementsDetail'] }, Risk: {} }, 'U002'],
        [{ Data: { Permissions: ['ReadAccountsBasic', 'ReadDirectDebits'] }, Risk: {} }, 'U002'],
        [{ Data: { Permissions: ['ReadTransactionsDetail'] }, Risk: {} }, 'U002'],
        [{ Data: { Permissions: ['ReadAccountsBasic'], ExpirationDateTime: inDays(365) }, Risk: {} }, 'U002'],
        [{ Data: { Permissions: ['ReadAccountsBasic'], ExpirationDateTime: inDays(-1) }, Risk: {} }, 'U002'],
        [
          {
            Data: {
              Permissions: ['ReadAccountsBasic'],
              TransactionFromDateTime: inDays(2),
              TransactionToDateTime: inDays(1),
            },
            Risk: {},
          },
          'U002',
        ],
        // Requests the spec itself forbids, sent past Prism's request check to reach the bank.
        [{ Data: {}, Risk: {} }, 'U004', lax],
        [{ Data: { Permissions: ['ReadEverything'] }, Risk: {} }, 'U002', lax],
      ];
      const consentCount = async () =>
        Number((await db.query<{ n: number }>('select count(*)::int as n from consents'))[0]?.n);
      const before = await consentCount();
      for (const [body, code, proxy] of refusals) {
        const response = await post(body, proxy);
        const errors = await json<ObErrors>(response, 400);
        assert.equal(errors.Errors[0]?.ErrorCode, code, JSON.stringify(body));
      }
      assert.equal(await consentCount(), before);
      const missing = await json<ObErrors>(await post({ Data: {}, Risk: {} }, lax), 400);
      assert.equal(missing.Errors[0]?.Path, 'Data.Permissions');
      // An interaction id that is not a UUID is refused, and a fresh one is sent back.
      const badId = await call(lax, app.appToken, '/account-access-consents/x', {
        headers: { 'x-fapi-interaction-id': 'not a uuid' },
      });
      assert.deepEqual(await errorCodes(badId, 400), ['U006']);
    });
  });
}

// What the tests saw is their record in the conformance table: written on request, otherwise checked.
after(() => {
  if (observed.length === 0) return;
  keepRecord(
    'uk-ob-aisp',
    recordOf('uk-ob-aisp', 'src/standards/uk-ob/aisp.test.ts', observed, {
      GetAccountsAccountIdTransactions:
        'booked transactions only (no pending holds); no statement references',
      GetAccountsAccountIdProduct: 'product type and name only: no fees, interest or other product details',
      GetProducts: 'product type and name only: no fees, interest or other product details',
      GetAccountsAccountIdParty: "the holder's name only: no address, contact details or other parties",
      GetParty: "the holder's name only: no address or contact details",
    }),
  );
});
