// The Berlin Group NextGenPSD2 1.3.9 authorisation sub-resources of consents and payment initiations,
// exercised as a third party would, every call through Prism against the official file: started implicitly
// or explicitly, their SCA status following the customer at the bank's consent page, refused where the
// redirect approach has nothing to take. Also keeps its record in the conformance table (docs/conformance.md).
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
  type Exchange,
  type PrismProxy,
  type ThirdPartyCall,
  tppMessageCodes,
} from '../../testing/prism.ts';
import { keepRecord, recordOf } from '../conformance.ts';
import { BG_PREFIX } from './ais.ts';

const TOKEN = 'bg-sca-operator-token-0123456789abcdef';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'berlin group test password';
const SPEC = fileURLToPath(
  new URL('../../../specs/berlin-group-nextgenpsd2-1.3.9/psd2-api-1.3.9.yaml', import.meta.url),
);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const INST = '/v1/payments/instant-sepa-credit-transfers';
const EXPLICIT = { 'tpp-explicit-authorisation-preferred': 'true' };
const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
const observed: Exchange[] = [];

type Links = Record<string, { href: string }>;
interface Started {
  scaStatus: string;
  authorisationId: string;
  _links: Links;
}
interface TppMessages {
  tppMessages: { category: string; code: string; text?: string; path?: string }[];
  _links?: Links;
}

