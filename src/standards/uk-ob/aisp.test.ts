// The UK Open Banking v4.0 Account and Transaction API, exercised the way a third party integrating the
// standard would, with every request and response passing through Prism against the official file: a
// response that does not conform fails the test. Also keeps
// its record in the conformance table (docs/conformance.md).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ledger } from '../../ledger/service.ts';
import type { BuiltApp } from '../../main.ts';
import { parseAmount } from '../../money.ts';
import { createCustomer, newClientApp, outsideTheBank } from '../../testing/bank.ts';
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
    let settlementId = '';

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
        // Bob's first account is in euros; his second, in pounds, is where Carol's direct debit pays.
        bobAccounts: [
          { product: 'current', currency: 'EUR' },
          { product: 'current', currency: 'GBP' },
        ],
      });
      ({ built, issuer, prism, lax, developer, alice, bob } = bank);
      const outside = await outsideTheBank(built.ledger, 'GBP');
      const { move } = outside;
      settlementId = outside.id;
      const [current = ''] = alice.ledgerAccountIds;
      await move('ob-1', outside.id, current, '1000.00', {
        reference: 'Salary',
        counterparty: { name: 'Northwind Ltd' },
      });
      await move('ob-2', current, outside.id, '12.34', {
        reference: 'Coffee beans',
        counterparty: { name: 'Corner Cafe', iban: 'GB33BUKB20201555555555' },
      });
    });
    after(async () => {
      if (bank) observed.push(...(await bank.close()));
      await db?.close();
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
    /** What the consent page last told the customer. */
    let lastConsentPage = '';
    /** Alice (or `username`) authorises the consent at the bank's page, ticking `accounts`; the app redeems the code. */
    const authorise = async (
      app: TestApp,
      consentId: string,
      accounts: readonly string[],
      username = 'alice',
    ) => {
      const { page, accessToken } = await authoriseConsent({
        issuer,
        config: app.config,
        redirectUri: REDIRECT,
        scope: 'openid accounts',
        type: 'account_information',
        consentId,
        username,
        password: PASSWORD,
        accounts,
      });
      lastConsentPage = page;
      return accessToken;
    };
    const errorCodes = async (response: Response, status: number) =>
      (await json<ObErrors>(response, status)).Errors.map((error) => error.ErrorCode);

    it('answers a path or method the facade does not have with no body, echoing the interaction id', async () => {
      const interactionId = randomUUID();
      const unknown = await built.app.inject({
        url: '/open-banking/v4.0/aisp/nothing-here',
        headers: { 'x-fapi-interaction-id': interactionId },
      });
      assert.deepEqual([unknown.statusCode, unknown.body], [404, '']);
      assert.equal(unknown.headers['x-fapi-interaction-id'], interactionId);
      const wrongMethod = await built.app.inject({
        method: 'PUT',
        url: '/open-banking/v4.0/aisp/account-access-consents',
      });
      assert.deepEqual([wrongMethod.statusCode, wrongMethod.body], [405, '']);
      assert.equal(wrongMethod.headers.allow, 'POST');
      assert.match(String(wrongMethod.headers['x-fapi-interaction-id']), /^[0-9a-f-]{36}$/);
    });

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
      const psu = await json<{ Data: { Party: Record<string, unknown> } }>(
        await call(prism, token, '/party'),
        200,
      );
      // How to reach her, as onboarding recorded it; never her date of birth or national id.
      assert.deepEqual(psu.Data.Party, {
        PartyId: alice.customerId,
        Name: 'Alice Able',
        FullLegalName: 'Alice Able',
        EmailAddress: 'alice@example.com',
        Phone: '+44-7911123456',
        Address: [
          { AddressLine: ['1 Test Street'], TownName: 'London', PostCode: 'EC1A 1BB', Country: 'GB' },
        ],
      });
      const parties = await json<{ Data: { Party: Record<string, unknown>[] } }>(
        await call(prism, token, `/accounts/${savings}/parties`),
        200,
      );
      assert.deepEqual(parties.Data.Party, [
        { ...psu.Data.Party, PartyType: 'Sole', AccountRole: 'UK.OBIE.Owner' },
      ]);

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
      for (const path of [
        `/accounts/${bob.accountIds[0]}/product`,
        `/accounts/${bob.accountIds[0]}/party`,
        `/accounts/${bob.accountIds[0]}/parties`,
      ]) {
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
        `/accounts/${current}/beneficiaries`,
        `/accounts/${current}/direct-debits`,
        `/accounts/${current}/statements`,
        `/accounts/${current}/statements/${new Date().toISOString().slice(0, 7)}`,
        `/accounts/${current}/statements/${new Date().toISOString().slice(0, 7)}/file`,
        `/accounts/${current}/statements/${new Date().toISOString().slice(0, 7)}/transactions`,
        `/accounts/${current}/offers`,
        `/accounts/${current}/parties`,
        `/accounts/${current}/transactions`,
        '/beneficiaries',
        '/direct-debits',
        '/statements',
        '/offers',
        '/transactions',
      ]) {
        assert.deepEqual(await errorCodes(await call(prism, token, path), 403), ['NARR'], path);
      }
      // ReadParty is the account's party, ReadPartyPSU the user's: one does not grant the other.
      const partyOnly = await createConsent(app, ['ReadParty']);
      const partyToken = await authorise(app, partyOnly.Data.ConsentId, [current]);
      assert.deepEqual(await errorCodes(await call(prism, partyToken, '/party'), 403), ['NARR']);
      await json(await call(prism, partyToken, `/accounts/${current}/party`), 200);
    });

    // ---- Carol: a year and more of history, payees, a direct debit ---------------------------------------

    const monthStart = (monthsAgo: number) => {
      const now = new Date();
      return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - monthsAgo, 1));
    };
    const monthId = (monthsAgo: number) => monthStart(monthsAgo).toISOString().slice(0, 7);
    const dayOf = (monthsAgo: number, day: number, hour = 12) =>
      new Date(monthStart(monthsAgo).getTime() + (day - 1) * 86_400_000 + hour * 3_600_000);
    const show = (value: unknown) =>
      JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `${v}` : (v as unknown)));
    const oops = (amount: string): never => assert.fail(`not an amount: ${amount}`);
    /** Pence of a decimal string with two decimals (zero included), exactly. */
    const minor = (amount: string) => {
      assert.match(amount, /^[0-9]+\.[0-9]{2}$/);
      return BigInt(amount.replace('.', ''));
    };
    const merchant = { name: 'Harbour Energy', app: undefined as TestApp | undefined };
    let carolSetUp:
      | Promise<{ customerId: string; current: string; savings: string; ledgerCurrent: string }>
      | undefined;
    /**
     * Carol, opened 13 months ago (the account's opening date moved back, as if she had been a customer
     * since): her salary and spending booked in past months by the ledger on a clock set back; this month,
     * payments to two payees (one twice, one refused for want of funds) and a direct debit that took 15.00.
     */
    const carol = () => {
      carolSetUp ??= (async () => {
        const created = await createCustomer(built, {
          username: 'carol',
          password: PASSWORD,
          legalName: 'Carol Clark',
          accounts: [
            { product: 'current', currency: 'GBP' },
            { product: 'savings', currency: 'GBP' },
          ],
        });
        const [current = '', savings = ''] = created.accountIds;
        const [ledgerCurrent = ''] = created.ledgerAccountIds;
        await db.query('update bank_accounts set created_at = $1 where customer_id = $2', [
          dayOf(13, 5),
          created.customerId,
        ]);
        let clock = new Date();
        const past = new Ledger({ db, now: () => clock });
        const book = async (at: Date, from: string, to: string, amount: string, reference: string) => {
          clock = at;
          const outcome = await past.transfer(`carol-${at.toISOString()}-${reference}`, {
            postings: [
              { debitAccountId: from, creditAccountId: to, amount: parseAmount(amount) ?? oops(amount) },
            ],
            pending: false,
            expiresAt: null,
            metadata: { reference, counterparty: { name: 'Acme Payroll' } },
          });
          assert.ok(outcome.ok, show(outcome));
        };
        // Chronological, so the ledger's order and the calendar's agree.
        await book(dayOf(2, 3), settlementId, ledgerCurrent, '500.00', 'Salary');
        await book(dayOf(2, 20), ledgerCurrent, settlementId, '120.50', 'Groceries');
        await book(dayOf(1, 1, 0), settlementId, ledgerCurrent, '500.00', 'Salary');
        await book(dayOf(1, 15), ledgerCurrent, settlementId, '80.25', 'Fuel');
        // The month's last minute.
        await book(new Date(monthStart(0).getTime() - 60_000), ledgerCurrent, settlementId, '19.99', 'Books');
        const pay = async (key: string, name: string, iban: string, amount: string, reference: string) => {
          const paid = await built.payments?.initiate(
            { kind: 'customer', customerId: created.customerId },
            key,
            {
              instructedAmount: { amount, currency: 'GBP' },
              creditor: { name, iban },
              debtorAccountId: current,
              reference,
            },
          );
          assert.ok(paid?.ok, show(paid));
          return paid.payment;
        };
        const first = await pay(
          'carol-pay-1',
          'Dr Jones Dental',
          'GB33BUKB20201555555555',
          '40.00',
          'Check-up',
        );
        assert.ok(['accepted', 'settled'].includes(first.status), first.status);
        await pay('carol-pay-2', 'Dr Jones Dental', 'GB33BUKB20201555555555', '25.00', 'Filling');
        await pay('carol-pay-3', 'City Gym', 'GB94BARC10201530093459', '30.00', 'Membership');
        const refused = await pay(
          'carol-pay-4',
          'Yacht Broker',
          'GB29NWBK60161331926819',
          '90000.00',
          'Boat',
        );
        // More than she has: held for her confirmation (fraud screening's step-up) or refused; it never left.
        assert.ok(['awaiting_sca', 'rejected'].includes(refused.status), refused.status);
        // The merchant's mandate, authorised by Carol at the bank and charged once.
        const app = await newClientApp({ built, issuer }, developer, {
          name: 'Harbour Energy',
          scopes: ['openid', 'payments'],
          redirectUri: REDIRECT,
        });
        merchant.app = app as TestApp;
        const mandates = built.mandates;
        assert.ok(mandates);
        const bobPounds = await built.accounts?.find(bob.accountIds[1] ?? '');
        assert.ok(bobPounds);
        const mandate = await mandates.create(app.id, {
          currency: 'GBP',
          maxPerCharge: '100.00',
          periodicLimits: [{ period: 'month', maxAmount: '300.00' }],
          creditor: { name: merchant.name, iban: bobPounds.iban },
          expiresAt: new Date(Date.now() + 90 * 86_400_000),
        });
        assert.ok(mandate.ok, show(mandate));
        await authoriseConsent({
          issuer,
          config: app.config,
          redirectUri: REDIRECT,
          scope: 'openid payments',
          type: 'mandate',
          consentId: mandate.mandate.id,
          username: 'carol',
          password: PASSWORD,
          accounts: [current],
        });
        const charged = await mandates.charge(app.id, mandate.mandate.id, 'carol-dd-1', {
          instructedAmount: { amount: '15.00', currency: 'GBP' },
        });
        assert.ok(charged.ok && charged.charge.status === 'succeeded', show(charged));
        return { customerId: created.customerId, current, savings, ledgerCurrent };
      })();
      return carolSetUp;
    };
    /** A link the API gave, as a path under the facade (what the proxy is called with). */
    const pathOf = (link: string | undefined) => {
      assert.ok(link);
      const url = new URL(link);
      assert.ok(url.pathname.startsWith(AISP_PREFIX), link);
      return `${url.pathname.slice(AISP_PREFIX.length)}${url.search}`;
    };
    interface ObStatement {
      AccountId: string;
      StatementId: string;
      Type: string;
      StartDateTime: string;
      EndDateTime: string;
      StatementAmount?: { Type: string; CreditDebitIndicator: string; Amount: { Amount: string } }[];
    }
    interface StatementPage {
      Data: { Statement: ObStatement[] };
      Links: { Self: string; Next?: string; Prev?: string; First?: string; Last?: string };
      Meta: { TotalPages?: number };
    }
    /** A statement's amounts as signed minor units: starting, closing, credits, debits. */
    const amountsOf = (statement: ObStatement) => {
      const get = (type: string) => {
        const found = statement.StatementAmount?.find((a) => a.Type === type);
        assert.ok(found, `${statement.StatementId} has no ${type}`);
        const value = minor(found.Amount.Amount);
        return found.CreditDebitIndicator === 'Debit' ? -value : value;
      };
      return {
        starting: get('UK.OBIE.StartingBalance'),
        closing: get('UK.OBIE.ClosingBalance'),
        credits: get('UK.OBIE.TotalCredits'),
        debits: -get('UK.OBIE.TotalDebits'),
      };
    };

    it('gives monthly statements from the ledger: amounts that add up, pages, filters, transactions, the file', async () => {
      const { current, savings } = await carol();
      const app = await newApp();
      const consent = await createConsent(app, [
        'ReadStatementsDetail',
        'ReadTransactionsDetail',
        'ReadTransactionsCredits',
        'ReadTransactionsDebits',
      ]);
      const token = await authorise(app, consent.Data.ConsentId, [current], 'carol');
      assert.match(lastConsentPage, /your monthly statements/);

      // 14 statements (13 past months and this one), a year a page, newest first.
      const first = await json<StatementPage>(
        await call(prism, token, `/accounts/${current}/statements`),
        200,
      );
      assert.equal(first.Meta.TotalPages, 2);
      assert.equal(first.Data.Statement.length, 12);
      assert.equal(first.Links.Prev, undefined);
      const second = await json<StatementPage>(await call(prism, token, pathOf(first.Links.Next)), 200);
      assert.equal(second.Links.Next, undefined);
      assert.equal(pathOf(second.Links.Prev), pathOf(first.Links.Self));
      const all = [...first.Data.Statement, ...second.Data.Statement];
      assert.deepEqual(
        all.map((s) => s.StatementId),
        Array.from({ length: 14 }, (_, monthsAgo) => monthId(monthsAgo)),
      );
      assert.deepEqual(
        all.map((s) => s.Type),
        ['Interim', ...Array.from({ length: 13 }, () => 'RegularPeriodic')],
      );
      // Every statement adds up, each opens where the one before closed, the oldest opens at zero.
      for (const statement of all) {
        const a = amountsOf(statement);
        assert.equal(a.starting + a.credits - a.debits, a.closing, statement.StatementId);
      }
      for (let i = 0; i + 1 < all.length; i++) {
        assert.equal(amountsOf(all[i] as ObStatement).starting, amountsOf(all[i + 1] as ObStatement).closing);
      }
      assert.equal(amountsOf(all.at(-1) as ObStatement).starting, 0n);
      // The months with movements, exactly as booked.
      const byMonth = new Map(all.map((s) => [s.StatementId, amountsOf(s)]));
      assert.deepEqual(byMonth.get(monthId(2)), {
        starting: 0n,
        closing: 37950n,
        credits: 50000n,
        debits: 12050n,
      });
      assert.deepEqual(byMonth.get(monthId(1)), {
        starting: 37950n,
        closing: 77926n,
        credits: 50000n,
        debits: 10024n,
      });
      // This month's interim statement closes on the ledger's balance now.
      const account = await built.accounts?.find(current);
      assert.ok(account);
      const balances = await built.accounts?.balances(account);
      assert.equal(byMonth.get(monthId(0))?.closing, balances?.posted);
      assert.equal(
        byMonth.get(monthId(0))?.closing,
        await built.ledger.balanceBefore(account.ledgerAccountId, new Date(Date.now() + 60_000)),
      );

      // One statement by its id; the bulk list, filtered to the two months with salary in them.
      const one = await json<StatementPage>(
        await call(prism, token, `/accounts/${current}/statements/${monthId(1)}`),
        200,
      );
      assert.deepEqual(one.Data.Statement, [all[1]]);
      const window = `fromStatementDateTime=${monthStart(2).toISOString()}&toStatementDateTime=${monthStart(0).toISOString()}`;
      const filtered = await json<StatementPage>(await call(prism, token, `/statements?${window}`), 200);
      assert.deepEqual(
        filtered.Data.Statement.map((s) => [s.AccountId, s.StatementId]),
        [
          [current, monthId(1)],
          [current, monthId(2)],
        ],
      );

      // The statement's transactions: the month's three movements, each naming its statement.
      const lines = await json<{
        Data: { Transaction: { Amount: { Amount: string }; StatementReference?: string[] }[] };
      }>(await call(prism, token, `/accounts/${current}/statements/${monthId(1)}/transactions`), 200);
      assert.deepEqual(
        lines.Data.Transaction.map((t) => [t.Amount.Amount, t.StatementReference]),
        [
          ['19.99', [monthId(1)]],
          ['80.25', [monthId(1)]],
          ['500.00', [monthId(1)]],
        ],
      );

      // The file: the bank's statement document, in JSON (the form the specification declares).
      const file = await json<{ openingBalance: string; closingBalance: string; lines: unknown[] }>(
        await call(prism, token, `/accounts/${current}/statements/${monthId(1)}/file`),
        200,
      );
      assert.deepEqual(
        [file.openingBalance, file.closingBalance, file.lines.length],
        ['379.50', '779.26', 3],
      );
      // The specification declares JSON only: a PDF asked for is not acceptable here (the bank's own API has it).
      const pdf = await call(lax, token, `/accounts/${current}/statements/${monthId(1)}/file`, {
        headers: { accept: 'application/pdf' },
      });
      assert.equal(pdf.status, 406);
      assert.match(pdf.headers.get('x-fapi-interaction-id') ?? '', UUID);

      // Refused: a month before the account was opened, one not yet begun, no month at all; the
      // account Carol did not tick and Alice's alike.
      for (const id of [monthId(14), '2999-01', 'latest']) {
        for (const path of [
          `/statements/${id}`,
          `/statements/${id}/transactions`,
          `/statements/${id}/file`,
        ]) {
          assert.deepEqual(
            await errorCodes(await call(prism, token, `/accounts/${current}${path}`), 400),
            ['U011'],
            path,
          );
        }
      }
      for (const other of [savings, alice.accountIds[0] ?? '']) {
        for (const path of [
          `/accounts/${other}/statements`,
          `/accounts/${other}/statements/${monthId(1)}`,
          `/accounts/${other}/statements/${monthId(1)}/transactions`,
          `/accounts/${other}/statements/${monthId(1)}/file`,
        ]) {
          assert.deepEqual(await errorCodes(await call(prism, token, path), 403), ['U011'], path);
        }
      }
      // A page past the last, sent past Prism (the spec has no such parameter): the bank's own refusal.
      assert.deepEqual(
        await errorCodes(await call(lax, token, `/accounts/${current}/statements?page=3`), 400),
        ['U002'],
      );
    });

    it('gives Basic statements without amounts, and no file; statement transactions need transactions', async () => {
      const { current } = await carol();
      const app = await newApp();
      const consent = await createConsent(app, ['ReadStatementsBasic']);
      const token = await authorise(app, consent.Data.ConsentId, [current], 'carol');
      const one = await json<StatementPage>(
        await call(prism, token, `/accounts/${current}/statements/${monthId(1)}`),
        200,
      );
      assert.equal(one.Data.Statement[0]?.StatementAmount, undefined, 'Basic: no amounts');
      assert.equal(one.Data.Statement[0]?.StartDateTime, monthStart(1).toISOString());
      assert.equal(one.Data.Statement[0]?.EndDateTime, new Date(monthStart(0).getTime() - 1).toISOString());
      for (const path of [
        `/accounts/${current}/statements/${monthId(1)}/file`,
        `/accounts/${current}/statements/${monthId(1)}/transactions`,
      ]) {
        assert.deepEqual(await errorCodes(await call(prism, token, path), 403), ['NARR'], path);
      }
      // Credits only: the statement's transactions are filtered as /transactions is.
      const credits = await createConsent(app, ['ReadTransactionsBasic', 'ReadTransactionsCredits']);
      const creditsToken = await authorise(app, credits.Data.ConsentId, [current], 'carol');
      const lines = await json<{ Data: { Transaction: Record<string, unknown>[] } }>(
        await call(prism, creditsToken, `/accounts/${current}/statements/${monthId(1)}/transactions`),
        200,
      );
      assert.deepEqual(
        lines.Data.Transaction.map((t) => [t.CreditDebitIndicator, t.StatementReference]),
        [['Credit', undefined]],
      );
      assert.deepEqual(await errorCodes(await call(prism, creditsToken, '/statements'), 403), ['NARR']);
    });

    interface ObBeneficiary {
      AccountId: string;
      BeneficiaryId: string;
      BeneficiaryType: string;
      Reference?: string;
      CreditorAccount?: { Identification: string; Name: string };
    }
    it('lists whom the customer paid as beneficiaries, with their accounts only for Detail', async () => {
      const { current, savings } = await carol();
      const app = await newApp();
      const detail = await createConsent(app, ['ReadBeneficiariesDetail']);
      const token = await authorise(app, detail.Data.ConsentId, [current, savings], 'carol');
      assert.match(lastConsentPage, /whom you have paid and their account numbers/);
      for (const path of [`/accounts/${current}/beneficiaries`, '/beneficiaries']) {
        const read = await json<{ Data: { Beneficiary: ObBeneficiary[] } }>(
          await call(prism, token, path),
          200,
        );
        // Two payees (the dentist paid twice is one), not the refused payment's, not the direct debit's.
        assert.deepEqual(
          read.Data.Beneficiary.map((b) => [
            b.AccountId,
            b.BeneficiaryType,
            b.Reference,
            b.CreditorAccount?.Name,
            b.CreditorAccount?.Identification,
          ]).sort(),
          [
            [current, 'Ordinary', 'Filling', 'Dr Jones Dental', 'GB33BUKB20201555555555'],
            [current, 'Ordinary', 'Membership', 'City Gym', 'GB94BARC10201530093459'],
          ].sort(),
          path,
        );
      }
      const again = await json<{ Data: { Beneficiary: ObBeneficiary[] } }>(
        await call(prism, token, '/beneficiaries'),
        200,
      );
      const ids = again.Data.Beneficiary.map((b) => b.BeneficiaryId);
      assert.equal(new Set(ids).size, 2, 'a stable id per payee');
      const empty = await json<{ Data: { Beneficiary: unknown[] } }>(
        await call(prism, token, `/accounts/${savings}/beneficiaries`),
        200,
      );
      assert.deepEqual(empty.Data.Beneficiary, [], 'nothing was paid from savings');

      const basic = await createConsent(app, ['ReadBeneficiariesBasic']);
      const basicToken = await authorise(app, basic.Data.ConsentId, [current], 'carol');
      const read = await json<{ Data: { Beneficiary: ObBeneficiary[] } }>(
        await call(prism, basicToken, '/beneficiaries'),
        200,
      );
      assert.deepEqual(read.Data.Beneficiary.map((b) => b.BeneficiaryId).sort(), [...ids].sort());
      assert.ok(
        read.Data.Beneficiary.every((b) => b.CreditorAccount === undefined),
        'Basic: no accounts',
      );
      for (const other of [savings, alice.accountIds[0] ?? '']) {
        assert.deepEqual(
          await errorCodes(await call(prism, basicToken, `/accounts/${other}/beneficiaries`), 403),
          ['U011'],
        );
      }
    });

    it("lists the customer's mandates as direct debits, with the last payment taken", async () => {
      const { current, savings, customerId } = await carol();
      const app = await newApp();
      const consent = await createConsent(app, ['ReadDirectDebits', 'ReadOffers']);
      const token = await authorise(app, consent.Data.ConsentId, [current, savings], 'carol');
      interface ObDirectDebit {
        AccountId: string;
        DirectDebitId: string;
        DirectDebitStatusCode: string;
        Name: string;
        PreviousPaymentAmount?: { Amount: string; Currency: string };
        MandateRelatedInformation: { Frequency: { Type: string }; Classification: string };
      }
      const directDebits = async (path: string) =>
        (await json<{ Data: { DirectDebit: ObDirectDebit[] } }>(await call(prism, token, path), 200)).Data
          .DirectDebit;
      const [mandate] = (await built.mandates?.listForCustomer(customerId, undefined, 10)) ?? [];
      assert.ok(mandate);
      for (const path of [`/accounts/${current}/direct-debits`, '/direct-debits']) {
        assert.deepEqual(
          (await directDebits(path)).map((d) => [
            d.AccountId,
            d.DirectDebitId,
            d.DirectDebitStatusCode,
            d.Name,
            d.PreviousPaymentAmount?.Amount,
            d.MandateRelatedInformation.Classification,
          ]),
          [[current, mandate.id, 'ACTV', merchant.name, '15.00', 'VARI']],
          path,
        );
      }
      assert.deepEqual(await directDebits(`/accounts/${savings}/direct-debits`), []);
      // The bank makes no offers: the truthful answer is an empty list.
      for (const path of [`/accounts/${current}/offers`, '/offers']) {
        const offers = await json<{ Data: { Offer: unknown[] } }>(await call(prism, token, path), 200);
        assert.deepEqual(offers.Data.Offer, [], path);
      }
      for (const path of [
        `/accounts/${bob.accountIds[1]}/direct-debits`,
        `/accounts/${bob.accountIds[1]}/offers`,
      ]) {
        assert.deepEqual(await errorCodes(await call(prism, token, path), 403), ['U011'], path);
      }
      // Revoked by Carol: still listed, cancelled, its last payment kept.
      assert.equal(await built.mandates?.revoke(customerId, mandate.id), 'revoked');
      assert.deepEqual(
        (await directDebits('/direct-debits')).map((d) => [
          d.DirectDebitStatusCode,
          d.PreviousPaymentAmount?.Amount,
        ]),
        [['CANC', '15.00']],
      );
    });

    it('gives all transactions under the consent, account after account, page by page', async () => {
      const { current, savings, customerId } = await carol();
      const app = await newApp();
      const consent = await createConsent(app, [
        'ReadTransactionsBasic',
        'ReadTransactionsCredits',
        'ReadTransactionsDebits',
      ]);
      const token = await authorise(app, consent.Data.ConsentId, [current, savings], 'carol');
      // Enough movements into savings for more than one page (200 a page).
      const savingsAccount = await built.accounts?.find(savings);
      assert.ok(savingsAccount);
      const oneUnit = parseAmount('1.00');
      assert.ok(oneUnit);
      const transfers = Array.from({ length: 205 }, (_, i) => ({
        key: `carol-savings-${i}`,
        request: {
          postings: [
            {
              debitAccountId: settlementId,
              creditAccountId: savingsAccount.ledgerAccountId,
              amount: oneUnit,
            },
          ],
          pending: false,
          expiresAt: null,
          metadata: { reference: `Round-up ${i}` },
        },
      }));
      for (const { key, request } of transfers) {
        const outcome = await built.ledger.transfer(key, request);
        assert.ok(outcome.ok);
      }
      const seen: { AccountId: string; TransactionId: string }[] = [];
      let path: string | undefined = '/transactions';
      for (let pages = 0; path; pages++) {
        assert.ok(pages < 5, 'the pages end');
        const page: {
          Data: { Transaction: { AccountId: string; TransactionId: string }[] };
          Links: { Next?: string };
        } = await json(await call(prism, token, path), 200);
        seen.push(...page.Data.Transaction);
        path = page.Links.Next && pathOf(page.Links.Next);
      }
      const expected = async (accountId: string) => {
        const account = await built.accounts?.find(accountId);
        assert.ok(account);
        return (await built.accounts?.transactions(account, {}, undefined, 500))?.length ?? 0;
      };
      const counts = { [current]: await expected(current), [savings]: await expected(savings) };
      assert.equal(counts[savings], 205);
      assert.equal(seen.length, (counts[current] ?? 0) + (counts[savings] ?? 0), 'every one, once');
      assert.equal(new Set(seen.map((t) => t.TransactionId)).size, seen.length);
      // Account by account, in the order of their ids.
      const order = [current, savings].sort();
      assert.deepEqual([...new Set(seen.map((t) => t.AccountId))], order);
      assert.ok(customerId);
      // Alice's token sees none of it.
      const aliceApp = await newApp();
      const aliceConsent = await createConsent(aliceApp, ['ReadTransactionsBasic', 'ReadTransactionsDebits']);
      const aliceToken = await authorise(aliceApp, aliceConsent.Data.ConsentId, [alice.accountIds[0] ?? '']);
      const hers = await json<{ Data: { Transaction: { AccountId: string }[] } }>(
        await call(prism, aliceToken, '/transactions'),
        200,
      );
      assert.ok(hers.Data.Transaction.every((t) => t.AccountId === alice.accountIds[0]));
      assert.deepEqual(
        await errorCodes(await call(lax, aliceToken, `/transactions?cursor=${savings}.5`), 400),
        ['U002'],
      );
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
        // The bank issues no cards: no PAN to read.
        [{ Data: { Permissions: ['ReadAccountsBasic', 'ReadPAN'] }, Risk: {} }, 'U002'],
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
      GetAccountsAccountIdTransactions: 'booked transactions only: pending holds are not listed',
      GetTransactions: 'booked transactions only: pending holds are not listed',
      GetAccountsAccountIdStatementsStatementIdTransactions:
        'booked transactions only: pending holds are not listed',
      GetAccountsAccountIdProduct: 'product type and name only: no fees, interest or other product details',
      GetProducts: 'product type and name only: no fees, interest or other product details',
      GetAccountsAccountIdParty: "the holder alone: a business's users acting for it are not listed",
      GetAccountsAccountIdParties: "the holder alone: a business's users acting for it are not listed",
      GetParty: 'for a business, the business as the party, not the user acting for it',
      GetAccountsAccountIdBeneficiaries:
        'the bank keeps no saved payees: the payees paid from the account, never Trusted, no CreditorAgent',
      GetBeneficiaries:
        'the bank keeps no saved payees: the payees paid from the account, never Trusted, no CreditorAgent',
      GetAccountsAccountIdDirectDebits:
        "the customer's mandates to merchants at this bank; the bank takes no Bacs direct debits",
      GetDirectDebits:
        "the customer's mandates to merchants at this bank; the bank takes no Bacs direct debits",
      GetAccountsAccountIdStatementsStatementIdFile:
        "the statement in the bank's JSON form only: the specification declares no PDF or CSV (406)",
      GetAccountsAccountIdOffers: 'the bank makes no offers: always an empty list',
      GetOffers: 'the bank makes no offers: always an empty list',
    }),
  );
});
