// Customer accounts over HTTP: the customer at the bank's own pages sees all of theirs; a third party sees
// only the accounts the customer ticked, only with the permissions the consent grants; nobody reaches
// another customer's account; and operators freeze and close accounts, never one that still holds money.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isValidIBAN } from 'ibantools';
import * as client from 'openid-client';
import { ENTRIES_PAGE_MAX } from '../ledger/service.ts';
import type { BuiltApp } from '../main.ts';
import type { Minor } from '../money.ts';
import { createCustomer, newClientApp, outsideTheBank, signUpDeveloper, startBank } from '../testing/bank.ts';
import { location, TestBrowser } from '../testing/browser.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { maskIban } from './iban.ts';
import { STATEMENT_LINES_MAX } from './service.ts';

const TOKEN = 'accounts-test-operator-token-0123456789abcdef';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'accounts test password';
const IBAN_SHAPE = /^GB[0-9]{2}APIB400000[0-9]{8}$/;
const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();
const dayAfter = (day: string, days: number) =>
  new Date(Date.parse(`${day}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
/** A decimal string in minor units, to check sums without floats. */
const minor = (amount: string) => BigInt(amount.replace('.', ''));
const decimal = (minorUnits: bigint) => {
  const digits = (minorUnits < 0n ? -minorUnits : minorUnits).toString().padStart(3, '0');
  return `${minorUnits < 0n ? '-' : ''}${digits.slice(0, -2)}.${digits.slice(-2)}`;
};

interface AccountJson {
  id: string;
  name: string;
  product: string;
  currency: string;
  iban: string;
  status: string;
  openedAt: string;
}
interface TransactionJson {
  id: string;
  transferId: string;
  bookedAt: string;
  direction: 'credit' | 'debit';
  amount: string;
  balanceAfter: string;
  counterparty: { name: string | null; iban: string | null };
  reference: string | null;
  category: string | null;
}
interface TransactionsPage {
  transactions: TransactionJson[];
  nextCursor: string | null;
}
interface StatementJson {
  bank: { name: string };
  account: { id: string; iban: string; name: string; holderName: string; currency: string };
  period: { month: string; from: string; to: string };
  openingBalance: string;
  closingBalance: string;
  totalCredits: string;
  totalDebits: string;
  generatedAt: string;
  lines: {
    bookedAt: string;
    description: string;
    category: string | null;
    direction: string;
    amount: string;
    balance: string;
  }[];
}

for (const database of testDatabases()) {
  describe(`accounts on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let issuer: string;
    let developer: Record<string, string>;
    let apps = 0;
    let transfers = 0;
    let settlement: string;
    let alice: { customerId: string; accountIds: string[]; ledgerAccountIds: string[] };
    let bob: { customerId: string; accountIds: string[]; ledgerAccountIds: string[] };
    let aliceCurrent: string;
    let aliceSavings: string;
    let bobCurrent: string;
    let ibanOf: Map<string, string>;
    // Alice's current account, chronologically: [transfer id, what the API must show of it].
    const aliceHistory: [string, Omit<TransactionJson, 'id' | 'transferId' | 'bookedAt'>][] = [];

    let outside: Awaited<ReturnType<typeof outsideTheBank>>;
    /** Moves money between ledger accounts; returns the transfer id. */
    const move = (
      debitAccountId: string,
      creditAccountId: string,
      amount: string,
      metadata: Record<string, unknown>,
      pending = false,
    ) =>
      outside.move(
        `accounts-test-${++transfers}`,
        debitAccountId,
        creditAccountId,
        amount,
        metadata,
        pending,
      );

    before(async () => {
      db = await database.open();
      ({ built, issuer } = await startBank(db, { adminToken: TOKEN }));
      developer = await signUpDeveloper(built.app, 'accounts-dev@example.com', PASSWORD);
      alice = await createCustomer(built, {
        username: 'alice',
        password: PASSWORD,
        legalName: 'Alice Able',
        accounts: [
          { product: 'current', currency: 'EUR' },
          { product: 'savings', currency: 'EUR' },
        ],
      });
      bob = await createCustomer(built, { username: 'bob', password: PASSWORD, legalName: 'Bob Baker' });
      [aliceCurrent = '', aliceSavings = ''] = alice.accountIds;
      [bobCurrent = ''] = bob.accountIds;
      assert.ok(built.accounts);
      ibanOf = new Map();
      for (const id of [aliceCurrent, aliceSavings, bobCurrent]) {
        ibanOf.set(id, (await built.accounts.find(id))?.iban ?? '');
      }
      outside = await outsideTheBank(built.ledger, 'EUR');
      settlement = outside.id;

      const [aliceLedger = '', savingsLedger = ''] = alice.ledgerAccountIds;
      const [bobLedger = ''] = bob.ledgerAccountIds;
      const record = async (
        transferId: Promise<string>,
        shown: Omit<TransactionJson, 'id' | 'transferId' | 'bookedAt'>,
      ) => {
        aliceHistory.push([await transferId, shown]);
      };
      const northwind = { name: 'Northwind Ltd', iban: null };
      const cafe = { name: 'Corner Café', iban: 'DE89370400440532013000' };
      await record(
        move(settlement, aliceLedger, '1000.00', {
          reference: 'Salary',
          category: 'salary',
          counterparty: { name: 'Northwind Ltd' },
        }),
        {
          direction: 'credit',
          amount: '1000.00',
          balanceAfter: '1000.00',
          counterparty: northwind,
          reference: 'Salary',
          category: 'salary',
        },
      );
      // Between two customers the bank names the other side itself, whatever the transfer says.
      await record(
        move(aliceLedger, bobLedger, '25.50', {
          reference: 'Dinner',
          category: 'transfer',
          counterparty: { name: 'Someone Else' },
        }),
        {
          direction: 'debit',
          amount: '25.50',
          balanceAfter: '974.50',
          counterparty: { name: 'Bob Baker', iban: maskIban(ibanOf.get(bobCurrent) ?? '') },
          reference: 'Dinner',
          category: 'transfer',
        },
      );
      await record(
        move(aliceLedger, settlement, '12.34', {
          reference: 'Coffee beans',
          category: 'groceries',
          counterparty: cafe,
        }),
        {
          direction: 'debit',
          amount: '12.34',
          balanceAfter: '962.16',
          counterparty: cafe,
          reference: 'Coffee beans',
          category: 'groceries',
        },
      );
      await record(move(settlement, aliceLedger, '5.00', { reference: 'Refund', counterparty: cafe }), {
        direction: 'credit',
        amount: '5.00',
        balanceAfter: '967.16',
        counterparty: cafe,
        reference: 'Refund',
        category: null,
      });
      await record(move(aliceLedger, savingsLedger, '200.00', { category: 'savings' }), {
        direction: 'debit',
        amount: '200.00',
        balanceAfter: '767.16',
        counterparty: { name: 'Alice Able', iban: maskIban(ibanOf.get(aliceSavings) ?? '') },
        reference: null,
        category: 'savings',
      });
      await record(move(settlement, aliceLedger, '0.99', {}), {
        direction: 'credit',
        amount: '0.99',
        balanceAfter: '768.15',
        counterparty: { name: null, iban: null },
        reference: null,
        category: null,
      });
      // A card hold: reserved, not booked, so it is no transaction yet.
      await move(aliceLedger, settlement, '10.00', { reference: 'Hotel deposit' }, true);
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    const signIn = async (username: string) => {
      const browser = new TestBrowser(issuer);
      const signedIn = await browser.postForm('/me/sign-in', {
        username,
        password: PASSWORD,
        code: '123456',
      });
      assert.equal(signedIn.status, 303);
      return browser;
    };
    const json = async <T>(response: Response, status = 200): Promise<T> => {
      assert.equal(response.status, status, `${response.url}: ${await response.clone().text()}`);
      return (await response.json()) as T;
    };
    const problemCode = async (response: Response) => {
      assert.equal(response.headers.get('content-type'), 'application/problem+json; charset=utf-8');
      return [response.status, ((await response.json()) as { code: string }).code];
    };

    /** An app: its OAuth configuration and an app-level token to create consents with. */
    const newApp = async (scopes: readonly string[] = ['accounts']) => {
      const { config, appToken } = await newClientApp({ built, issuer }, developer, {
        name: `Budget Buddy ${++apps}`,
        scopes: ['openid', ...scopes],
        redirectUri: REDIRECT,
      });
      const createConsent = async (body: Record<string, unknown>) => {
        const response = await fetch(`${issuer}/v1/consents`, {
          method: 'POST',
          headers: { authorization: `Bearer ${appToken}`, 'content-type': 'application/json' },
          body: JSON.stringify({ expiresAt: inDays(30), ...body }),
        });
        return (await json<{ id: string }>(response, 201)).id;
      };
      const consentStatus = async (consentId: string) =>
        (
          await json<{ status: string }>(
            await fetch(`${issuer}/v1/consents/${consentId}`, {
              headers: { authorization: `Bearer ${appToken}` },
            }),
          )
        ).status;
      return { config, appToken, createConsent, consentStatus };
    };
    const accountInformation = (permissions: readonly string[]) => ({
      type: 'account_information',
      permissions,
    });
    type TestApp = Awaited<ReturnType<typeof newApp>>;

    /**
     * Alice authorises the app, naming the consent (RFC 9396) when there is one, up to the consent page;
     * `confirm` posts the page's form with the accounts ticked, `finish` redeems the code.
     */
    const startAuthorisation = async (
      app: TestApp,
      consentId?: string,
      { type = 'account_information', scope = 'openid accounts' } = {},
    ) => {
      const verifier = client.randomPKCECodeVerifier();
      const url = await client.buildAuthorizationUrlWithPAR(app.config, {
        redirect_uri: REDIRECT,
        scope,
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        ...(consentId && { authorization_details: JSON.stringify([{ type, consentId }]) }),
      });
      const browser = new TestBrowser(issuer);
      const interaction = location(await browser.get(url));
      const signedIn = await browser.postForm(`${interaction}/login`, {
        username: 'alice',
        password: PASSWORD,
        code: '123456',
      });
      const consentUrl = location(await browser.get(location(signedIn)));
      const page = await (await browser.get(consentUrl)).text();
      // Several ticked boxes arrive as repeated `account` fields, which the page's parser comma-joins:
      // one comma-joined field is the same request to it.
      const confirm = (accounts: readonly string[]) =>
        browser.postForm(`${consentUrl}/confirm`, { decision: 'approve', account: accounts.join(',') });
      const finish = async (decided: Response) => {
        const callback = new URL(location(await browser.get(location(decided))));
        const tokens = await client.authorizationCodeGrant(app.config, callback, {
          pkceCodeVerifier: verifier,
        });
        return tokens.access_token;
      };
      return { page, confirm, finish };
    };
    const bearer =
      (token: string) =>
      (path: string, headers: Record<string, string> = {}) =>
        fetch(`${issuer}${path}`, { headers: { authorization: `Bearer ${token}`, ...headers } });
    /** A token for the plain `accounts` scope, no consent: all of Alice's accounts, read-only. */
    const plainAccessToken = async () => {
      const { confirm, finish } = await startAuthorisation(await newApp());
      return finish(await confirm([]));
    };

    it('records the plain accounts scope as a consent of its own, which the customer sees and revokes', async () => {
      const browser = await signIn('alice');
      type Listed = { consents: { id: string; type: string; status: string }[] };
      const before = (await json<Listed>(await browser.get('/v1/me/consents'))).consents.map((c) => c.id);
      const api = bearer(await plainAccessToken());
      assert.equal((await api('/v1/accounts')).status, 200);
      const [added, ...more] = (await json<Listed>(await browser.get('/v1/me/consents'))).consents.filter(
        (consent) => !before.includes(consent.id),
      );
      assert.equal(more.length, 0);
      assert.equal(added?.type, 'account_information');
      assert.equal(added?.status, 'authorised');
      const stored = await built.consents?.find(added?.id ?? '');
      assert.deepEqual(
        stored?.accountIds?.toSorted(),
        [aliceCurrent, aliceSavings].toSorted(),
        'all of hers',
      );
      assert.equal((await browser.delete(`/v1/me/consents/${added?.id}`)).status, 204);
      assert.equal((await api('/v1/accounts')).status, 401, 'revoked: the token reads nothing more');
    });

    const expectedAliceTransactions = () =>
      aliceHistory.map(([transferId, shown]) => ({ transferId, ...shown })).reverse();
    const aliceTransactions = async (browser: TestBrowser) =>
      (await json<TransactionsPage>(await browser.get(`/v1/me/accounts/${aliceCurrent}/transactions`)))
        .transactions;

    it("shows the customer all of their accounts, balances and transactions at the bank's pages", async () => {
      const browser = await signIn('alice');
      const stored = await Promise.all(alice.accountIds.map((id) => built.accounts?.find(id)));
      const listed = await json<{ accounts: AccountJson[]; nextCursor: string | null }>(
        await browser.get('/v1/me/accounts'),
      );
      assert.deepEqual(listed, {
        accounts: stored.map((account) => ({
          id: account?.id,
          name: account?.product === 'current' ? 'Current account' : 'Savings account',
          product: account?.product,
          currency: 'EUR',
          iban: account?.iban,
          status: 'active',
          openedAt: account?.createdAt.toISOString(),
        })),
        nextCursor: null,
      });
      assert.deepEqual(
        listed.accounts.map((account) => account.id),
        [aliceCurrent, aliceSavings],
      );
      for (const account of listed.accounts) {
        assert.match(account.iban, IBAN_SHAPE);
        assert.ok(isValidIBAN(account.iban), account.iban);
      }
      assert.notEqual(listed.accounts[0]?.iban, listed.accounts[1]?.iban);
      assert.deepEqual(await json(await browser.get(`/v1/me/accounts/${aliceSavings}`)), listed.accounts[1]);

      assert.deepEqual(await json(await browser.get(`/v1/me/accounts/${aliceCurrent}/balances`)), {
        accountId: aliceCurrent,
        currency: 'EUR',
        booked: '768.15',
        available: '758.15',
        pending: '-10.00',
      });
      assert.deepEqual(await json(await browser.get(`/v1/me/accounts/${aliceSavings}/balances`)), {
        accountId: aliceSavings,
        currency: 'EUR',
        booked: '200.00',
        available: '200.00',
        pending: '0.00',
      });

      const transactions = await aliceTransactions(browser);
      assert.deepEqual(
        transactions.map(({ id: _, bookedAt: __, ...rest }) => rest),
        expectedAliceTransactions(),
        'newest first, without the pending hold',
      );
      const seqs = transactions.map((transaction) => {
        const [transferId, seq] = transaction.id.split(':');
        assert.equal(transferId, transaction.transferId);
        return Number(seq);
      });
      assert.deepEqual(
        seqs,
        [...seqs].sort((a, b) => b - a),
      );
      const bookedAt = transactions.map((transaction) => transaction.bookedAt);
      assert.deepEqual(bookedAt, [...bookedAt].sort().reverse());
      for (const at of bookedAt) assert.equal(new Date(at).toISOString(), at);

      // Bob sees the same transfer from his side, naming Alice.
      const bobs = await json<TransactionsPage>(
        await (await signIn('bob')).get(`/v1/me/accounts/${bobCurrent}/transactions`),
      );
      assert.deepEqual(
        bobs.transactions.map(({ id: _, bookedAt: __, ...rest }) => rest),
        [
          {
            transferId: aliceHistory[1]?.[0],
            direction: 'credit',
            amount: '25.50',
            balanceAfter: '25.50',
            counterparty: { name: 'Alice Able', iban: maskIban(ibanOf.get(aliceCurrent) ?? '') },
            reference: 'Dinner',
            category: 'transfer',
          },
        ],
      );
    });

    it("never reaches another customer's account, signed in or through an app", async () => {
      const month = new Date().toISOString().slice(0, 7);
      const elsewhere = [bobCurrent, '00000000-0000-7000-8000-000000000000'];
      const paths = (id: string) => [
        `${id}`,
        `${id}/balances`,
        `${id}/transactions`,
        `${id}/statements/${month}`,
        `${id}/statements/${month}?format=csv`,
      ];
      const browser = await signIn('alice');
      const listed = await json<{ accounts: AccountJson[] }>(await browser.get('/v1/me/accounts'));
      assert.ok(!listed.accounts.some((account) => account.id === bobCurrent));
      const token = await plainAccessToken();
      const api = bearer(token);
      const viaApp = await json<{ accounts: AccountJson[] }>(await api('/v1/accounts'));
      assert.deepEqual(
        viaApp.accounts.map((account) => account.id),
        [aliceCurrent, aliceSavings],
      );
      for (const id of elsewhere) {
        for (const path of paths(id)) {
          assert.deepEqual(
            await problemCode(await browser.get(`/v1/me/accounts/${path}`)),
            [404, 'not_found'],
            `/v1/me/accounts/${path}`,
          );
          assert.deepEqual(
            await problemCode(await api(`/v1/accounts/${path}`)),
            [404, 'not_found'],
            `/v1/accounts/${path}`,
          );
        }
      }
      // Alice's own account is there, through both doors.
      assert.equal((await browser.get(`/v1/me/accounts/${aliceCurrent}/balances`)).status, 200);
      assert.equal((await api(`/v1/accounts/${aliceCurrent}/balances`)).status, 200);

      const anonymous = new TestBrowser(issuer);
      for (const path of ['', `/${aliceCurrent}`, ...paths(aliceCurrent).map((p) => `/${p}`)]) {
        assert.deepEqual(
          await problemCode(await anonymous.get(`/v1/me/accounts${path}`)),
          [401, 'unauthorized'],
          path,
        );
        assert.equal((await fetch(`${issuer}/v1/accounts${path}`)).status, 401, path);
      }
      await browser.postForm('/me/sign-out', {});
      assert.equal((await browser.get('/v1/me/accounts')).status, 401, 'signing out ends the session');
    });

    it("reads a payment's two sides at once: the payer's own account, in either case of its id, and the payee's by IBAN", async () => {
      const accounts = built.accounts;
      assert.ok(accounts);
      const sides = async (debtorId: string | undefined, creditorIban: string | undefined) => {
        const found = await accounts.findForPayment(alice.customerId, debtorId, creditorIban);
        return [found.debtor?.id, found.creditor?.id];
      };
      assert.deepEqual(await sides(aliceCurrent, ibanOf.get(bobCurrent)), [aliceCurrent, bobCurrent]);
      assert.deepEqual(await sides(aliceCurrent.toUpperCase(), undefined), [aliceCurrent, undefined]);
      assert.deepEqual(await sides(aliceCurrent, ibanOf.get(aliceCurrent)), [aliceCurrent, aliceCurrent]);
      assert.deepEqual(await sides(bobCurrent, ibanOf.get(bobCurrent)), [undefined, bobCurrent]);
      assert.deepEqual(await sides(undefined, 'DE89370400440532013000'), [undefined, undefined]);
    });

    it('lets a third party see only the accounts and permissions the customer granted', async () => {
      const app = await newApp();
      const consentId = await app.createConsent(accountInformation(['details', 'balances']));
      const { page, confirm, finish } = await startAuthorisation(app, consentId);
      // The picker offers Alice's accounts, and only hers.
      for (const id of [aliceCurrent, aliceSavings]) {
        assert.match(page, new RegExp(`value="${id}"`));
        assert.ok(page.includes(maskIban(ibanOf.get(id) ?? '')));
      }
      assert.ok(!page.includes(bobCurrent));
      const token = await finish(await confirm([aliceCurrent]));
      assert.equal(await app.consentStatus(consentId), 'authorised');
      const api = bearer(token);

      const listed = await json<{ accounts: AccountJson[]; nextCursor: string | null }>(
        await api('/v1/accounts'),
      );
      assert.deepEqual(
        listed.accounts.map((account) => [account.id, account.iban]),
        [[aliceCurrent, ibanOf.get(aliceCurrent)]],
      );
      assert.equal(listed.nextCursor, null);
      assert.equal((await json<AccountJson>(await api(`/v1/accounts/${aliceCurrent}`))).id, aliceCurrent);
      assert.deepEqual(
        await problemCode(await api(`/v1/accounts/${aliceSavings}`)),
        [404, 'not_found'],
        'the account Alice did not tick is not there',
      );
      assert.deepEqual(await problemCode(await api(`/v1/accounts/${aliceSavings}/balances`)), [
        404,
        'not_found',
      ]);
      assert.deepEqual(await json(await api(`/v1/accounts/${aliceCurrent}/balances`)), {
        accountId: aliceCurrent,
        currency: 'EUR',
        booked: '768.15',
        available: '758.15',
        pending: '-10.00',
      });
      const month = new Date().toISOString().slice(0, 7);
      for (const path of ['transactions', `statements/${month}`]) {
        assert.deepEqual(
          await problemCode(await api(`/v1/accounts/${aliceCurrent}/${path}`)),
          [403, 'permission_not_granted'],
          path,
        );
      }

      // Balances without details: the accounts are recognisable, their numbers are not given out.
      const balancesOnly = await newApp();
      const secondConsent = await balancesOnly.createConsent(accountInformation(['balances']));
      const second = await startAuthorisation(balancesOnly, secondConsent);
      const masked = bearer(await second.finish(await second.confirm([aliceCurrent, aliceSavings])));
      const maskedList = await json<{ accounts: AccountJson[] }>(await masked('/v1/accounts'));
      assert.deepEqual(
        maskedList.accounts.map((account) => [account.id, account.iban]),
        [aliceCurrent, aliceSavings].map((id) => [id, maskIban(ibanOf.get(id) ?? '')]),
      );
      assert.match(maskedList.accounts[0]?.iban ?? '', /^GB\*{16}[0-9]{4}$/);
      assert.equal(
        (await json<AccountJson>(await masked(`/v1/accounts/${aliceSavings}`))).iban,
        maskIban(ibanOf.get(aliceSavings) ?? ''),
      );
      assert.equal((await masked(`/v1/accounts/${aliceSavings}/balances`)).status, 200);
    });

    it("refuses a consent confirmation naming an account that is not the customer's", async () => {
      const app = await newApp();
      const consentId = await app.createConsent(accountInformation(['details', 'balances', 'transactions']));
      const { confirm } = await startAuthorisation(app, consentId);
      for (const forged of [[bobCurrent], [aliceCurrent, bobCurrent], []]) {
        const refused = await confirm(forged);
        assert.equal(refused.status, 400, forged.join(','));
        assert.equal(refused.headers.get('location'), null, 'no redirect, so no authorization code');
        assert.match(await refused.text(), /Choose the account this applies to/);
      }
      assert.equal(await app.consentStatus(consentId), 'awaiting_authorisation');
    });

    it('refuses an app token (no customer) on the accounts API', async () => {
      const app = await newApp();
      for (const path of ['/v1/accounts', `/v1/accounts/${aliceCurrent}/balances`]) {
        const response = await fetch(`${issuer}${path}`, {
          headers: { authorization: `Bearer ${app.appToken}` },
        });
        assert.deepEqual(await problemCode(response), [403, 'insufficient_scope'], path);
      }
    });

    it('tells the customer when a payment app also asks for the accounts scope, and reads nothing without it', async () => {
      const app = await newApp(['accounts', 'payments']);
      const payment = {
        type: 'payment_initiation',
        instructedAmount: { amount: '1.00', currency: 'EUR' },
        creditor: { name: 'Corner Shop', iban: 'DE89370400440532013000' },
      };
      // With the plain accounts scope beside the payment consent, the page says so before Alice allows it.
      const withScope = await startAuthorisation(app, await app.createConsent(payment), {
        type: 'payment_initiation',
        scope: 'openid accounts payments',
      });
      assert.match(withScope.page, /See your accounts, balances and transactions/);
      // Asking for the payment alone gives a token that reads no account.
      const alone = await startAuthorisation(app, await app.createConsent(payment), {
        type: 'payment_initiation',
        scope: 'openid payments',
      });
      assert.doesNotMatch(alone.page, /See your accounts/);
      const api = bearer(await alone.finish(await alone.confirm([aliceCurrent])));
      assert.deepEqual(await problemCode(await api('/v1/accounts')), [403, 'insufficient_scope']);
      assert.deepEqual(await problemCode(await api(`/v1/accounts/${aliceCurrent}/balances`)), [
        403,
        'insufficient_scope',
      ]);
    });

    it('refuses a transactions cursor past the largest sequence number', async () => {
      const browser = await signIn('alice');
      const cursor = Buffer.from('tx:9999999999999999999').toString('base64url');
      const response = await browser.get(`/v1/me/accounts/${aliceCurrent}/transactions?cursor=${cursor}`);
      assert.deepEqual(await problemCode(response), [400, 'invalid_cursor']);
    });

    it('pages through transactions and filters them', async () => {
      const browser = await signIn('alice');
      const all = await aliceTransactions(browser);
      assert.equal(all.length, 6);
      const ids = (list: readonly TransactionJson[]) => list.map((transaction) => transaction.id);
      const query = async (search: string) =>
        json<TransactionsPage>(await browser.get(`/v1/me/accounts/${aliceCurrent}/transactions?${search}`));
      /** Follows nextCursor to the end; the number of pages is bounded by the transactions there are. */
      const walk = async (search: string) => {
        const seen: TransactionJson[] = [];
        const pageSizes: number[] = [];
        let cursor: string | null = null;
        for (let pages = 0; pages <= all.length; pages++) {
          const page: TransactionsPage = await query(
            `${search}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
          );
          seen.push(...page.transactions);
          pageSizes.push(page.transactions.length);
          cursor = page.nextCursor;
          if (!cursor) return { seen, pageSizes };
        }
        assert.fail('pagination did not end');
      };
      const firstAccount = await json<{ accounts: AccountJson[]; nextCursor: string | null }>(
        await browser.get('/v1/me/accounts?limit=1'),
      );
      assert.deepEqual(
        firstAccount.accounts.map((account) => account.id),
        [aliceCurrent],
      );
      assert.ok(firstAccount.nextCursor);
      const secondAccount = await json<{ accounts: AccountJson[]; nextCursor: string | null }>(
        await browser.get(`/v1/me/accounts?limit=1&cursor=${encodeURIComponent(firstAccount.nextCursor)}`),
      );
      assert.deepEqual(
        secondAccount.accounts.map((account) => account.id),
        [aliceSavings],
      );
      assert.equal(secondAccount.nextCursor, null);

      for (const [limit, sizes] of [
        [1, [1, 1, 1, 1, 1, 1]],
        [2, [2, 2, 2]],
        [4, [4, 2]],
        [6, [6]],
        [500, [6]],
      ] as const) {
        const { seen, pageSizes } = await walk(`limit=${limit}`);
        assert.deepEqual(ids(seen), ids(all), `limit ${limit}`);
        assert.deepEqual(pageSizes, sizes, `limit ${limit}`);
      }

      const expect = async (search: string, keep: (transaction: TransactionJson) => boolean) => {
        assert.deepEqual(ids((await query(search)).transactions), ids(all.filter(keep)), search);
        // Filters hold across pages too.
        assert.deepEqual(ids((await walk(`${search}&limit=1`)).seen), ids(all.filter(keep)), search);
      };
      await expect('direction=credit', (t) => t.direction === 'credit');
      await expect('direction=debit', (t) => t.direction === 'debit');
      assert.deepEqual(
        (await query('direction=credit')).transactions.map((t) => t.amount),
        ['0.99', '5.00', '1000.00'],
      );
      await expect('minAmount=12.34', (t) => minor(t.amount) >= 1234n);
      await expect('maxAmount=25.5', (t) => minor(t.amount) <= 2550n);
      await expect('minAmount=5&maxAmount=25.50', (t) => minor(t.amount) >= 500n && minor(t.amount) <= 2550n);
      await expect(
        'minAmount=100&direction=debit',
        (t) => minor(t.amount) >= 10000n && t.direction === 'debit',
      );
      await expect('minAmount=2000', () => false);

      // Booking dates (UTC days, both ends inclusive), worked out from the transactions themselves.
      const day = (t: TransactionJson) => t.bookedAt.slice(0, 10);
      const last = day(all[0] as TransactionJson);
      const first = day(all.at(-1) as TransactionJson);
      await expect(`bookedFrom=${first}&bookedTo=${last}`, () => true);
      await expect(`bookedTo=${last}`, () => true);
      await expect(`bookedFrom=${last}`, (t) => day(t) === last);
      await expect(`bookedFrom=${last}&bookedTo=${last}`, (t) => day(t) === last);
      await expect(`bookedTo=${dayAfter(first, -1)}`, () => false);
      await expect(`bookedFrom=${dayAfter(last, 1)}`, () => false);
      await expect(`bookedFrom=${last}&bookedTo=${dayAfter(last, -1)}`, () => false);
    });

    it('refuses bad transaction queries with a problem, never a server error', async () => {
      const browser = await signIn('alice');
      const accountsCursor = encodeURIComponent(Buffer.from(`acc:${aliceCurrent}`).toString('base64url'));
      const cases: [string, string][] = [
        ['limit=0', 'validation_failed'],
        ['limit=501', 'validation_failed'],
        ['limit=10000', 'validation_failed'],
        ['limit=1.5', 'validation_failed'],
        ['limit=many', 'validation_failed'],
        ['minAmount=1.234', 'validation_failed'],
        ['maxAmount=0.001', 'validation_failed'],
        ['minAmount=-5', 'validation_failed'],
        ['minAmount=0', 'validation_failed'],
        ['minAmount=1e3', 'validation_failed'],
        ['maxAmount=12,50', 'validation_failed'],
        ['bookedFrom=2026-02-30', 'validation_failed'],
        ['bookedTo=2026-13-01', 'validation_failed'],
        ['bookedFrom=2026-2-3', 'validation_failed'],
        ['bookedFrom=yesterday', 'validation_failed'],
        // Dates PostgreSQL cannot hold: year 0, and the day after the last of 9999.
        ['bookedFrom=0000-01-01', 'validation_failed'],
        ['bookedTo=9999-12-31', 'validation_failed'],
        // Within the amount pattern, but past any balance once in cents.
        ['minAmount=9223372036854775807', 'validation_failed'],
        ['cursor=garbage', 'invalid_cursor'],
        [`cursor=${'x'.repeat(129)}`, 'validation_failed'],
        [`cursor=${accountsCursor}`, 'invalid_cursor'],
        [`cursor=${Buffer.from('tx:0').toString('base64url')}`, 'invalid_cursor'],
        ['direction=sideways', 'validation_failed'],
        ['sort=amount', 'validation_failed'],
      ];
      for (const [search, code] of cases) {
        const response = await browser.get(`/v1/me/accounts/${aliceCurrent}/transactions?${search}`);
        assert.deepEqual(await problemCode(response), [400, code], search);
      }
      for (const search of ['limit=0', 'limit=101', 'cursor=garbage', 'sort=name']) {
        assert.equal((await browser.get(`/v1/me/accounts?${search}`)).status, 400, search);
      }
      assert.equal((await browser.get('/v1/me/accounts/not-a-uuid')).status, 400);
      // The edges of what is accepted are answered, not failed.
      for (const search of ['bookedFrom=1000-01-01&bookedTo=2999-12-31', 'maxAmount=92233720368547758.07']) {
        const response = await browser.get(`/v1/me/accounts/${aliceCurrent}/transactions?${search}`);
        assert.equal((await json<TransactionsPage>(response)).transactions.length, 6, search);
      }
    });

    it('produces monthly statements as JSON, CSV and PDF', async () => {
      const browser = await signIn('alice');
      const all = await aliceTransactions(browser);
      const month = (all[0] as TransactionJson).bookedAt.slice(0, 7);
      const inMonth = all.filter((t) => t.bookedAt.startsWith(month)).reverse();
      const before = all.find((t) => t.bookedAt.slice(0, 7) < month);
      const base = `/v1/me/accounts/${aliceCurrent}/statements/${month}`;

      const statement = await json<StatementJson>(await browser.get(base));
      const [year, monthNumber] = month.split('-').map(Number);
      const lastDay = new Date(Date.UTC(year ?? 0, monthNumber ?? 0, 0)).toISOString().slice(0, 10);
      assert.deepEqual(statement.account, {
        id: aliceCurrent,
        iban: ibanOf.get(aliceCurrent),
        name: 'Current account',
        currency: 'EUR',
        holderName: 'Alice Able',
      });
      assert.deepEqual(statement.period, { month, from: `${month}-01`, to: lastDay });
      const sum = (direction: string) =>
        decimal(
          inMonth.filter((t) => t.direction === direction).reduce((total, t) => total + minor(t.amount), 0n),
        );
      assert.deepEqual(
        [statement.openingBalance, statement.closingBalance, statement.totalCredits, statement.totalDebits],
        [before?.balanceAfter ?? '0.00', '768.15', sum('credit'), sum('debit')],
      );
      assert.equal(
        minor(statement.openingBalance) + minor(statement.totalCredits) - minor(statement.totalDebits),
        minor(statement.closingBalance),
        'opening + credits - debits = closing',
      );
      assert.deepEqual(
        statement.lines,
        inMonth.map((t) => ({
          bookedAt: t.bookedAt,
          description: [t.counterparty.name, t.reference].filter(Boolean).join(' · '),
          category: t.category,
          direction: t.direction,
          amount: t.amount,
          balance: t.balanceAfter,
        })),
      );
      if (inMonth.length === all.length) {
        assert.deepEqual(
          [statement.openingBalance, statement.totalCredits, statement.totalDebits],
          ['0.00', '1005.99', '237.84'],
        );
        assert.equal(statement.lines[1]?.description, 'Bob Baker · Dinner');
      }

      const csv = await browser.get(`${base}?format=csv`);
      assert.equal(csv.status, 200);
      assert.equal(csv.headers.get('content-type'), 'text/csv; charset=utf-8');
      assert.equal(csv.headers.get('content-disposition'), `attachment; filename="statement-${month}.csv"`);
      assert.equal(
        await csv.text(),
        [
          'booked_at,description,category,direction,amount,balance',
          ...statement.lines.map((line) =>
            [
              line.bookedAt,
              line.description,
              line.category ?? '',
              line.direction,
              line.amount,
              line.balance,
            ].join(','),
          ),
          '',
        ].join('\r\n'),
      );

      const pdf = await browser.get(`${base}?format=pdf`);
      assert.equal(pdf.status, 200);
      assert.equal(pdf.headers.get('content-type'), 'application/pdf');
      assert.equal(
        Buffer.from(await pdf.arrayBuffer())
          .subarray(0, 5)
          .toString('latin1'),
        '%PDF-',
      );
      // The same through an app, choosing the format by Accept (TestBrowser sends no Accept header).
      const api = bearer(await plainAccessToken());
      const appBase = `/v1/accounts/${aliceCurrent}/statements/${month}`;
      const negotiated = await api(appBase, { accept: 'application/pdf' });
      assert.equal(negotiated.status, 200);
      assert.equal(negotiated.headers.get('content-type'), 'application/pdf');
      assert.equal(
        Buffer.from(await negotiated.arrayBuffer())
          .subarray(0, 5)
          .toString('latin1'),
        '%PDF-',
      );
      assert.equal(
        (await api(appBase, { accept: 'text/csv' })).headers.get('content-type'),
        'text/csv; charset=utf-8',
      );
      const { generatedAt: _, ...viaApp } = await json<StatementJson>(await api(appBase));
      const { generatedAt: __, ...viaPage } = statement;
      assert.deepEqual(viaApp, viaPage);

      // A month with nothing in it: the balance carries over.
      const empty = await json<StatementJson>(
        await browser.get(`/v1/me/accounts/${aliceCurrent}/statements/2020-01`),
      );
      assert.deepEqual(
        [empty.openingBalance, empty.closingBalance, empty.totalCredits, empty.totalDebits, empty.lines],
        ['0.00', '0.00', '0.00', '0.00', []],
      );
      assert.deepEqual(empty.period, { month: '2020-01', from: '2020-01-01', to: '2020-01-31' });

      for (const edge of ['1000-01', '2999-12']) {
        const response = await browser.get(`/v1/me/accounts/${aliceCurrent}/statements/${edge}`);
        assert.equal((await json<StatementJson>(response)).lines.length, 0, edge);
      }
      for (const bad of ['2026-13', '2026-00', '2026-1', '202601', 'latest', '0000-01', '9999-12']) {
        assert.deepEqual(
          await problemCode(await browser.get(`/v1/me/accounts/${aliceCurrent}/statements/${bad}`)),
          [400, 'validation_failed'],
          bad,
        );
      }
      for (const bad of ['format=xlsx', 'format=pdf&lang=de']) {
        assert.deepEqual(await problemCode(await browser.get(`${base}?${bad}`)), [400, 'validation_failed']);
      }
    });

    it('puts every movement of a long month on its statement, and refuses one too long', async () => {
      const pat = await createCustomer(built, { username: 'pat', password: PASSWORD, legalName: 'Pat Long' });
      const [account = ''] = pat.accountIds;
      const [ledgerAccount = ''] = pat.ledgerAccountIds;
      const cents = (count: number, from: number) =>
        built.ledger.transferBatch(
          true,
          Array.from({ length: count }, (_, index) => ({
            key: `accounts-test-long-${from + index}`,
            request: {
              postings: [
                {
                  debitAccountId: settlement,
                  creditAccountId: ledgerAccount,
                  amount: { minor: 1n as Minor, scale: 2 },
                },
              ],
              pending: false,
              expiresAt: null,
              metadata: { reference: `Cashback ${from + index}` },
            },
          })),
        );
      // More than the ledger answers in one call (ENTRIES_PAGE_MAX).
      const first = await cents(ENTRIES_PAGE_MAX + 1, 0);
      assert.ok(first.every((outcome) => outcome.ok));
      const browser = await signIn('pat');
      const month = (
        await json<TransactionsPage>(await browser.get(`/v1/me/accounts/${account}/transactions?limit=1`))
      ).transactions[0]?.bookedAt.slice(0, 7);
      const statement = await json<StatementJson>(
        await browser.get(`/v1/me/accounts/${account}/statements/${month}`),
      );
      assert.equal(statement.lines.length, ENTRIES_PAGE_MAX + 1);
      assert.deepEqual(
        [statement.openingBalance, statement.totalCredits, statement.closingBalance],
        ['0.00', '10.01', '10.01'],
      );
      assert.equal(statement.lines[0]?.description, 'Cashback 0');
      assert.equal(statement.lines.at(-1)?.description, `Cashback ${ENTRIES_PAGE_MAX}`);

      const rest = await cents(STATEMENT_LINES_MAX - ENTRIES_PAGE_MAX, ENTRIES_PAGE_MAX + 1);
      assert.ok(rest.every((outcome) => outcome.ok));
      assert.deepEqual(
        await problemCode(await browser.get(`/v1/me/accounts/${account}/statements/${month}`)),
        [422, 'statement_too_large'],
      );
    });

    it('lets operators freeze and reactivate accounts, and close only empty ones', async () => {
      const erin = await createCustomer(built, {
        username: 'erin',
        password: PASSWORD,
        legalName: 'Erin Evans',
      });
      const [account = ''] = erin.accountIds;
      const [ledgerAccount = ''] = erin.ledgerAccountIds;
      await move(settlement, ledgerAccount, '50.00', { reference: 'Opening deposit' });
      const patch = (
        status: string,
        headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` },
      ) =>
        built.app.inject({
          method: 'PATCH',
          url: `/v1/admin/accounts/${account}`,
          headers,
          payload: { status },
        });
      const outcome = async (status: string) => {
        const response = await patch(status);
        const body = response.json();
        return [response.statusCode, body.code ?? body.status];
      };

      assert.equal((await patch('frozen', {})).statusCode, 401);
      assert.equal(
        (await patch('frozen', { authorization: 'Bearer not-the-operator-token' })).statusCode,
        401,
      );
      assert.equal((await patch('closed', {})).statusCode, 401);
      const frozen = await patch('frozen');
      assert.equal(frozen.statusCode, 200);
      const stored = await built.accounts?.find(account);
      assert.deepEqual(frozen.json(), {
        id: account,
        name: 'Current account',
        product: 'current',
        currency: 'EUR',
        iban: stored?.iban,
        status: 'frozen',
        openedAt: stored?.createdAt.toISOString(),
      });
      const erinBrowser = await signIn('erin');
      assert.equal(
        (await json<AccountJson>(await erinBrowser.get(`/v1/me/accounts/${account}`))).status,
        'frozen',
      );
      assert.deepEqual(await outcome('active'), [200, 'active']);
      assert.deepEqual(await outcome('closed'), [409, 'balance_not_zero']);

      await move(ledgerAccount, settlement, '50.00', { reference: 'Closing payout' });
      // Money on its way in is not zero either.
      const incoming = await move(settlement, ledgerAccount, '1.00', { reference: 'Late refund' }, true);
      assert.deepEqual(await outcome('closed'), [409, 'balance_not_zero']);
      assert.ok((await built.ledger.void(incoming)).ok);
      assert.deepEqual(await outcome('closed'), [200, 'closed']);
      for (const status of ['active', 'frozen', 'closed']) {
        assert.deepEqual(await outcome(status), [409, 'account_closed'], status);
      }
      assert.equal(
        (await json<AccountJson>(await erinBrowser.get(`/v1/me/accounts/${account}`))).status,
        'closed',
      );

      const unknown = await built.app.inject({
        method: 'PATCH',
        url: '/v1/admin/accounts/00000000-0000-7000-8000-000000000000',
        headers: { authorization: `Bearer ${TOKEN}` },
        payload: { status: 'frozen' },
      });
      assert.equal(unknown.statusCode, 404);
      assert.deepEqual(await outcome('dormant'), [400, 'validation_failed']);
    });

    // Last: Alice's payments here change her balances, which the tests above know.
    it('lists whom the customer paid from an account, under the beneficiaries permission', async () => {
      const payments = built.payments;
      assert.ok(payments);
      const pay = async (from: string, creditor: { name: string; iban: string }, reference: string) => {
        const paid = await payments.initiate(
          { kind: 'customer', customerId: alice.customerId },
          `beneficiaries-${reference}`,
          {
            instructedAmount: { amount: '1.00', currency: 'EUR' },
            creditor,
            debtorAccountId: from,
            reference,
          },
        );
        if (!paid.ok) assert.fail(`payment refused: ${paid.code}`);
        assert.ok(['accepted', 'settled'].includes(paid.payment.status), paid.payment.status);
        return paid.payment;
      };
      const gym = { name: 'City Gym', iban: 'DE89370400440532013000' };
      const dentist = { name: 'Dr Jones Dental', iban: 'FR1420041010050500013M02606' };
      const bobPaid = { name: 'Bob Baker', iban: ibanOf.get(bobCurrent) ?? '' };
      const firstGym = await pay(aliceCurrent, gym, 'Gym January');
      await pay(aliceCurrent, dentist, 'Check-up');
      // The same payee again, under another name: the first payment names the payee, the latest describes it.
      const latestGym = await pay(aliceCurrent, { ...gym, name: 'City Gym Ltd' }, 'Gym February');
      const toBob = await pay(aliceCurrent, bobPaid, 'Lunch');
      // From the other account: not the current account's payee.
      await pay(aliceSavings, { name: 'Tax Office', iban: 'GB33BUKB20201555555555' }, 'Tax');
      const expected = [
        { id: firstGym.id, ...gym, name: 'City Gym Ltd', reference: 'Gym February', at: latestGym.createdAt },
        { id: toBob.id, ...bobPaid, reference: 'Lunch', at: toBob.createdAt },
      ];
      interface BeneficiaryJson {
        id: string;
        name: string;
        iban: string;
        reference: string | null;
        lastPaidAt: string;
      }
      type BeneficiaryPage = { beneficiaries: BeneficiaryJson[]; nextCursor: string | null };
      const everyPage = async (read: (path: string) => Promise<Response>, account: string) => {
        const seen: BeneficiaryJson[] = [];
        let cursor: string | null = null;
        do {
          const query: string = cursor ? `&cursor=${cursor}` : '';
          const page: BeneficiaryPage = await json<BeneficiaryPage>(
            await read(`/v1/accounts/${account}/beneficiaries?limit=2${query}`),
          );
          assert.ok(page.beneficiaries.length <= 2);
          seen.push(...page.beneficiaries);
          cursor = page.nextCursor;
        } while (cursor);
        return seen;
      };

      const app = await newApp();
      const consentId = await app.createConsent(accountInformation(['beneficiaries']));
      const { confirm, finish } = await startAuthorisation(app, consentId);
      const api = bearer(await finish(await confirm([aliceCurrent])));
      const listed = await everyPage(api, aliceCurrent);
      // By IBAN, each payee once: the dentist (FR…) sorts between Bob (GB…) and the gym (DE…).
      const byIban = [...expected, { id: '', ...dentist, reference: 'Check-up', at: new Date(0) }].sort(
        (a, b) => a.iban.localeCompare(b.iban),
      );
      assert.deepEqual(
        listed.map((payee) => [payee.name, payee.iban, payee.reference]),
        byIban.map((payee) => [payee.name, payee.iban, payee.reference]),
      );
      for (const payee of expected) {
        const shown = listed.find((entry) => entry.iban === payee.iban);
        assert.equal(shown?.id, payee.id, payee.name);
        assert.equal(shown?.lastPaidAt, payee.at.toISOString(), payee.name);
      }
      // The customer sees the same at the bank's pages, for every account of hers.
      const browser = await signIn('alice');
      const mine = await everyPage((path) => browser.get(path.replace('/v1/', '/v1/me/')), aliceCurrent);
      assert.deepEqual(mine, listed);
      assert.deepEqual(
        (await everyPage((path) => browser.get(path.replace('/v1/', '/v1/me/')), aliceSavings)).map(
          (payee) => payee.name,
        ),
        ['Tax Office'],
      );

      // Not chosen, not hers, not granted, not a cursor of this list: nothing is read.
      assert.deepEqual(await problemCode(await api(`/v1/accounts/${aliceSavings}/beneficiaries`)), [
        404,
        'not_found',
      ]);
      assert.deepEqual(await problemCode(await api(`/v1/accounts/${bobCurrent}/beneficiaries`)), [
        404,
        'not_found',
      ]);
      const balancesOnly = await newApp();
      const other = await startAuthorisation(
        balancesOnly,
        await balancesOnly.createConsent(accountInformation(['details', 'balances', 'transactions'])),
      );
      const withoutPermission = bearer(await other.finish(await other.confirm([aliceCurrent])));
      assert.deepEqual(
        await problemCode(await withoutPermission(`/v1/accounts/${aliceCurrent}/beneficiaries`)),
        [403, 'permission_not_granted'],
      );
      const transactionsCursor = Buffer.from('tx:12').toString('base64url');
      for (const [query, code] of [
        [`cursor=${transactionsCursor}`, 'invalid_cursor'],
        [`cursor=${Buffer.from('payee:not an iban').toString('base64url')}`, 'invalid_cursor'],
        ['limit=0', 'validation_failed'],
        ['limit=200', 'validation_failed'],
      ]) {
        assert.deepEqual(
          await problemCode(await api(`/v1/accounts/${aliceCurrent}/beneficiaries?${query}`)),
          [400, code],
          query,
        );
      }
    });
  });
}
