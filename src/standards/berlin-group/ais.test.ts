// The Berlin Group NextGenPSD2 1.3.9 Account Information Service, exercised the way a third party
// integrating the standard would, with every request and response passing through Prism against the
// official file: a response that does not conform fails the test. Also keeps its record in the
// conformance table (docs/conformance.md).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { BuiltApp } from '../../main.ts';
import { newClientApp, outsideTheBank } from '../../testing/bank.ts';
import { authoriseConsent, followConsentLink } from '../../testing/consent-flow.ts';
import { type TestDb, testDatabases } from '../../testing/databases.ts';
import {
  type BankBehindPrism,
  bankBehindPrism,
  berlinGroupAnswer,
  berlinGroupCall,
  type Exchange,
  type PrismProxy,
  tppMessageCodes,
} from '../../testing/prism.ts';
import { keepRecord, recordOf } from '../conformance.ts';
import { BG_PREFIX } from './ais.ts';

const TOKEN = 'bg-test-operator-token-0123456789abcdef';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'berlin group test password';
const SPEC = fileURLToPath(
  new URL('../../../specs/berlin-group-nextgenpsd2-1.3.9/psd2-api-1.3.9.yaml', import.meta.url),
);
const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
const observed: Exchange[] = [];

interface Created {
  consentStatus: string;
  consentId: string;
  _links: Record<string, { href: string }>;
}
interface TppMessages {
  tppMessages: { category: string; code: string; text?: string; path?: string }[];
}

