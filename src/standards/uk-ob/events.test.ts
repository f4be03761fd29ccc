// The UK Open Banking v4.0 Events API (subscriptions, aggregated polling), exercised as a third party would,
// every request and response through Prism against the official file. A payment the app initiates through
// the Payment Initiation API shows up in its polling as a signed event notification. Also keeps its record in the
// conformance table (docs/conformance.md).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compactVerify, type createLocalJWKSet, decodeJwt, exportJWK, generateKeyPair } from 'jose';
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
  type ThirdPartyCall,
} from '../../testing/prism.ts';
import { keepRecord, recordOf } from '../conformance.ts';
import { EVENTS_PREFIX, RESOURCE_UPDATE } from './events.ts';
import { PISP_PREFIX } from './pisp.ts';

const TOKEN = 'uk-ob-events-test-operator-token-0123456789';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'uk ob events test password';
const SPEC = fileURLToPath(
  new URL('../../../specs/uk-open-banking-v4.0/events-openapi.yaml', import.meta.url),
);
const EXTERNAL_IBAN = 'GB33BUKB20201555555555';
const observed: Exchange[] = [];

interface Subscription {
  Data: { EventSubscriptionId: string; Version: string; EventTypes?: string[] };
}
interface Poll {
  moreAvailable: boolean;
  sets: Record<string, string>;
}
interface ObErrors {
  Errors: { ErrorCode: string; Message: string; Path?: string }[];
}

