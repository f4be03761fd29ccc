// Mandates end to end: a merchant app proposes one, the customer authorises it at the consent page (seeing its
// limits, currency, expiry and merchant, choosing the account), the app charges it without the customer, each
// charge within the limits even when many arrive at once, the customer sees and revokes it, the app refunds
// charges in part or whole; every refusal leaves the money where it was, and the ledger balances.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse as InjectResponse } from 'fastify';
import { eventsAbout } from '../events/outbox.ts';
import type { BuiltApp } from '../main.ts';
import { createCustomer, newClientApp, signUpDeveloper, startBank } from '../testing/bank.ts';
import { inProcess, json, problem } from '../testing/calls.ts';
import { authoriseConsent } from '../testing/consent-flow.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { Mandates } from './service.ts';

const TOKEN = 'mandates-test-operator-token-0123456789abcdef';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'mandates test password';
// Valid, and not an account of this bank.
const EXTERNAL_IBAN = 'DE89370400440532013000';
const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();

interface MandateJson {
  id: string;
  clientId: string;
  status: string;
  currency: string;
  maxPerCharge: string;
  periodicLimits: {
    period: string;
    maxAmount: string;
    periodStart?: string;
    periodEnd?: string;
    charged?: string;
    remaining?: string;
  }[];
  creditor: { name: string; iban: string };
  debtorAccountId: string | null;
  expiresAt: string;
}
interface ChargeJson {
  id: string;
  mandateId: string;
  paymentId: string;
  status: string;
  failureCode: string | null;
  instructedAmount: { amount: string; currency: string };
  refunded: string;
  reference: string | null;
}
interface RefundJson {
  id: string;
  chargeId: string;
  status: string;
  failureCode: string | null;
  instructedAmount: { amount: string; currency: string };
}
type Customer = { customerId: string; accountIds: string[]; ledgerAccountIds: string[] };