for (const database of testDatabases()) {
  describe(`Berlin Group NextGenPSD2 1.3.9 authorisations on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let issuer: string;
    let prism: PrismProxy;
    let lax: PrismProxy;
    let bank: BankBehindPrism;
    let developer: Record<string, string>;
    let apps = 0;
    let alice: { customerId: string; accountIds: string[] };
    let bob: { customerId: string; accountIds: string[] };
    let aliceIban = '';
    let bobIban = '';

    before(async () => {
      db = await database.open();
      bank = await bankBehindPrism(db, {
        spec: SPEC,
        prefix: BG_PREFIX,
        adminToken: TOKEN,
        password: PASSWORD,
        aliceAccounts: [{ product: 'current', currency: 'EUR' }],
        bobAccounts: [{ product: 'current', currency: 'EUR' }],
        aliceFunds: { amount: '100.00', from: 'Northwind GmbH' },
      });
      ({ built, issuer, prism, lax, developer, alice, bob } = bank);
      [aliceIban, bobIban] = await Promise.all([
        bank.ibanOf(alice.accountIds[0]),
        bank.ibanOf(bob.accountIds[0]),
      ]);
    });
    after(async () => {
      if (bank) observed.push(...(await bank.close()));
      await db?.close();
    });

    const newApp = async () =>
      newClientApp({ built, issuer }, developer, {
        name: `Freigabe ${++apps}`,
        scopes: ['openid', 'accounts', 'payments'],
        redirectUri: REDIRECT,
      });
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    const call = (token: string, path: string, init: ThirdPartyCall & { proxy?: PrismProxy } = {}) =>
      berlinGroupCall(init.proxy ?? prism, token, path, init);
    const json = berlinGroupAnswer;
    const codes = tppMessageCodes;
    const createConsent = async (app: TestApp, headers: Record<string, string> = {}) =>
      json<{ consentId: string; _links: Links }>(
        await call(app.appToken, '/v1/consents', {
          method: 'POST',
          body: {
            access: { accounts: [], balances: [] },
            recurringIndicator: true,
            validUntil: inDays(30),
            frequencyPerDay: 4,
            combinedServiceIndicator: false,
          },
          headers: { 'tpp-redirect-uri': REDIRECT, ...headers },
        }),
        201,
      );
    const initiate = async (app: TestApp, amount: string, headers: Record<string, string> = {}) =>
      json<{ paymentId: string; transactionStatus: string; _links: Links }>(
        await call(app.appToken, INST, {
          method: 'POST',
          body: {
            debtorAccount: { iban: aliceIban },
            instructedAmount: { currency: 'EUR', amount },
            creditorAccount: { iban: bobIban },
            creditorName: 'Bob Baker',
            remittanceInformationUnstructured: 'Pizza',
          },
          headers: { 'tpp-redirect-uri': REDIRECT, ...headers },
        }),
        201,
      );
    const start = (app: TestApp, resource: string, init: ThirdPartyCall & { proxy?: PrismProxy } = {}) =>
      call(app.appToken, `${resource}/authorisations`, {
        method: 'POST',
        ...init,
        headers: { 'tpp-redirect-uri': REDIRECT, ...init.headers },
      });
    const ids = async (app: TestApp, resource: string) =>
      (
        await json<{ authorisationIds: string[] }>(
          await call(app.appToken, `${resource}/authorisations`),
          200,
        )
      ).authorisationIds;
    const scaStatus = async (app: TestApp, resource: string, id: string) =>
      (await json<{ scaStatus: string }>(await call(app.appToken, `${resource}/authorisations/${id}`), 200))
        .scaStatus;
    /** Alice at the bank's page, from the link the authorisation gave. */
    const atTheBank = (app: TestApp, link: string | undefined, decision: 'approve' | 'decline' = 'approve') =>
      followConsentLink({
        issuer,
        config: app.config,
        link: link ?? '',
        username: 'alice',
        password: PASSWORD,
        accounts: alice.accountIds,
        decision,
      });
    const pathOf = (href: string | undefined) => new URL(href ?? '').pathname.replace(BG_PREFIX, '');

    it("starts a consent's authorisation explicitly; its status goes from started to finalised when the customer approves at the bank", async () => {
      const app = await newApp();
      const consent = await createConsent(app, EXPLICIT);
      const resource = `/v1/consents/${consent.consentId}`;
      // Explicit start preferred: no redirect yet, a link to start the authorisation instead.
      assert.equal(consent._links.scaRedirect, undefined);
      assert.equal(pathOf(consent._links.startAuthorisation?.href), `${resource}/authorisations`);
      assert.deepEqual(await ids(app, resource), []);

      const requestId = randomUUID();
      const response = await start(app, resource, { headers: { 'x-request-id': requestId } });
      assert.equal(response.headers.get('x-request-id'), requestId);
      assert.equal(response.headers.get('aspsp-sca-approach'), 'REDIRECT');
      const started = await json<Started>(response, 201);
      assert.equal(started.scaStatus, 'started');
      assert.match(started.authorisationId, UUID);
      assert.equal(
        pathOf(started._links.scaStatus?.href),
        `${resource}/authorisations/${started.authorisationId}`,
      );
      const redirect = new URL(started._links.scaRedirect?.href ?? '');
      assert.equal(`${redirect.origin}${redirect.pathname}`, `${issuer}/oauth/authorize`);
      assert.equal(redirect.searchParams.get('redirect_uri'), REDIRECT);
      assert.deepEqual(JSON.parse(redirect.searchParams.get('authorization_details') ?? ''), [
        { type: 'account_information', consentId: consent.consentId },
      ]);
      assert.deepEqual(await ids(app, resource), [started.authorisationId]);
      assert.equal(await scaStatus(app, resource, started.authorisationId), 'started');

      // One SCA per consent: a second start is refused, pointing at the first.
      const again = await json<TppMessages>(await start(app, resource), 409);
      assert.deepEqual(
        again.tppMessages.map((message) => message.code),
        ['STATUS_INVALID'],
      );
      assert.equal(
        pathOf(again._links?.scaStatus?.href),
        `${resource}/authorisations/${started.authorisationId}`,
      );

      const token = await atTheBank(app, started._links.scaRedirect?.href);
      assert.ok(token);
      assert.equal(await scaStatus(app, resource, started.authorisationId), 'finalised');
      assert.deepEqual(await json(await call(app.appToken, `${resource}/status`), 200), {
        consentStatus: 'valid',
      });
      const listed = await json<{ accounts: unknown[] }>(
        await call(token, '/v1/accounts', { headers: { 'consent-id': consent.consentId } }),
        200,
      );
      assert.equal(listed.accounts.length, 1);
      // Authorised: nothing is left to start, and the status stays finalised after the consent ends.
      assert.deepEqual(await codes(await start(app, resource), 409), ['STATUS_INVALID']);
      await call(app.appToken, resource, { method: 'DELETE' });
      assert.equal(await scaStatus(app, resource, started.authorisationId), 'finalised');
    });

    it('starts the authorisation implicitly with the consent; declined at the bank, or deleted while waiting, it fails', async () => {
      const app = await newApp();
      const declined = await createConsent(app);
      const resource = `/v1/consents/${declined.consentId}`;
      const link = pathOf(declined._links.scaStatus?.href);
      const [id = ''] = await ids(app, resource);
      assert.equal(link, `${resource}/authorisations/${id}`);
      assert.equal(await scaStatus(app, resource, id), 'started');
      assert.deepEqual(await codes(await start(app, resource), 409), ['STATUS_INVALID']);
      assert.equal(await atTheBank(app, declined._links.scaRedirect?.href, 'decline'), undefined);
      assert.equal(await scaStatus(app, resource, id), 'failed');
      assert.deepEqual(await json(await call(app.appToken, `${resource}/status`), 200), {
        consentStatus: 'rejected',
      });

      const deleted = await createConsent(app);
      const [other = ''] = await ids(app, `/v1/consents/${deleted.consentId}`);
      await call(app.appToken, `/v1/consents/${deleted.consentId}`, { method: 'DELETE' });
      assert.equal(await scaStatus(app, `/v1/consents/${deleted.consentId}`, other), 'failed');
      // An authorisation of another consent is not one of this consent's.
      assert.deepEqual(
        await codes(await call(app.appToken, `/v1/consents/${deleted.consentId}/authorisations/${id}`), 404),
        ['RESOURCE_UNKNOWN'],
      );
    });

    it('refuses PSU data and PSU data updates, which the redirect approach does not take, changing nothing', async () => {
      const app = await newApp();
      const consent = await createConsent(app, EXPLICIT);
      const resource = `/v1/consents/${consent.consentId}`;
      // Sent past Prism's request check: the spec's oneOf with an empty schema cannot tell these bodies apart.
      assert.deepEqual(
        await codes(
          await start(app, resource, { body: { psuData: { password: 'secret' } }, proxy: lax }),
          400,
        ),
        ['SERVICE_INVALID'],
      );
      assert.deepEqual(await ids(app, resource), []);
      const { authorisationId } = await json<Started>(await start(app, resource, { body: {} }), 201);
      const at = `${resource}/authorisations/${authorisationId}`;
      assert.deepEqual(await codes(await call(app.appToken, at, { method: 'PUT', body: {} }), 405), [
        'SERVICE_INVALID',
      ]);
      assert.deepEqual(
        await codes(
          await call(app.appToken, at, {
            method: 'PUT',
            body: { confirmationCode: 'abc123' },
            proxy: lax,
          }),
          405,
        ),
        ['SERVICE_INVALID'],
      );
      assert.deepEqual(
        await codes(
          await call(app.appToken, `${resource}/authorisations/${randomUUID()}`, {
            method: 'PUT',
            body: {},
          }),
          404,
        ),
        ['RESOURCE_UNKNOWN'],
      );
      assert.deepEqual(await codes(await call(app.appToken, `${resource}/authorisations/not-an-id`), 404), [
        'RESOURCE_UNKNOWN',
      ]);
      assert.equal(await scaStatus(app, resource, authorisationId), 'started');
    });

    it("authorises a payment: started, finalised at the bank's page, then it executes", async () => {
      const app = await newApp();
      const payment = await initiate(app, '12.50', EXPLICIT);
      const resource = `${INST}/${payment.paymentId}`;
      assert.equal(payment._links.scaRedirect, undefined);
      assert.equal(pathOf(payment._links.startAuthorisation?.href), `${resource}/authorisations`);
      assert.deepEqual(await ids(app, resource), []);
      const started = await json<Started>(await start(app, resource), 201);
      assert.equal(started.scaStatus, 'started');
      assert.deepEqual(
        JSON.parse(
          new URL(started._links.scaRedirect?.href ?? '').searchParams.get('authorization_details') ?? '',
        ),
        [{ type: 'payment_initiation', consentId: payment.paymentId }],
      );
      assert.deepEqual(await ids(app, resource), [started.authorisationId]);
      assert.equal(await scaStatus(app, resource, started.authorisationId), 'started');
      assert.deepEqual(await codes(await start(app, resource), 409), ['STATUS_INVALID']);
      const bobBefore = await balance(bob.accountIds[0]);

      await atTheBank(app, started._links.scaRedirect?.href);
      assert.equal(await scaStatus(app, resource, started.authorisationId), 'finalised');
      const status = await json<{ transactionStatus: string }>(
        await call(app.appToken, `${resource}/status`),
        200,
      );
      assert.equal(status.transactionStatus, 'ACCC');
      assert.equal(await balance(bob.accountIds[0]), (bobBefore ?? 0n) + 1250n);
      // Executed: the SCA stays finalised, and there is nothing left to authorise or update.
      assert.equal(await scaStatus(app, resource, started.authorisationId), 'finalised');
      assert.deepEqual(await codes(await start(app, resource), 409), ['STATUS_INVALID']);
      assert.deepEqual(
        await codes(
          await call(app.appToken, `${resource}/authorisations/${started.authorisationId}`, {
            method: 'PUT',
            body: {},
          }),
          405,
        ),
        ['SERVICE_INVALID'],
      );
      assert.ok((await built.ledger.verify()).ok);
    });

    it("links a payment's implicit authorisation; cancelled before the customer acts, it fails and nothing moves", async () => {
      const app = await newApp();
      const payment = await initiate(app, '3.00');
      const resource = `${INST}/${payment.paymentId}`;
      const [id = ''] = await ids(app, resource);
      assert.equal(pathOf(payment._links.scaStatus?.href), `${resource}/authorisations/${id}`);
      assert.equal(await scaStatus(app, resource, id), 'started');
      const before = await balance(alice.accountIds[0]);
      assert.equal((await call(app.appToken, resource, { method: 'DELETE' })).status, 204);
      assert.equal(await scaStatus(app, resource, id), 'failed');
      assert.equal(await balance(alice.accountIds[0]), before);
      assert.deepEqual(await codes(await start(app, resource), 409), ['STATUS_INVALID']);
    });

    it("keeps one app's authorisations from another", async () => {
      const owner = await newApp();
      const stranger = await newApp();
      const consent = await createConsent(owner);
      const payment = await initiate(owner, '1.00');
      const consentAt = `/v1/consents/${consent.consentId}`;
      const paymentAt = `${INST}/${payment.paymentId}`;
      const [consentAuth = ''] = await ids(owner, consentAt);
      const [paymentAuth = ''] = await ids(owner, paymentAt);
      for (const [resource, id, status, code] of [
        [consentAt, consentAuth, 403, 'CONSENT_UNKNOWN'],
        [paymentAt, paymentAuth, 404, 'RESOURCE_UNKNOWN'],
      ] as const) {
        for (const [method, path, body] of [
          ['POST', `${resource}/authorisations`, undefined],
          ['GET', `${resource}/authorisations`, undefined],
          ['GET', `${resource}/authorisations/${id}`, undefined],
          ['PUT', `${resource}/authorisations/${id}`, {}],
        ] as const) {
          assert.deepEqual(
            await codes(await call(stranger.appToken, path, { method, ...(body && { body }) }), status),
            [code],
            `${method} ${path}`,
          );
        }
        assert.equal(await scaStatus(owner, resource, id), 'started');
      }
      // A payment's authorisation is not reached under another product.
      assert.deepEqual(
        await codes(
          await call(
            owner.appToken,
            `/v1/payments/sepa-credit-transfers/${payment.paymentId}/authorisations/${paymentAuth}`,
          ),
          404,
        ),
        ['RESOURCE_UNKNOWN'],
      );
    });

    const balance = async (accountId: string | undefined) => {
      const account = await built.accounts?.find(accountId ?? '');
      assert.ok(account);
      return (await built.accounts?.balances(account))?.posted;
    };
  });
}

// What the tests saw is their record in the conformance table: written on request, otherwise checked.
after(() => {
  if (observed.length === 0) return;
  keepRecord(
    'berlin-group-authorisations',
    recordOf('berlin-group', 'src/standards/berlin-group/authorisations.test.ts', observed, {
      updateConsentsPsuData:
        'redirect approach only: no PSU data or confirmation code is taken, every update is 405 SERVICE_INVALID',
      updatePaymentPsuData:
        'redirect approach only: no PSU data or confirmation code is taken, every update is 405 SERVICE_INVALID',
    }),
  );
});