for (const database of testDatabases()) {
  describe(`UK Open Banking v4.0 Events on ${database.name}`, () => {
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
    let tppJwk: Record<string, unknown>;
    let alice: { customerId: string; accountIds: string[] };

    before(async () => {
      db = await database.open();
      bank = await bankBehindPrism(db, {
        spec: SPEC,
        prefix: EVENTS_PREFIX,
        adminToken: TOKEN,
        password: PASSWORD,
        aliceAccounts: [{ product: 'current', currency: 'GBP' }],
        aliceFunds: { amount: '100.00', from: 'Northwind Ltd' },
      });
      ({ built, issuer, prism, lax, developer, alice, bankKeys } = bank);
      const tpp = await generateKeyPair('PS256');
      tppKey = tpp.privateKey;
      // Registered by every app: the Payment Initiation API verifies request signatures with it.
      tppJwk = { ...(await exportJWK(tpp.publicKey)), kid: 'tpp-test', alg: 'PS256', use: 'sig' };
    });
    after(async () => {
      if (bank) observed.push(...(await bank.close()));
      await db?.close();
    });

    const newApp = async () =>
      newClientApp({ built, issuer }, developer, {
        name: `Event App ${++apps}`,
        scopes: ['openid', 'payments'],
        redirectUri: REDIRECT,
        jwks: { keys: [tppJwk] },
      });
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    // Every request body is signed as a third party signs, by the app the token was issued to (the bank
    // verifies it on a subscription's creation and change, which the specification says must be signed).
    const call = (proxy: PrismProxy, token: string, path: string, init: ThirdPartyCall = {}) =>
      callAsThirdParty(proxy, token, path, init, async (body) => ({
        'x-jws-signature': await detachedJws(
          tppKey,
          'tpp-test',
          body,
          obSignatureClaims(String(decodeJwt(token).client_id)),
        ),
      }));
    const json = async <T>(response: Response, status: number) => {
      const text = await response.text();
      assert.equal(response.status, status, text);
      return JSON.parse(text) as T;
    };
    const subscribe = async (a: TestApp, types?: string[]) =>
      json<Subscription>(
        await call(prism, a.appToken, '/event-subscriptions', {
          method: 'POST',
          body: { Data: { Version: '4.0', ...(types && { EventTypes: types }) } },
        }),
        201,
      );
    const poll = async (a: TestApp, body: object = {}) =>
      json<Poll>(await call(prism, a.appToken, '/events', { method: 'POST', body }), 200);
    const count = async (table: string) =>
      Number((await db.query<{ n: number }>(`select count(*)::int as n from ${table}`))[0]?.n);
    /** A domestic payment the app initiates for Alice through the Payment Initiation API. */
    const payThrough = async (a: TestApp, amount: string) => {
      const initiation = {
        InstructionIdentification: 'EVT1',
        EndToEndIdentification: 'EVT1',
        InstructedAmount: { Amount: amount, Currency: 'GBP' },
        CreditorAccount: { SchemeName: 'UK.OBIE.IBAN', Identification: EXTERNAL_IBAN, Name: 'Corner Shop' },
      };
      const post = async (token: string, path: string, body: object) => {
        const text = JSON.stringify(body);
        const response = await fetch(`${issuer}${PISP_PREFIX}${path}`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            'x-idempotency-key': `events-${++keys}`,
            'x-jws-signature': await detachedJws(tppKey, 'tpp-test', text, obSignatureClaims(a.id)),
          },
          body: text,
        });
        assert.equal(response.status, 201, await response.clone().text());
        return (await response.json()) as { Data: Record<string, string> };
      };
      const consent = await post(a.appToken, '/domestic-payment-consents', {
        Data: { Initiation: initiation },
        Risk: {},
      });
      const consentId = consent.Data.ConsentId ?? '';
      const { accessToken } = await authoriseConsent({
        issuer,
        config: a.config,
        redirectUri: REDIRECT,
        scope: 'openid payments',
        type: 'payment_initiation',
        consentId,
        username: 'alice',
        password: PASSWORD,
        accounts: [alice.accountIds[0] ?? ''],
      });
      const payment = await post(accessToken, '/domestic-payments', {
        Data: { ConsentId: consentId, Initiation: initiation },
        Risk: {},
      });
      return payment.Data.DomesticPaymentId ?? '';
    };
    const claimsOf = async (token: string) => {
      const { payload } = await compactVerify(token, bankKeys);
      return JSON.parse(new TextDecoder().decode(payload)) as {
        jti: string;
        aud: string;
        sub: string;
        events: Record<string, { subject: Record<string, unknown> }>;
      };
    };

    it('creates, lists, changes and deletes an app’s one subscription', async () => {
      const a = await newApp();
      const created = await subscribe(a, [RESOURCE_UPDATE]);
      const id = created.Data.EventSubscriptionId;
      assert.deepEqual(created.Data, {
        EventSubscriptionId: id,
        Version: '4.0',
        EventTypes: [RESOURCE_UPDATE],
      });
      // One per app: a second is a conflict, and nothing is added.
      const again = await call(prism, a.appToken, '/event-subscriptions', {
        method: 'POST',
        body: { Data: { Version: '4.0' } },
      });
      assert.equal(again.status, 409);
      const listed = await json<{ Data: { EventSubscription: Subscription['Data'][] } }>(
        await call(prism, a.appToken, '/event-subscriptions'),
        200,
      );
      assert.deepEqual(listed.Data.EventSubscription, [created.Data]);
      const changed = await json<Subscription>(
        await call(prism, a.appToken, `/event-subscriptions/${id}`, {
          method: 'PUT',
          body: { Data: { EventSubscriptionId: id, Version: '4.0' } },
        }),
        200,
      );
      assert.deepEqual(changed.Data, { EventSubscriptionId: id, Version: '4.0' });
      const mismatched = await call(prism, a.appToken, `/event-subscriptions/${id}`, {
        method: 'PUT',
        body: { Data: { EventSubscriptionId: 'another', Version: '4.0' } },
      });
      assert.equal((await json<ObErrors>(mismatched, 400)).Errors[0]?.Path, 'Data.EventSubscriptionId');
      // Another app neither sees nor deletes it.
      const b = await newApp();
      const foreign = await call(prism, b.appToken, `/event-subscriptions/${id}`, { method: 'DELETE' });
      assert.equal(foreign.status, 400);
      assert.deepEqual(
        (await json<Subscription[]>(await call(prism, b.appToken, '/event-subscriptions'), 200)) as unknown,
        {
          Data: { EventSubscription: [] },
          Links: { Self: `${issuer}${EVENTS_PREFIX}/event-subscriptions` },
          Meta: {},
        },
      );
      const deleted = await call(prism, a.appToken, `/event-subscriptions/${id}`, { method: 'DELETE' });
      assert.equal(deleted.status, 204);
      const gone = await call(prism, a.appToken, `/event-subscriptions/${id}`, { method: 'DELETE' });
      assert.equal(gone.status, 400);
    });

    it('refuses bad subscriptions and bad polls, creating and acknowledging nothing', async () => {
      const a = await newApp();
      const before = await count('ob_event_subscriptions');
      const bad = [
        { Data: { Version: '4.0', CallbackUrl: 'https://tpp.example/callbacks' } },
        {
          Data: {
            Version: '4.0',
            EventTypes: ['urn:uk:org:openbanking:events:consent-authorization-revoked'],
          },
        },
      ];
      for (const body of bad) {
        const response = await call(prism, a.appToken, '/event-subscriptions', { method: 'POST', body });
        assert.deepEqual(
          (await json<ObErrors>(response, 400)).Errors.map((e) => e.ErrorCode),
          ['U002'],
        );
      }
      // The spec's schema refuses a missing Version: sent past the request check, the bank refuses it too.
      const missing = await call(lax, a.appToken, '/event-subscriptions', {
        method: 'POST',
        body: { Data: {} },
      });
      assert.equal(missing.status, 400);
      // Unsigned, or signed with a key the app never registered: refused before anything is kept.
      const body = { Data: { Version: '4.0' } };
      const unsigned = await callAsThirdParty(lax, a.appToken, '/event-subscriptions', {
        method: 'POST',
        body,
      });
      assert.deepEqual(
        (await json<ObErrors>(unsigned, 400)).Errors.map((e) => [e.ErrorCode, e.Path]),
        [['U019', 'x-jws-signature']],
      );
      const stranger = (await generateKeyPair('PS256')).privateKey;
      const forged = await callAsThirdParty(
        prism,
        a.appToken,
        '/event-subscriptions',
        { method: 'POST', body },
        async (text) => ({
          'x-jws-signature': await detachedJws(stranger, 'tpp-test', text, obSignatureClaims(a.id)),
        }),
      );
      assert.deepEqual(
        (await json<ObErrors>(forged, 400)).Errors.map((e) => [e.ErrorCode, e.Path]),
        [['U015', 'x-jws-signature']],
      );
      assert.equal(await count('ob_event_subscriptions'), before);
      // Polling before subscribing, and acknowledging what is not a jti.
      assert.equal((await call(prism, a.appToken, '/events', { method: 'POST', body: {} })).status, 400);
      await subscribe(a);
      const paymentId = await payThrough(a, '1.00');
      assert.ok(paymentId);
      const answers = await count('ob_event_answers');
      const [jti] = Object.keys((await poll(a)).sets);
      assert.ok(jti);
      const malformed = await call(prism, a.appToken, '/events', {
        method: 'POST',
        body: { ack: [jti, 'not-a-jti'] },
      });
      assert.equal((await json<ObErrors>(malformed, 400)).Errors[0]?.Path, 'ack.1');
      assert.equal(await count('ob_event_answers'), answers, 'the valid jti beside it is not acknowledged');
      const negative = await call(lax, a.appToken, '/events', { method: 'POST', body: { maxEvents: -1 } });
      assert.equal(negative.status, 400);
      // The refused poll acknowledged nothing: the event is still offered.
      assert.ok(Object.keys((await poll(a)).sets).includes(jti));
    });

    it('polls a payment’s events as signed notifications; acks remove them; no other app sees them', async () => {
      const a = await newApp();
      const b = await newApp();
      await subscribe(a);
      await subscribe(b);
      const paymentId = await payThrough(a, '2.50');
      const first = await poll(a);
      assert.equal(first.moreAvailable, false);
      const jtis = Object.keys(first.sets);
      assert.ok(jtis.length >= 1, 'the payment has events');
      for (const jti of jtis) {
        const claims = await claimsOf(first.sets[jti] ?? '');
        assert.equal(claims.jti, jti);
        assert.equal(claims.aud, a.id);
        assert.equal(claims.sub, `${issuer}${PISP_PREFIX}/domestic-payments/${paymentId}`);
        assert.equal(claims.events[RESOURCE_UPDATE]?.subject['http://openbanking.org.uk/rid'], paymentId);
      }
      // The other app has its own subscription and sees none of them, and cannot acknowledge them.
      assert.deepEqual((await poll(b, { ack: jtis })).sets, {});
      assert.deepEqual(Object.keys((await poll(a)).sets), jtis);
      // maxEvents 0 returns nothing yet says more are there.
      assert.deepEqual(await poll(a, { maxEvents: 0 }), { moreAvailable: true, sets: {} });
      // Acknowledged and errored events are not offered again.
      const [firstJti, ...rest] = jtis;
      const setErrs = firstJti ? { [firstJti]: { err: 'jwtIss', description: 'unknown issuer' } } : {};
      const after = await poll(a, { ack: rest, setErrs });
      assert.deepEqual(after, { moreAvailable: false, sets: {} });
      // Settlement brings a new event, and only that one.
      // (The settlement cycle also settles the earlier tests' payments: other apps' events.)
      assert.ok(((await built.payments?.settleCycle())?.settled ?? 0) >= 1);
      const settled = Object.values((await poll(a)).sets);
      assert.equal(settled.length, 1);
      assert.equal(
        (await claimsOf(settled[0] ?? '')).sub,
        `${issuer}${PISP_PREFIX}/domestic-payments/${paymentId}`,
      );
      assert.deepEqual((await poll(b)).sets, {});
    });
  });
}

// What the tests saw is their record in the conformance table: written on request, otherwise checked.
after(() => {
  if (observed.length === 0) return;
  keepRecord(
    'uk-ob-events',
    recordOf('uk-ob-events', 'src/standards/uk-ob/events.test.ts', observed, {
      CreateEventSubscriptions: 'no CallbackUrl: aggregated polling only',
      CreateEvents: 'no long polling: returnImmediately is always so',
    }),
  );
});