for (const database of testDatabases()) {
  describe(`mandates on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let issuer: string;
    let developer: Record<string, string>;
    let apps = 0;
    let keys = 0;
    let alice: Customer;
    let bob: Customer;
    let carol: Customer;
    let rideCo: Customer;
    let aliceCurrent: string;
    let aliceSavings: string;
    let aliceGbp: string;
    let carolCurrent: string;
    let rideCoAccount: string;
    const ibanOf = new Map<string, string>();

    // ---- calls --------------------------------------------------------------------------------------------

    const inApp = inProcess(() => built.app);
    const call = inApp.call;
    const nextKey = () => `mandate-key-${++keys}`;

    const signIn = (username: string) => inApp.signIn(username, PASSWORD);

    // ---- money --------------------------------------------------------------------------------------------

    const posted = async (accountId: string) => {
      const account = await built.accounts?.find(accountId);
      assert.ok(account, accountId);
      return (await built.accounts?.balances(account))?.posted ?? 0n;
    };
    const receive = async (accountId: string, amount: string, currency = 'EUR') =>
      json(
        await call('POST', '/v1/sandbox/incoming-payments', {
          token: TOKEN,
          key: `incoming-${++keys}`,
          body: {
            creditorIban: ibanOf.get(accountId),
            instructedAmount: { amount, currency },
            debtor: { name: 'Northwind Ltd' },
          },
        }),
        201,
      );
    const count = async (table: string) =>
      Number((await db.query<{ n: number }>(`select count(*)::int as n from ${table}`))[0]?.n);
    /** Everything a refused request must leave as it was. */
    const snapshot = async () => ({
      alice: await posted(aliceCurrent),
      carol: await posted(carolCurrent),
      rideCo: await posted(rideCoAccount),
      mandates: await count('mandates'),
      consents: await count('consents'),
      charges: await count('mandate_charges'),
      refunds: await count('mandate_refunds'),
      payments: await count('payments'),
    });

    // ---- apps, mandates, the customer's authorisation ---------------------------------------------------

    const newApp = () =>
      newClientApp({ built, issuer }, developer, {
        name: `Ride Co ${++apps}`,
        scopes: ['openid', 'payments'],
        redirectUri: REDIRECT,
      });
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    const terms = (overrides: Record<string, unknown> = {}) => ({
      currency: 'EUR',
      maxPerCharge: '30.00',
      periodicLimits: [{ period: 'month', maxAmount: '200.00' }],
      creditor: { name: 'Ride Co Ltd', iban: ibanOf.get(rideCoAccount) },
      expiresAt: inDays(90),
      ...overrides,
    });
    const propose = (app: TestApp, overrides: Record<string, unknown> = {}) =>
      call('POST', '/v1/mandates', { token: app.appToken, body: terms(overrides) });

    /** The customer authorises the mandate at the bank, choosing `account`: the consent page's HTML. */
    const authorise = async (
      app: TestApp,
      mandateId: string,
      { username = 'alice', account = aliceCurrent } = {},
    ) => {
      const { page } = await authoriseConsent({
        issuer,
        config: app.config,
        redirectUri: REDIRECT,
        scope: 'openid payments',
        type: 'mandate',
        consentId: mandateId,
        username,
        password: PASSWORD,
        accounts: [account],
      });
      return page;
    };
    /** A mandate the customer authorised: its id. */
    const authorisedMandate = async (
      app: TestApp,
      overrides: Record<string, unknown> = {},
      who: { username?: string; account?: string } = {},
    ) => {
      const mandate = json<MandateJson>(await propose(app, overrides), 201);
      await authorise(app, mandate.id, who);
      return mandate.id;
    };
    const charge = (
      app: TestApp,
      mandateId: string,
      amount: string,
      key = nextKey(),
      extra: Record<string, unknown> = {},
    ) =>
      call('POST', `/v1/mandates/${mandateId}/charges`, {
        token: app.appToken,
        key,
        body: { instructedAmount: { amount, currency: 'EUR' }, ...extra },
      });
    const refund = (app: TestApp, mandateId: string, chargeId: string, amount: string, key = nextKey()) =>
      call('POST', `/v1/mandates/${mandateId}/charges/${chargeId}/refunds`, {
        token: app.appToken,
        key,
        body: { instructedAmount: { amount, currency: 'EUR' } },
      });
    const mandateOf = async (app: TestApp, id: string) =>
      json<MandateJson>(await call('GET', `/v1/mandates/${id}`, { token: app.appToken }));

    before(async () => {
      db = await database.open();
      ({ built, issuer } = await startBank(db, { adminToken: TOKEN }));
      developer = await signUpDeveloper(built.app, 'mandates-dev@example.com', PASSWORD);
      alice = await createCustomer(built, {
        username: 'alice',
        password: PASSWORD,
        legalName: 'Alice Able',
        accounts: [
          { product: 'current', currency: 'EUR' },
          { product: 'savings', currency: 'EUR' },
          { product: 'current', currency: 'GBP' },
        ],
      });
      bob = await createCustomer(built, { username: 'bob', password: PASSWORD, legalName: 'Bob Baker' });
      carol = await createCustomer(built, { username: 'carol', password: PASSWORD, legalName: 'Carol Cole' });
      rideCo = await createCustomer(built, {
        username: 'rideco',
        password: PASSWORD,
        legalName: 'Ride Co Ltd',
        accounts: [
          { product: 'current', currency: 'EUR' },
          { product: 'current', currency: 'GBP' },
        ],
      });
      // Charges come fast here, as no customer's would: the fraud rules stay off but for the one test that
      // turns one on.
      for (const rule of (await built.fraud?.rules()) ?? []) {
        await built.fraud?.updateRule(rule.id, { enabled: false, changedBy: 'mandates-test' });
      }
      [aliceCurrent = '', aliceSavings = '', aliceGbp = ''] = alice.accountIds;
      [carolCurrent = ''] = carol.accountIds;
      [rideCoAccount = ''] = rideCo.accountIds;
      for (const id of [...alice.accountIds, ...bob.accountIds, carolCurrent, ...rideCo.accountIds]) {
        ibanOf.set(id, (await built.accounts?.find(id))?.iban ?? '');
      }
      await receive(aliceCurrent, '5000.00');
      await receive(carolCurrent, '10.00');
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    it('is authorised at the consent page with its terms shown, then charged without the customer', async () => {
      const app = await newApp();
      const proposed = json<MandateJson>(await propose(app), 201);
      assert.deepEqual(
        { ...proposed, id: undefined, expiresAt: undefined },
        {
          id: undefined,
          clientId: app.id,
          status: 'awaiting_authorisation',
          currency: 'EUR',
          maxPerCharge: '30.00',
          periodicLimits: [{ period: 'month', maxAmount: '200.00' }],
          creditor: { name: 'Ride Co Ltd', iban: ibanOf.get(rideCoAccount) },
          debtorAccountId: null,
          createdAt: (proposed as unknown as { createdAt: string }).createdAt,
          statusUpdatedAt: (proposed as unknown as { statusUpdatedAt: string }).statusUpdatedAt,
          expiresAt: undefined,
        },
      );
      // Nothing to charge before the customer said yes.
      assert.deepEqual(problem(await charge(app, proposed.id, '5.00')), [409, 'mandate_not_active']);

      const page = await authorise(app, proposed.id);
      assert.match(page, /Take payments from your account without asking you each time/);
      assert.match(page, new RegExp(`paid to Ride Co Ltd \\(${ibanOf.get(rideCoAccount)}\\)`));
      assert.match(page, /at most 30\.00 EUR a payment/);
      assert.match(page, /at most 200\.00 EUR a calendar month \(UTC\)/);
      assert.match(page, new RegExp(`until ${proposed.expiresAt.slice(0, 10)}`));
      // The account picker offers the EUR accounts only, one to choose.
      assert.ok(page.includes(aliceCurrent) && page.includes(aliceSavings));
      assert.ok(!page.includes(aliceGbp), 'a GBP account cannot pay a EUR mandate');
      assert.match(page, /type="radio" name="account"/);

      const authorised = await mandateOf(app, proposed.id);
      assert.equal(authorised.status, 'authorised');
      assert.equal(authorised.debtorAccountId, aliceCurrent);

      const before = await snapshot();
      const response = await charge(app, proposed.id, '12.50', 'ride-1', { reference: 'Ride 1' });
      const charged = json<ChargeJson>(response, 201);
      assert.equal(response.headers['idempotent-replayed'], undefined);
      assert.deepEqual(
        [charged.status, charged.instructedAmount, charged.refunded, charged.reference, charged.failureCode],
        ['succeeded', { amount: '12.50', currency: 'EUR' }, '0.00', 'Ride 1', null],
      );
      assert.equal(await posted(aliceCurrent), before.alice - 1250n);
      assert.equal(await posted(rideCoAccount), before.rideCo + 1250n);
      // A real payment: the app sees it among its payments, paid under the mandate's consent.
      const payment = json<{ status: string; consentId: string; debtorAccountId: string; type: string }>(
        await call('GET', `/v1/payments/${charged.paymentId}`, { token: app.appToken }),
      );
      assert.deepEqual(
        [payment.status, payment.consentId, payment.debtorAccountId, payment.type],
        ['settled', proposed.id, aliceCurrent, 'internal'],
      );

      // The same request again replays the charge; the key with another amount is refused. Nothing moves.
      const replay = await charge(app, proposed.id, '12.50', 'ride-1', { reference: 'Ride 1' });
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      assert.equal(json<ChargeJson>(replay, 201).id, charged.id);
      assert.deepEqual(problem(await charge(app, proposed.id, '12.51', 'ride-1')), [
        422,
        'idempotency_key_reused',
      ]);
      assert.equal(await posted(aliceCurrent), before.alice - 1250n);

      const usage = (await mandateOf(app, proposed.id)).periodicLimits[0];
      assert.deepEqual([usage?.charged, usage?.remaining], ['12.50', '187.50']);
      assert.equal(usage?.periodStart?.slice(8), '01T00:00:00.000Z', 'a calendar month, from the 1st (UTC)');

      // Webhooks: the consent's lifecycle events and the charge's, each naming the app.
      const consentEvents = await eventsAbout(db, proposed.id);
      assert.deepEqual(
        consentEvents.map((event) => [event.type, event.payload.type, event.payload.clientId]),
        [
          ['consent.created', 'mandate', app.id],
          ['consent.authorised', 'mandate', app.id],
        ],
      );
      const chargeEvents = await eventsAbout(db, charged.id);
      assert.deepEqual(
        chargeEvents.map((event) => [event.type, event.payload.status, event.payload.clientId]),
        [
          ['mandate.charge.created', 'pending', app.id],
          ['mandate.charge.succeeded', 'succeeded', app.id],
        ],
      );
    });

    it('refuses terms it cannot honour, and records nothing', async () => {
      const app = await newApp();
      const before = await snapshot();
      const refused = async (overrides: Record<string, unknown>) => problem(await propose(app, overrides));
      assert.deepEqual(await refused({ currency: 'XAU' }), [400, 'unsupported_currency']);
      assert.deepEqual(await refused({ maxPerCharge: '30.5' }), [400, 'amount_scale_mismatch']);
      assert.deepEqual(await refused({ maxPerCharge: '0.00' }), [400, 'validation_failed']);
      assert.deepEqual(
        await refused({
          periodicLimits: [
            { period: 'day', maxAmount: '50.00' },
            { period: 'day', maxAmount: '60.00' },
          ],
        }),
        [400, 'validation_failed'],
      );
      assert.deepEqual(await refused({ periodicLimits: [] }), [400, 'validation_failed']);
      assert.deepEqual(await refused({ periodicLimits: [{ period: 'year', maxAmount: '9.00' }] }), [
        400,
        'validation_failed',
      ]);
      assert.deepEqual(
        await refused({ maxPerCharge: '60.00', periodicLimits: [{ period: 'week', maxAmount: '50.00' }] }),
        [400, 'validation_failed'],
      );
      assert.deepEqual(await refused({ creditor: { name: 'Elsewhere', iban: EXTERNAL_IBAN } }), [
        422,
        'creditor_not_at_this_bank',
      ]);
      assert.deepEqual(
        await refused({ creditor: { name: 'Ride Co GBP', iban: ibanOf.get(rideCo.accountIds[1] ?? '') } }),
        [422, 'creditor_not_at_this_bank'],
      );
      assert.deepEqual(await refused({ creditor: { name: 'Typo', iban: 'DE89370400440532013001' } }), [
        422,
        'invalid_creditor_iban',
      ]);
      assert.deepEqual(await refused({ expiresAt: inDays(181) }), [422, 'invalid_expiry']);
      assert.deepEqual(await refused({ expiresAt: '2031-02-30T00:00:00Z' }), [400, 'validation_failed']);
      assert.deepEqual(await snapshot(), before);
      // A mandate needs the payments scope, like any payment.
      const reader = await newClientApp({ built, issuer }, developer, {
        name: 'Reader',
        scopes: ['openid', 'accounts'],
        redirectUri: REDIRECT,
      });
      assert.deepEqual(problem(await propose(reader)), [403, 'insufficient_scope']);
    });

    it('checks every charge against its terms: amount, currency, and each period', async () => {
      const app = await newApp();
      const mandateId = await authorisedMandate(app, {
        maxPerCharge: '30.00',
        periodicLimits: [
          { period: 'day', maxAmount: '50.00' },
          { period: 'month', maxAmount: '200.00' },
        ],
      });
      const before = await snapshot();
      const refusedWith = async (response: InjectResponse) => {
        const body = response.json() as { limit?: string };
        return [...problem(response), body.limit];
      };
      assert.deepEqual(await refusedWith(await charge(app, mandateId, '30.01')), [
        422,
        'mandate_limit_exceeded',
        'charge',
      ]);
      assert.deepEqual(problem(await charge(app, mandateId, '5.0')), [400, 'amount_scale_mismatch']);
      assert.deepEqual(
        problem(
          await call('POST', `/v1/mandates/${mandateId}/charges`, {
            token: app.appToken,
            key: nextKey(),
            body: { instructedAmount: { amount: '5.00', currency: 'GBP' } },
          }),
        ),
        [422, 'consent_mismatch'],
      );
      assert.deepEqual(
        problem(
          await call('POST', `/v1/mandates/${mandateId}/charges`, {
            token: app.appToken,
            body: { instructedAmount: { amount: '5.00', currency: 'EUR' } },
          }),
        ),
        [400, 'idempotency_key_missing'],
      );
      assert.deepEqual(await snapshot(), before);

      assert.equal(json<ChargeJson>(await charge(app, mandateId, '30.00'), 201).status, 'succeeded');
      assert.equal(json<ChargeJson>(await charge(app, mandateId, '20.00'), 201).status, 'succeeded');
      const full = await snapshot();
      const overDay = await charge(app, mandateId, '0.01');
      assert.deepEqual(await refusedWith(overDay), [422, 'mandate_limit_exceeded', 'day']);
      assert.match((overDay.json() as { detail: string }).detail, /0\.00 EUR left this day/);
      // A refused charge records nothing and leaves its key free for a corrected request.
      assert.deepEqual(await snapshot(), full);
      const usage = (await mandateOf(app, mandateId)).periodicLimits;
      assert.deepEqual(
        usage.map((limit) => [limit.period, limit.charged, limit.remaining]),
        [
          ['day', '50.00', '0.00'],
          ['month', '50.00', '150.00'],
        ],
      );
    });

    it('counts a failed charge toward no limit: insufficient funds, or a payment the fraud rules block', async () => {
      const app = await newApp();
      const mandateId = await authorisedMandate(
        app,
        { maxPerCharge: '20.00', periodicLimits: [{ period: 'week', maxAmount: '20.00' }] },
        { username: 'carol', account: carolCurrent },
      );
      const before = await snapshot();
      const short = json<ChargeJson>(await charge(app, mandateId, '20.00'), 201);
      assert.deepEqual([short.status, short.failureCode], ['failed', 'insufficient_funds']);
      assert.equal(await posted(carolCurrent), before.carol);
      assert.deepEqual(
        (await eventsAbout(db, short.id)).map((event) => [event.type, event.payload.code]),
        [
          ['mandate.charge.created', undefined],
          ['mandate.charge.failed', 'insufficient_funds'],
        ],
      );
      // Screened like every payment: a block-listed creditor is refused, and nothing moves.
      const fraud = built.fraud;
      assert.ok(fraud);
      await fraud.updateRule('blocklisted_payee', { enabled: true, changedBy: 'mandates-test' });
      await fraud.addToBlocklist({ iban: ibanOf.get(rideCoAccount) ?? '', reason: 'test', addedBy: 'ops' });
      try {
        const blocked = json<ChargeJson>(await charge(app, mandateId, '10.00'), 201);
        assert.deepEqual([blocked.status, blocked.failureCode], ['failed', 'payment_blocked']);
      } finally {
        await fraud.removeFromBlocklist(ibanOf.get(rideCoAccount) ?? '');
        await fraud.updateRule('blocklisted_payee', { enabled: false, changedBy: 'mandates-test' });
      }
      assert.equal(await posted(carolCurrent), before.carol);
      // Neither used the week's allowance: all 10.00 Carol has can still be charged.
      assert.equal(json<ChargeJson>(await charge(app, mandateId, '10.00'), 201).status, 'succeeded');
      assert.equal(await posted(carolCurrent), before.carol - 1000n);
      assert.equal((await mandateOf(app, mandateId)).periodicLimits[0]?.charged, '10.00');
      // A failed charge cannot be refunded.
      assert.deepEqual(problem(await refund(app, mandateId, short.id, '1.00')), [
        409,
        'charge_not_refundable',
      ]);
    });

    it('resets each limit at its calendar boundary in UTC: midnight, Monday, the 1st', async () => {
      const app = await newApp();
      const limited = async (period: string) =>
        authorisedMandate(app, { maxPerCharge: '10.00', periodicLimits: [{ period, maxAmount: '10.00' }] });
      const day = await limited('day');
      const week = await limited('week');
      const month = await limited('month');
      let clock = new Date('2031-01-31T23:59:59.999Z');
      const { consents, payments, accounts } = built;
      assert.ok(consents && payments && accounts);
      // The same service over the same bank, on a clock the test moves.
      const mandates = new Mandates({
        db,
        consents,
        payments,
        accounts,
        ledger: built.ledger,
        now: () => clock,
      });
      const take = async (mandateId: string, amount: string) => {
        const outcome = await mandates.charge(app.id, mandateId, nextKey(), {
          instructedAmount: { amount, currency: 'EUR' },
        });
        return outcome.ok ? outcome.charge.status : `${outcome.code}:${outcome.limit}`;
      };
      // Friday 31 January, the last millisecond: each fills its period.
      for (const id of [day, week, month]) {
        assert.equal(await take(id, '10.00'), 'succeeded');
        assert.equal(
          await take(id, '0.01'),
          `mandate_limit_exceeded:${['day', 'week', 'month'][[day, week, month].indexOf(id)]}`,
        );
      }
      // Saturday 1 February: a new day and month, the same ISO week.
      clock = new Date('2031-02-01T00:00:00Z');
      assert.equal(await take(day, '10.00'), 'succeeded');
      assert.equal(await take(month, '10.00'), 'succeeded');
      assert.equal(await take(week, '0.01'), 'mandate_limit_exceeded:week');
      // Sunday night is still that week; Monday starts the next.
      clock = new Date('2031-02-02T23:59:59.999Z');
      assert.equal(await take(week, '0.01'), 'mandate_limit_exceeded:week');
      clock = new Date('2031-02-03T00:00:00Z');
      assert.equal(await take(week, '10.00'), 'succeeded');
      assert.equal(await take(month, '0.01'), 'mandate_limit_exceeded:month');
    });

    it('lets concurrent charges together take exactly what the limits allow', async () => {
      const app = await newApp();
      const mandateId = await authorisedMandate(app, {
        maxPerCharge: '10.00',
        periodicLimits: [{ period: 'month', maxAmount: '50.00' }],
      });
      const before = await snapshot();
      // Twelve charges of 10.00 at once against a month of 50.00: five fit.
      const responses = await Promise.all(Array.from({ length: 12 }, () => charge(app, mandateId, '10.00')));
      const succeeded = responses.filter((response) => response.statusCode === 201);
      const refused = responses.filter((response) => response.statusCode !== 201);
      assert.equal(succeeded.length, 5, responses.map((r) => r.body).join('\n'));
      for (const response of succeeded) assert.equal(json<ChargeJson>(response, 201).status, 'succeeded');
      for (const response of refused) assert.deepEqual(problem(response), [422, 'mandate_limit_exceeded']);
      assert.equal(await posted(aliceCurrent), before.alice - 5000n);
      assert.equal(await posted(rideCoAccount), before.rideCo + 5000n);
      assert.equal((await mandateOf(app, mandateId)).periodicLimits[0]?.remaining, '0.00');

      // Uneven amounts against a day of 37.00: never more together, and no refused charge would still fit.
      const uneven = await authorisedMandate(app, {
        maxPerCharge: '9.00',
        periodicLimits: [{ period: 'day', maxAmount: '37.00' }],
      });
      const amounts = Array.from({ length: 16 }, (_, index) => `${(index % 9) + 1}.00`);
      const outcomes = await Promise.all(amounts.map((amount) => charge(app, uneven, amount)));
      const taken = outcomes
        .map((response, index) =>
          response.statusCode === 201 ? Number.parseInt(amounts[index] ?? '', 10) : 0,
        )
        .reduce((a, b) => a + b, 0);
      assert.ok(taken <= 37, `charged ${taken}`);
      for (const [index, response] of outcomes.entries()) {
        if (response.statusCode === 201) continue;
        assert.deepEqual(problem(response), [422, 'mandate_limit_exceeded']);
        assert.ok(Number.parseInt(amounts[index] ?? '', 10) > 37 - taken, `${amounts[index]} would have fit`);
      }
      assert.equal((await mandateOf(app, uneven)).periodicLimits[0]?.charged, `${taken}.00`);
      assert.equal(await posted(aliceCurrent), before.alice - 5000n - BigInt(taken * 100));

      // The same request sent three times at once is one charge, paid once.
      const fresh = await authorisedMandate(app);
      const paidBefore = await posted(aliceCurrent);
      const twins = await Promise.all(
        Array.from({ length: 3 }, () => charge(app, fresh, '0.50', 'twin-key')),
      );
      const twinIds = new Set(twins.map((response) => json<ChargeJson>(response, 201).id));
      assert.equal(twinIds.size, 1);
      assert.equal(await posted(aliceCurrent), paidBefore - 50n);

      // Twins of a charge that takes all that is left: the later ones are answered as the first, not refused
      // for the limit it used up.
      const tight = await authorisedMandate(app, {
        maxPerCharge: '10.00',
        periodicLimits: [{ period: 'month', maxAmount: '10.00' }],
      });
      const lastOfMonth = await Promise.all(
        Array.from({ length: 3 }, () => charge(app, tight, '10.00', 'last-of-the-month')),
      );
      assert.equal(new Set(lastOfMonth.map((response) => json<ChargeJson>(response, 201).id)).size, 1);
      assert.equal(await posted(aliceCurrent), paidBefore - 50n - 1000n);
    });

    it('refuses the next charge once the customer revokes, and keeps what was charged', async () => {
      const app = await newApp();
      const mandateId = await authorisedMandate(app);
      const first = json<ChargeJson>(await charge(app, mandateId, '8.00', 'before-revocation'), 201);
      assert.equal(first.status, 'succeeded');

      const cookie = await signIn('alice');
      const mine = json<MandateJson & { charges: ChargeJson[] }>(
        await call('GET', `/v1/me/mandates/${mandateId}`, { cookie }),
      );
      assert.deepEqual(
        [mine.status, mine.charges.map((c) => c.id), mine.periodicLimits[0]?.charged],
        ['authorised', [first.id], '8.00'],
      );
      assert.equal((await call('DELETE', `/v1/me/mandates/${mandateId}`, { cookie })).statusCode, 204);
      assert.equal((await call('DELETE', `/v1/me/mandates/${mandateId}`, { cookie })).statusCode, 204);

      const before = await snapshot();
      assert.deepEqual(problem(await charge(app, mandateId, '8.00')), [409, 'mandate_not_active']);
      assert.deepEqual(await snapshot(), before);
      // The mandate's consent went with it, for the app and the customer alike.
      assert.equal(
        json<{ status: string }>(await call('GET', `/v1/consents/${mandateId}`, { token: app.appToken }))
          .status,
        'revoked',
      );
      assert.equal((await mandateOf(app, mandateId)).status, 'revoked');
      assert.deepEqual(
        (await eventsAbout(db, mandateId)).map((event) => event.type),
        ['consent.created', 'consent.authorised', 'consent.revoked'],
      );
      // What happened before stays: the first charge replays, and can still be refunded.
      const replay = await charge(app, mandateId, '8.00', 'before-revocation');
      assert.equal(json<ChargeJson>(replay, 201).id, first.id);
      assert.equal(json<RefundJson>(await refund(app, mandateId, first.id, '8.00'), 201).status, 'succeeded');

      // Revoking through the consents list ends a mandate just the same.
      const other = await authorisedMandate(app);
      assert.equal(json<ChargeJson>(await charge(app, other, '1.00'), 201).status, 'succeeded');
      assert.equal((await call('DELETE', `/v1/me/consents/${other}`, { cookie })).statusCode, 204);
      assert.deepEqual(problem(await charge(app, other, '1.00')), [409, 'mandate_not_active']);
    });

    it('refunds a charge in part or whole, never beyond it, each refund once', async () => {
      const app = await newApp();
      const mandateId = await authorisedMandate(app);
      const charged = json<ChargeJson>(await charge(app, mandateId, '20.00'), 201);
      const before = await snapshot();

      const response = await refund(app, mandateId, charged.id, '5.00', 'refund-1');
      const first = json<RefundJson>(response, 201);
      assert.deepEqual([first.status, first.instructedAmount.amount], ['succeeded', '5.00']);
      assert.equal(await posted(aliceCurrent), before.alice + 500n);
      assert.equal(await posted(rideCoAccount), before.rideCo - 500n);
      const replay = await refund(app, mandateId, charged.id, '5.00', 'refund-1');
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      assert.equal(json<RefundJson>(replay, 201).id, first.id);
      assert.deepEqual(problem(await refund(app, mandateId, charged.id, '6.00', 'refund-1')), [
        422,
        'idempotency_key_reused',
      ]);
      assert.equal(await posted(aliceCurrent), before.alice + 500n, 'a replay moves nothing');

      assert.deepEqual(problem(await refund(app, mandateId, charged.id, '15.01')), [
        422,
        'refund_exceeds_charge',
      ]);
      assert.deepEqual(problem(await refund(app, mandateId, charged.id, '1.0')), [
        400,
        'amount_scale_mismatch',
      ]);
      assert.deepEqual(
        problem(
          await call('POST', `/v1/mandates/${mandateId}/charges/${charged.id}/refunds`, {
            token: app.appToken,
            key: nextKey(),
            body: { instructedAmount: { amount: '1.00', currency: 'GBP' } },
          }),
        ),
        [400, 'validation_failed'],
      );
      assert.equal(
        json<RefundJson>(await refund(app, mandateId, charged.id, '15.00'), 201).status,
        'succeeded',
      );
      assert.deepEqual(problem(await refund(app, mandateId, charged.id, '0.01')), [
        422,
        'refund_exceeds_charge',
      ]);
      assert.equal(await posted(aliceCurrent), before.alice + 2000n);
      assert.equal(await posted(rideCoAccount), before.rideCo - 2000n);

      const detail = json<ChargeJson & { refunds: RefundJson[] }>(
        await call('GET', `/v1/mandates/${mandateId}/charges/${charged.id}`, { token: app.appToken }),
      );
      assert.deepEqual(
        [detail.refunded, detail.refunds.map((r) => [r.instructedAmount.amount, r.status])],
        [
          '20.00',
          [
            ['5.00', 'succeeded'],
            ['15.00', 'succeeded'],
          ],
        ],
      );
      assert.deepEqual(
        (await eventsAbout(db, first.id)).map((event) => event.type),
        ['mandate.refund.created', 'mandate.refund.succeeded'],
      );
      // Refunds do not give the period's allowance back: the customer authorised what may be taken.
      assert.equal((await mandateOf(app, mandateId)).periodicLimits[0]?.charged, '20.00');
    });

    it('lets concurrent refunds together return no more than the charge', async () => {
      const app = await newApp();
      const mandateId = await authorisedMandate(app);
      const charged = json<ChargeJson>(await charge(app, mandateId, '10.00'), 201);
      const before = await snapshot();
      const responses = await Promise.all(
        Array.from({ length: 6 }, () => refund(app, mandateId, charged.id, '3.00')),
      );
      const done = responses.filter((response) => response.statusCode === 201);
      assert.equal(done.length, 3, responses.map((r) => r.body).join('\n'));
      for (const response of responses.filter((r) => r.statusCode !== 201)) {
        assert.deepEqual(problem(response), [422, 'refund_exceeds_charge']);
      }
      assert.equal(await posted(aliceCurrent), before.alice + 900n);
      assert.equal(await posted(rideCoAccount), before.rideCo - 900n);
    });

    it('records a refund the merchant cannot pay as failed, and gives its amount back', async () => {
      const app = await newApp();
      const shop = await createCustomer(built, {
        username: 'cornershop',
        password: PASSWORD,
        legalName: 'Corner Shop',
      });
      const shopAccount = shop.accountIds[0] ?? '';
      const shopIban = (await built.accounts?.find(shopAccount))?.iban ?? '';
      const mandateId = await authorisedMandate(app, { creditor: { name: 'Corner Shop', iban: shopIban } });
      const charged = json<ChargeJson>(await charge(app, mandateId, '10.00'), 201);
      // The shop spends what it was paid.
      json(
        await call('POST', '/v1/ledger/transfers', {
          token: TOKEN,
          key: nextKey(),
          body: {
            postings: [
              {
                debitAccountId: shop.ledgerAccountIds[0],
                creditAccountId: rideCo.ledgerAccountIds[0],
                amount: '10.00',
              },
            ],
          },
        }),
        201,
      );
      const before = await posted(aliceCurrent);
      const failed = json<RefundJson>(await refund(app, mandateId, charged.id, '4.00'), 201);
      assert.deepEqual([failed.status, failed.failureCode], ['failed', 'insufficient_funds']);
      assert.equal(await posted(aliceCurrent), before);
      const detail = json<ChargeJson>(
        await call('GET', `/v1/mandates/${mandateId}/charges/${charged.id}`, { token: app.appToken }),
      );
      assert.equal(detail.refunded, '0.00', 'the failed refund holds nothing back');
      assert.deepEqual(
        (await eventsAbout(db, failed.id)).map((event) => [event.type, event.payload.code]),
        [
          ['mandate.refund.created', undefined],
          ['mandate.refund.failed', 'insufficient_funds'],
        ],
      );
    });

    it('never lets another app, or another customer, reach a mandate', async () => {
      const owner = await newApp();
      const stranger = await newApp();
      const mandateId = await authorisedMandate(owner);
      const charged = json<ChargeJson>(await charge(owner, mandateId, '2.00'), 201);
      const before = await snapshot();
      const asStranger = [
        call('GET', `/v1/mandates/${mandateId}`, { token: stranger.appToken }),
        call('GET', `/v1/mandates/${mandateId}/charges`, { token: stranger.appToken }),
        call('GET', `/v1/mandates/${mandateId}/charges/${charged.id}`, { token: stranger.appToken }),
        charge(stranger, mandateId, '2.00'),
        refund(stranger, mandateId, charged.id, '1.00'),
        call('GET', `/v1/payments/${charged.paymentId}`, { token: stranger.appToken }),
      ];
      for (const response of await Promise.all(asStranger)) {
        assert.deepEqual(problem(response), [404, 'not_found']);
      }
      const bobCookie = await signIn('bob');
      for (const response of await Promise.all([
        call('GET', `/v1/me/mandates/${mandateId}`, { cookie: bobCookie }),
        call('GET', `/v1/me/mandates/${mandateId}/charges`, { cookie: bobCookie }),
        call('GET', `/v1/me/mandates/${mandateId}/charges/${charged.id}`, { cookie: bobCookie }),
        call('DELETE', `/v1/me/mandates/${mandateId}`, { cookie: bobCookie }),
      ])) {
        assert.deepEqual(problem(response), [404, 'not_found']);
      }
      assert.deepEqual(
        json<{ mandates: MandateJson[] }>(await call('GET', '/v1/me/mandates', { cookie: bobCookie }))
          .mandates,
        [],
      );
      assert.deepEqual(problem(await call('GET', '/v1/me/mandates')), [401, 'unauthorized']);
      assert.deepEqual(problem(await call('GET', `/v1/mandates/${mandateId}`)), [401, 'invalid_token']);
      assert.deepEqual(await snapshot(), before);
      assert.equal((await mandateOf(owner, mandateId)).status, 'authorised');
    });

    it('pages through mandates and charges with cursors', async () => {
      const app = await newApp();
      const mandateId = await authorisedMandate(app, { maxPerCharge: '1.00' });
      const ids: string[] = [];
      for (let index = 0; index < 5; index++) {
        ids.push(json<ChargeJson>(await charge(app, mandateId, '1.00'), 201).id);
      }
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { charges: ChargeJson[]; nextCursor: string | null } = json(
          await call('GET', `/v1/mandates/${mandateId}/charges?limit=2${cursor ? `&cursor=${cursor}` : ''}`, {
            token: app.appToken,
          }),
        );
        assert.ok(page.charges.length <= 2);
        seen.push(...page.charges.map((c) => c.id));
        cursor = page.nextCursor;
      } while (cursor);
      assert.deepEqual(seen, [...ids].reverse(), 'newest first, each once');

      const cookie = await signIn('alice');
      const listed: string[] = [];
      let mandatesCursor: string | null = null;
      do {
        const page: { mandates: MandateJson[]; nextCursor: string | null } = json(
          await call('GET', `/v1/me/mandates?limit=3${mandatesCursor ? `&cursor=${mandatesCursor}` : ''}`, {
            cookie,
          }),
        );
        listed.push(...page.mandates.map((m) => m.id));
        mandatesCursor = page.nextCursor;
      } while (mandatesCursor);
      assert.ok(listed.includes(mandateId));
      assert.deepEqual(listed, [...listed].sort(), 'in creation order');
      assert.equal(new Set(listed).size, listed.length);
      const mine = json<{ charges: ChargeJson[] }>(
        await call('GET', `/v1/me/mandates/${mandateId}/charges?limit=5`, { cookie }),
      );
      assert.equal(mine.charges.length, 5);

      assert.deepEqual(
        problem(
          await call('GET', `/v1/mandates/${mandateId}/charges?cursor=bm90LWEtY3Vyc29y`, {
            token: app.appToken,
          }),
        ),
        [400, 'invalid_cursor'],
      );
      const mandatesCursorValue = Buffer.from(`md:${mandateId}`).toString('base64url');
      assert.deepEqual(
        problem(
          await call('GET', `/v1/mandates/${mandateId}/charges?cursor=${mandatesCursorValue}`, {
            token: app.appToken,
          }),
        ),
        [400, 'invalid_cursor'],
      );
      assert.deepEqual(problem(await call('GET', '/v1/me/mandates?limit=51', { cookie })), [
        400,
        'validation_failed',
      ]);
    });

    it('finishes a charge or refund whose outcome was never recorded, moving no money twice', async () => {
      const app = await newApp();
      const mandateId = await authorisedMandate(app);
      const charged = json<ChargeJson>(await charge(app, mandateId, '3.00'), 201);
      const refunded = json<RefundJson>(await refund(app, mandateId, charged.id, '1.00'), 201);
      // As if the process died after recording each, before recording its outcome.
      const old = new Date(Date.now() - 5 * 60_000);
      await db.query(`update mandate_charges set status = 'pending', created_at = $2 where id = $1`, [
        charged.id,
        old,
      ]);
      await db.query(`update mandate_refunds set status = 'pending', created_at = $2 where id = $1`, [
        refunded.id,
        old,
      ]);
      const before = await snapshot();
      const mandates = built.mandates;
      assert.ok(mandates);
      const recovered = await mandates.recover();
      assert.ok(recovered.charges >= 1 && recovered.refunds >= 1, JSON.stringify(recovered));
      assert.deepEqual(await snapshot(), before, 'the money had moved already');
      const detail = json<ChargeJson & { refunds: RefundJson[] }>(
        await call('GET', `/v1/mandates/${mandateId}/charges/${charged.id}`, { token: app.appToken }),
      );
      assert.deepEqual([detail.status, detail.refunds[0]?.status], ['succeeded', 'succeeded']);
    });

    it('leaves a ledger that balances, and no charge or refund pending', async () => {
      const report = await built.ledger.verify();
      assert.ok(
        report.ok,
        JSON.stringify(report, (_, value) => (typeof value === 'bigint' ? `${value}` : value)),
      );
      const [pending] = await db.query<{ n: number }>(
        `select (select count(*) from mandate_charges where status = 'pending')
              + (select count(*) from mandate_refunds where status = 'pending') as n`,
      );
      assert.equal(Number(pending?.n), 0);
      // What each charge says was refunded is what its refunds add up to.
      const [drift] = await db.query<{ n: number }>(
        `select count(*)::int as n from mandate_charges c
          where c.refunded <> coalesce((select sum(amount) from mandate_refunds r
                                         where r.charge_id = c.id and r.status <> 'failed'), 0)`,
      );
      assert.equal(drift?.n, 0);
    });
  });
}