for (const database of testDatabases()) {
  describe(`Berlin Group NextGenPSD2 1.3.9 AIS on ${database.name}`, () => {
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
        prefix: BG_PREFIX,
        adminToken: TOKEN,
        password: PASSWORD,
        aliceAccounts: [
          { product: 'current', currency: 'EUR' },
          { product: 'savings', currency: 'EUR' },
        ],
      });
      ({ built, issuer, prism, lax, developer, alice, bob } = bank);
      const outside = await outsideTheBank(built.ledger, 'EUR');
      const { move } = outside;
      const [current = ''] = alice.ledgerAccountIds;
      await move('bg-1', outside.id, current, '1000.00', {
        reference: 'Salary',
        counterparty: { name: 'Northwind GmbH' },
      });
      await move('bg-2', current, outside.id, '12.34', {
        reference: 'Kaffeebohnen',
        counterparty: { name: 'Eckcafe', iban: 'DE89370400440532013000' },
      });
    });
    after(async () => {
      if (bank) observed.push(...(await bank.close()));
      await db?.close();
    });

    const newApp = async () =>
      newClientApp({ built, issuer }, developer, {
        name: `Kontoblick ${++apps}`,
        scopes: ['openid', 'accounts'],
        redirectUri: REDIRECT,
      });
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    const call = berlinGroupCall;
    const json = berlinGroupAnswer;
    const consentBody = (access: object, extra: object = {}) => ({
      access,
      recurringIndicator: true,
      validUntil: inDays(90),
      frequencyPerDay: 4,
      combinedServiceIndicator: false,
      ...extra,
    });
    const createConsent = async (app: TestApp, access: object) =>
      json<Created>(
        await call(prism, app.appToken, '/v1/consents', { method: 'POST', body: consentBody(access) }),
        201,
      );
    /** Alice authorises the consent at the bank's page, ticking `accounts`; the app redeems the code. */
    const authorise = async (
      app: TestApp,
      consentId: string,
      accounts: readonly string[],
      scaRedirect?: string,
    ) => {
      const flow = { issuer, config: app.config, username: 'alice', password: PASSWORD, accounts };
      // The consent's own link, completed with what only the TPP can add; or the app's pushed request.
      const token = scaRedirect
        ? await followConsentLink({ ...flow, link: scaRedirect })
        : (
            await authoriseConsent({
              ...flow,
              redirectUri: REDIRECT,
              scope: 'openid accounts',
              type: 'account_information',
              consentId,
            })
          ).accessToken;
      assert.ok(token);
      return token;
    };
    const codes = tppMessageCodes;
    const read = (token: string, consentId: string, path: string, proxy = prism) =>
      call(proxy, token, path, { headers: { 'consent-id': consentId } });

    it('answers a path or method the facade does not have in tppMessages form, echoing X-Request-ID', async () => {
      const requestId = randomUUID();
      const unknown = await built.app.inject({
        url: `${BG_PREFIX}/v1/nothing-here`,
        headers: { 'x-request-id': requestId },
      });
      assert.equal(unknown.statusCode, 404);
      assert.equal(unknown.headers['x-request-id'], requestId);
      assert.deepEqual(
        unknown.json().tppMessages.map((message: { code: string }) => message.code),
        ['RESOURCE_UNKNOWN'],
      );
      const wrongMethod = await built.app.inject({ method: 'PUT', url: `${BG_PREFIX}/v1/consents` });
      assert.equal(wrongMethod.statusCode, 405);
      assert.equal(wrongMethod.headers.allow, 'POST');
      assert.match(String(wrongMethod.headers['x-request-id']), /^[0-9a-f-]{36}$/);
      assert.deepEqual(
        wrongMethod.json().tppMessages.map((message: { code: string }) => message.code),
        ['SERVICE_INVALID'],
      );
    });

    it('creates a consent with a redirect link, reads it and its status, echoing X-Request-ID, and deletes it', async () => {
      const app = await newApp();
      const requestId = randomUUID();
      const created = await call(prism, app.appToken, '/v1/consents', {
        method: 'POST',
        body: consentBody({ accounts: [], balances: [] }),
        headers: { 'x-request-id': requestId, 'tpp-redirect-uri': REDIRECT },
      });
      assert.equal(created.status, 201);
      assert.equal(created.headers.get('x-request-id'), requestId);
      assert.equal(created.headers.get('aspsp-sca-approach'), 'REDIRECT');
      const body = (await created.json()) as Created;
      assert.equal(body.consentStatus, 'received');
      assert.equal(body._links.self?.href, `${issuer}/berlin-group/v1/consents/${body.consentId}`);
      const redirect = new URL(body._links.scaRedirect?.href ?? '');
      assert.equal(`${redirect.origin}${redirect.pathname}`, `${issuer}/oauth/authorize`);
      assert.equal(redirect.searchParams.get('redirect_uri'), REDIRECT);
      assert.deepEqual(JSON.parse(redirect.searchParams.get('authorization_details') ?? ''), [
        { type: 'account_information', consentId: body.consentId },
      ]);
      // The authorisation started with it (src/standards/berlin-group/authorisations.test.ts goes on).
      assert.match(
        body._links.scaStatus?.href ?? '',
        new RegExp(`/berlin-group/v1/consents/${body.consentId}/authorisations/[0-9a-f-]{36}$`),
      );
      // The same consent in the bank's own API: one consent, two faces.
      assert.deepEqual((await built.consents?.find(body.consentId))?.details.permissions, [
        'details',
        'balances',
      ]);
      const path = `/v1/consents/${body.consentId}`;
      const info = await json<{ access: object; consentStatus: string; frequencyPerDay: number }>(
        await call(prism, app.appToken, path),
        200,
      );
      assert.deepEqual(info.access, { accounts: [], balances: [] });
      assert.equal(info.consentStatus, 'received');
      assert.equal(info.frequencyPerDay, 4);
      assert.deepEqual(await json(await call(prism, app.appToken, `${path}/status`), 200), {
        consentStatus: 'received',
      });
      const deleted = await call(prism, app.appToken, path, { method: 'DELETE' });
      assert.equal(deleted.status, 204);
      assert.deepEqual(await json(await call(prism, app.appToken, `${path}/status`), 200), {
        consentStatus: 'terminatedByTpp',
      });
    });

    it('runs the whole flow: consent, authorisation at the bank, code exchange, accounts, balances, transactions', async () => {
      const app = await newApp();
      const consent = await json<Created>(
        await call(prism, app.appToken, '/v1/consents', {
          method: 'POST',
          body: consentBody({ accounts: [], balances: [], transactions: [] }),
          headers: { 'tpp-redirect-uri': REDIRECT },
        }),
        201,
      );
      const [current = '', savings = ''] = alice.accountIds;
      // The customer follows _links.scaRedirect to the bank's consent page.
      const token = await authorise(app, consent.consentId, [current], consent._links.scaRedirect?.href);
      assert.deepEqual(
        await json(await call(prism, app.appToken, `/v1/consents/${consent.consentId}/status`), 200),
        {
          consentStatus: 'valid',
        },
      );

      const listed = await json<{ accounts: { resourceId: string; iban: string }[] }>(
        await read(token, consent.consentId, '/v1/accounts'),
        200,
      );
      assert.deepEqual(
        listed.accounts.map((account) => account.resourceId),
        [current],
        'only the account Alice ticked',
      );
      assert.equal(listed.accounts[0]?.iban, (await built.accounts?.find(current))?.iban);
      const one = await json<{ account: { balances?: { balanceAmount: { amount: string } }[] } }>(
        await read(token, consent.consentId, `/v1/accounts/${current}?withBalance=true`),
        200,
      );
      assert.equal(one.account.balances?.[0]?.balanceAmount.amount, '987.66');

      const balances = await json<{ balances: { balanceType: string; balanceAmount: { amount: string } }[] }>(
        await read(token, consent.consentId, `/v1/accounts/${current}/balances`),
        200,
      );
      assert.deepEqual(
        balances.balances.map((balance) => [balance.balanceType, balance.balanceAmount.amount]),
        [
          ['interimBooked', '987.66'],
          ['interimAvailable', '987.66'],
        ],
      );

      const transactions = await json<{
        transactions: {
          booked: {
            transactionId: string;
            transactionAmount: { amount: string };
            creditorName?: string;
            debtorName?: string;
            remittanceInformationUnstructured?: string;
            _links: { transactionDetails: { href: string } };
          }[];
          pending?: unknown[];
        };
      }>(
        await read(token, consent.consentId, `/v1/accounts/${current}/transactions?bookingStatus=both`),
        200,
      );
      assert.deepEqual(
        transactions.transactions.booked.map((t) => [
          t.transactionAmount.amount,
          t.creditorName ?? t.debtorName,
          t.remittanceInformationUnstructured,
        ]),
        [
          ['-12.34', 'Eckcafe', 'Kaffeebohnen'],
          ['1000.00', 'Northwind GmbH', 'Salary'],
        ],
      );
      assert.deepEqual(transactions.transactions.pending, []);

      // Each booked transaction links its details, which read the same.
      const [coffee] = transactions.transactions.booked;
      assert.ok(coffee);
      const detailsPath = new URL(coffee._links.transactionDetails.href).pathname.replace(BG_PREFIX, '');
      assert.equal(detailsPath, `/v1/accounts/${current}/transactions/${coffee.transactionId}`);
      const { _links, ...entry } = coffee;
      assert.deepEqual(
        await json(await read(token, consent.consentId, detailsPath), 200),
        { transactionsDetails: entry },
        'the details are the list entry',
      );
      const [transferId, seq] = coffee.transactionId.split(':');
      for (const unknown of [
        `${transferId}:${Number(seq) + 100}`,
        `${randomUUID()}:${seq}`,
        'not-a-transaction',
      ]) {
        assert.deepEqual(
          await codes(
            await read(token, consent.consentId, `/v1/accounts/${current}/transactions/${unknown}`),
            404,
          ),
          ['RESOURCE_UNKNOWN'],
          unknown,
        );
      }
      // The same entry is not reached through an account outside the consent.
      assert.deepEqual(
        await codes(
          await read(
            token,
            consent.consentId,
            `/v1/accounts/${savings}/transactions/${coffee.transactionId}`,
          ),
          404,
        ),
        ['RESOURCE_UNKNOWN'],
      );
      const none = await json<{ transactions: { booked: unknown[] } }>(
        await read(
          token,
          consent.consentId,
          `/v1/accounts/${current}/transactions?bookingStatus=booked&dateTo=2000-01-01`,
        ),
        200,
      );
      assert.deepEqual(none.transactions.booked, []);
      assert.deepEqual(
        await codes(
          await read(
            token,
            consent.consentId,
            `/v1/accounts/${current}/transactions?bookingStatus=information`,
          ),
          400,
        ),
        ['PARAMETER_NOT_SUPPORTED'],
      );

      // An account Alice did not tick, and Bob's, are refused alike.
      for (const other of [savings, bob.accountIds[0] ?? '']) {
        for (const path of [
          `/v1/accounts/${other}`,
          `/v1/accounts/${other}/balances`,
          `/v1/accounts/${other}/transactions?bookingStatus=booked`,
        ]) {
          assert.deepEqual(
            await codes(await read(token, consent.consentId, path), 404),
            ['RESOURCE_UNKNOWN'],
            path,
          );
        }
      }
      // A Consent-ID the token was not issued for.
      assert.deepEqual(await codes(await read(token, randomUUID(), '/v1/accounts'), 403), [
        'CONSENT_UNKNOWN',
      ]);
      // Deleted: the token stops at once.
      await call(prism, app.appToken, `/v1/consents/${consent.consentId}`, { method: 'DELETE' });
      assert.deepEqual(await codes(await read(token, consent.consentId, '/v1/accounts'), 401), [
        'TOKEN_INVALID',
      ]);
    });

    it('gives only what the access grants: no balances or transactions under an accounts-only consent', async () => {
      const app = await newApp();
      const consent = await createConsent(app, { accounts: [] });
      const [current = ''] = alice.accountIds;
      const token = await authorise(app, consent.consentId, [current]);
      const listed = await json<{ accounts: { _links: object; balances?: unknown }[] }>(
        await read(token, consent.consentId, '/v1/accounts?withBalance=true'),
        200,
      );
      assert.deepEqual(listed.accounts[0]?._links, {}, 'no links to what the consent does not grant');
      assert.equal(listed.accounts[0]?.balances, undefined);
      assert.deepEqual(
        await codes(await read(token, consent.consentId, `/v1/accounts/${current}/balances`), 401),
        ['CONSENT_INVALID'],
      );
      assert.deepEqual(
        await codes(
          await read(token, consent.consentId, `/v1/accounts/${current}/transactions?bookingStatus=booked`),
          401,
        ),
        ['CONSENT_INVALID'],
      );
      const [entry] =
        (await built.accounts?.transactions(
          (await built.accounts?.find(current)) ?? assert.fail('no account'),
          {},
          undefined,
          1,
        )) ?? [];
      assert.ok(entry);
      assert.deepEqual(
        await codes(
          await read(
            token,
            consent.consentId,
            `/v1/accounts/${current}/transactions/${entry.transferId}:${entry.seq}`,
          ),
          401,
        ),
        ['CONSENT_INVALID'],
      );
    });

    it("keeps one app's consents from another, and app tokens from account data", async () => {
      const owner = await newApp();
      const other = await newApp();
      const consent = await createConsent(owner, { accounts: [] });
      const path = `/v1/consents/${consent.consentId}`;
      for (const [method, at] of [
        ['GET', path],
        ['GET', `${path}/status`],
        ['DELETE', path],
      ] as const) {
        assert.deepEqual(await codes(await call(prism, other.appToken, at, { method }), 403), [
          'CONSENT_UNKNOWN',
        ]);
      }
      assert.deepEqual(await json(await call(prism, owner.appToken, `${path}/status`), 200), {
        consentStatus: 'received',
      });
      assert.deepEqual(await codes(await read(owner.appToken, consent.consentId, '/v1/accounts'), 403), [
        'CONSENT_UNKNOWN',
      ]);
    });

    it('refuses what it cannot honour or read, in tppMessages form, creating nothing', async () => {
      const app = await newApp();
      const post = (body: unknown, proxy = prism, headers: Record<string, string> = {}) =>
        call(proxy, app.appToken, '/v1/consents', { method: 'POST', body, headers });
      const refusals: [unknown, string, PrismProxy?][] = [
        [consentBody({ accounts: [{ iban: 'DE89370400440532013000' }] }), 'PARAMETER_NOT_SUPPORTED'],
        [consentBody({ allPsd2: 'allAccounts' }), 'SERVICE_INVALID'],
        [consentBody({}), 'FORMAT_ERROR'],
        [consentBody({ accounts: [] }, { combinedServiceIndicator: true }), 'PARAMETER_NOT_SUPPORTED'],
        [consentBody({ accounts: [] }, { validUntil: inDays(365) }), 'FORMAT_ERROR'],
        [consentBody({ accounts: [] }, { validUntil: inDays(-1) }), 'FORMAT_ERROR'],
        // Requests the spec itself forbids, sent past Prism's request check to reach the bank.
        [{ access: { accounts: [] } }, 'FORMAT_ERROR', lax],
        [consentBody({ accounts: [] }, { frequencyPerDay: 0 }), 'FORMAT_ERROR', lax],
        // More than 4 a day needs a bilateral agreement (Implementation Guidelines); the schema sets no maximum.
        [consentBody({ accounts: [] }, { frequencyPerDay: 5 }), 'FORMAT_ERROR'],
        [consentBody({ accounts: [] }, { frequencyPerDay: 1e308 }), 'FORMAT_ERROR'],
      ];
      const consentCount = async () =>
        Number((await db.query<{ n: number }>('select count(*)::int as n from consents'))[0]?.n);
      const before = await consentCount();
      for (const [body, code, proxy] of refusals) {
        // Every missing field is its own message, all of the same code.
        assert.deepEqual(
          [...new Set(await codes(await post(body, proxy), 400))],
          [code],
          JSON.stringify(body),
        );
      }
      const missing = await json<TppMessages>(await post({ access: { accounts: [] } }, lax), 400);
      assert.ok(missing.tppMessages.every((message) => message.category === 'ERROR'));
      // X-Request-ID is required and must be a UUID; a fresh one comes back.
      const badId = await post(consentBody({ accounts: [] }), lax, { 'x-request-id': 'not a uuid' });
      assert.deepEqual(await codes(badId, 400), ['FORMAT_ERROR']);
      const strangeRedirect = await post(consentBody({ accounts: [] }), prism, {
        'tpp-redirect-uri': 'https://elsewhere.example/callback',
      });
      assert.deepEqual(await codes(strangeRedirect, 400), ['FORMAT_ERROR']);
      for (const address of ['not an address', '192.0.2.300', '']) {
        const badAddress = await post(consentBody({ accounts: [] }), lax, { 'psu-ip-address': address });
        assert.deepEqual(await codes(badAddress, 400), ['FORMAT_ERROR'], address);
      }
      assert.equal(await consentCount(), before);
    });
  });
}

// What the tests saw is their record in the conformance table: written on request, otherwise checked.
after(() => {
  if (observed.length === 0) return;
  keepRecord(
    'berlin-group-ais',
    recordOf('berlin-group', 'src/standards/berlin-group/ais.test.ts', observed, {
      createConsent:
        'bank-offered consents only (access lists empty); redirect SCA approach only; frequencyPerDay is recorded, not enforced',
      getTransactionList: 'booked transactions only (pending is always empty); JSON only (no camt/MT94x)',
    }),
  );
});
