// The UK Open Banking v4.0 Payment Initiation API's domestic scheduled payments and standing orders,
// exercised as a third party would, every request and response through Prism against the official file.
// The bank's scheduler is driven with a clock of the test's (as src/payments/orders.test.ts does), so a
// payment is seen waiting before its date and paid on it. Keeps its record in the conformance table.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type createLocalJWKSet, exportJWK, generateKeyPair } from 'jose';
import type { BuiltApp } from '../../main.ts';
import { PaymentOrders } from '../../payments/orders.ts';
import { formatDate } from '../../payments/schedule.ts';
import { newClientApp } from '../../testing/bank.ts';
import { authoriseConsent } from '../../testing/consent-flow.ts';
import { type TestDb, testDatabases } from '../../testing/databases.ts';
import { testPii } from '../../testing/pii.ts';
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
import { PAYMENT_DETAILS_RUNS_MAX } from './pisp-orders.ts';

const TOKEN = 'uk-ob-pisp-orders-test-operator-token-0123';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'uk ob pisp orders test password';
const SPEC = fileURLToPath(
  new URL('../../../specs/uk-open-banking-v4.0/payment-initiation-openapi.yaml', import.meta.url),
);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// A valid IBAN of another bank: its payments leave through clearing.
const EXTERNAL_IBAN = 'GB33BUKB20201555555555';
const FREQUENCY_PATH = 'Data.Initiation.MandateRelatedInformation.Frequency.Type';
const observed: Exchange[] = [];

const DAY_MS = 86_400_000;
const daysFromToday = (days: number) => formatDate(new Date(Date.now() + days * DAY_MS));
const at = (date: string) => `${date}T00:00:00+00:00`;
/** The next date on a 31st, at least two days ahead: a month's last day whatever the month. */
function next31st(): string {
  for (let days = 2; ; days++) if (daysFromToday(days).endsWith('-31')) return daysFromToday(days);
}

interface ObConsent {
  Data: { ConsentId: string; Status: string; Permission: string; Initiation: Record<string, unknown> };
  Risk: Record<string, unknown>;
}
interface ObOrder {
  Data: {
    DomesticScheduledPaymentId?: string;
    DomesticStandingOrderId?: string;
    ConsentId: string;
    Status: string;
    ExpectedExecutionDateTime?: string;
    StatusReason?: { StatusReasonDescription: string }[];
    Initiation: Record<string, unknown>;
  };
}
interface ObDetails {
  Data: {
    PaymentStatus: {
      PaymentTransactionId: string;
      Status: string;
      StatusDetail?: { Status: string; StatusReasonDescription?: string };
    }[];
  };
}
interface ObErrors {
  Errors: { ErrorCode: string; Message: string; Path?: string }[];
}

const creditorOf = (iban: string, name: string) => ({
  SchemeName: 'UK.OBIE.IBAN',
  Identification: iban,
  Name: name,
});
const scheduledOf = (
  date: string,
  amount = '25.00',
  creditor = creditorOf(EXTERNAL_IBAN, 'Corner Shop'),
) => ({
  InstructionIdentification: 'ACME413',
  EndToEndIdentification: 'FRESCO.21302.GFX.21',
  RequestedExecutionDateTime: at(date),
  InstructedAmount: { Amount: amount, Currency: 'GBP' },
  CreditorAccount: creditor,
  RemittanceInformation: { Unstructured: ['Invoice 43'] },
});
const standingOrderOf = (
  first: string,
  frequency: string,
  extra: Record<string, unknown> = {},
  creditor = creditorOf(EXTERNAL_IBAN, 'Landlord Ltd'),
) => ({
  FirstPaymentAmount: { Amount: '10.00', Currency: 'GBP' },
  CreditorAccount: creditor,
  RemittanceInformation: { Unstructured: ['Rent'] },
  MandateRelatedInformation: { FirstPaymentDateTime: at(first), Frequency: { Type: frequency } },
  ...extra,
});

for (const database of testDatabases()) {
  describe(`UK Open Banking v4.0 PISP scheduled payments and standing orders on ${database.name}`, () => {
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
    let alice: { customerId: string; accountIds: string[] };
    let bob: { customerId: string; accountIds: string[] };
    let bobIban: string;
    // The bank's scheduler on the test's clock: the same database, services and keys as the bank's own.
    let clock = new Date();
    let scheduler: PaymentOrders;

    before(async () => {
      db = await database.open();
      bank = await bankBehindPrism(db, {
        spec: SPEC,
        prefix: PISP_PREFIX,
        adminToken: TOKEN,
        password: PASSWORD,
        aliceAccounts: [{ product: 'current', currency: 'GBP' }],
        bobAccounts: [{ product: 'current', currency: 'GBP' }],
        aliceFunds: { amount: '1000.00', from: 'Northwind Ltd' },
      });
      ({ built, issuer, prism, lax, developer, alice, bob, bankKeys } = bank);
      assert.ok(built.payments && built.consents);
      bobIban = await bank.ibanOf(bob.accountIds[0]);
      scheduler = new PaymentOrders({
        db,
        payments: built.payments,
        consents: built.consents,
        pii: await testPii(db),
        now: () => clock,
      });
    });
    after(async () => {
      // When the bank never started (Prism too slow on a busy machine), there is nothing to stop but the database.
      if (bank) observed.push(...(await bank.close()));
      await db?.close();
    });

    type Signer = {
      id: string;
      signingKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
      kid: string;
    };
    // Whose token it is: a call signs its body with that app's key.
    const appOfToken = new Map<string, Signer>();
    /** An app with a signing key of its own, registered as its JWKS: it signs its requests' bodies. */
    const newApp = async () => {
      const kid = `tpp-order-key-${++apps}`;
      const { privateKey, publicKey } = await generateKeyPair('PS256');
      const registered = await newClientApp({ built, issuer }, developer, {
        name: `Order Pal ${apps}`,
        scopes: ['openid', 'payments'],
        redirectUri: REDIRECT,
        jwks: { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'PS256', use: 'sig' }] },
      });
      const app = { ...registered, signingKey: privateKey, kid };
      appOfToken.set(app.appToken, app);
      return app;
    };
    type TestApp = Awaited<ReturnType<typeof newApp>>;

    const nextKey = () => `pisp-orders-key-${++keys}`;
    const call = (
      proxy: PrismProxy,
      token: string,
      path: string,
      init: ThirdPartyCall & { key?: string | null; signed?: false; signedBy?: Signer } = {},
    ) => {
      const key = init.key === undefined ? nextKey() : init.key;
      const app = init.signedBy ?? appOfToken.get(token);
      return callAsThirdParty(proxy, token, path, init, async (body) => ({
        ...(app &&
          init.signed !== false && {
            'x-jws-signature': await detachedJws(app.signingKey, app.kid, body, obSignatureClaims(app.id)),
          }),
        ...(key !== null && { 'x-idempotency-key': key }),
      }));
    };
    /** The answer, after checking its interaction id and the bank's detached signature over its body. */
    const json = <T>(response: Response, status: number) => signedObAnswer<T>(bankKeys, response, status);
    const errorsOf = async (response: Response, status = 400) =>
      (await json<ObErrors>(response, status)).Errors.map((error) => [error.ErrorCode, error.Path]);
    const errorCodes = async (response: Response, status: number) =>
      (await json<ObErrors>(response, status)).Errors.map((error) => error.ErrorCode);

    const SCHEDULED = {
      consents: '/domestic-scheduled-payment-consents',
      orders: '/domestic-scheduled-payments',
    };
    const STANDING = { consents: '/domestic-standing-order-consents', orders: '/domestic-standing-orders' };
    type Resource = typeof SCHEDULED;
    const postConsent = (app: TestApp, resource: Resource, initiation: object, key?: string, proxy = prism) =>
      call(proxy, app.appToken, resource.consents, {
        method: 'POST',
        body: {
          Data: { Permission: 'Create', Initiation: initiation },
          Risk: { PaymentContextCode: 'TransferToThirdParty' },
        },
        ...(key && { key }),
      });
    const createConsent = async (app: TestApp, resource: Resource, initiation: object, key?: string) =>
      json<ObConsent>(await postConsent(app, resource, initiation, key), 201);
    const authorise = async (app: TestApp, consentId: string) => {
      const authorised = await authoriseConsent({
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
      appOfToken.set(authorised.accessToken, app);
      return authorised;
    };
    const postOrder = (
      token: string,
      resource: Resource,
      consentId: string,
      initiation: object,
      key?: string,
    ) =>
      call(prism, token, resource.orders, {
        method: 'POST',
        body: { Data: { ConsentId: consentId, Initiation: initiation }, Risk: {} },
        ...(key && { key }),
      });
    const consentStatus = async (app: TestApp, resource: Resource, consentId: string) =>
      (await json<ObConsent>(await call(prism, app.appToken, `${resource.consents}/${consentId}`), 200)).Data
        .Status;
    const readOrder = async (app: TestApp, resource: Resource, id: string) =>
      json<ObOrder>(await call(prism, app.appToken, `${resource.orders}/${id}`), 200);
    const details = async (app: TestApp, resource: Resource, id: string) =>
      (
        await json<ObDetails>(
          await call(prism, app.appToken, `${resource.orders}/${id}/payment-details`),
          200,
        )
      ).Data.PaymentStatus;
    const balanceOf = async (accountId: string) => {
      const account = await built.accounts?.find(accountId);
      assert.ok(account);
      return (await built.accounts?.balances(account))?.available ?? 0n;
    };
    const count = async (table: string) =>
      Number((await db.query<{ n: number }>(`select count(*)::int as n from ${table}`))[0]?.n);
    /** One pass of the bank's scheduler early on `date` (UTC). */
    const schedulerOn = (date: string) => {
      clock = new Date(`${date}T00:05:00Z`);
      return scheduler.runDue();
    };
    /** A consent created and authorised; its token. */
    const authorised = async (app: TestApp, resource: Resource, initiation: object) => {
      const { Data } = await createConsent(app, resource, initiation);
      const { accessToken, page } = await authorise(app, Data.ConsentId);
      return { consentId: Data.ConsentId, token: accessToken, page };
    };

    it('schedules a payment, which waits for its date and is paid on it by the scheduler', async () => {
      const app = await newApp();
      const date = daysFromToday(3);
      const initiation = scheduledOf(date, '25.00', creditorOf(bobIban, 'Bob Baker'));
      const consent = await createConsent(app, SCHEDULED, initiation);
      assert.equal(consent.Data.Status, 'AWAU');
      assert.equal(consent.Data.Permission, 'Create');
      assert.deepEqual(consent.Data.Initiation, initiation);
      const consentId = consent.Data.ConsentId;
      // The bank's own terms: what its consent page shows and its order is held to.
      const own = await built.consents?.find(consentId);
      assert.equal(own?.type, 'payment_initiation');
      assert.deepEqual(own?.details.instructedAmount, { amount: '25.00', currency: 'GBP' });
      assert.deepEqual(own?.details.schedule, {
        firstDate: date,
        frequency: null,
        lastDate: null,
        count: null,
      });

      const { accessToken: token, page } = await authorise(app, consentId);
      assert.match(page, new RegExp(`Pay 25\\.00 GBP to Bob Baker .* once, on ${date}`));
      assert.equal(await consentStatus(app, SCHEDULED, consentId), 'AUTH');

      const aliceBefore = await balanceOf(alice.accountIds[0] ?? '');
      const bobBefore = await balanceOf(bob.accountIds[0] ?? '');
      const created = await json<ObOrder>(await postOrder(token, SCHEDULED, consentId, initiation), 201);
      const id = created.Data.DomesticScheduledPaymentId ?? '';
      assert.match(id, UUID);
      assert.equal(created.Data.Status, 'ACCP', 'accepted, waiting for its date');
      assert.equal(created.Data.ExpectedExecutionDateTime, at(date));
      assert.deepEqual(created.Data.Initiation, initiation);
      assert.equal(await consentStatus(app, SCHEDULED, consentId), 'COND');
      assert.deepEqual(await details(app, SCHEDULED, id), [], 'no payment yet');
      // Another for the same day, more than the account will hold: refused on the day, and said so.
      const tooMuch = scheduledOf(date, '99999.00');
      const big = await authorised(app, SCHEDULED, tooMuch);
      const bigId =
        (await json<ObOrder>(await postOrder(big.token, SCHEDULED, big.consentId, tooMuch), 201)).Data
          .DomesticScheduledPaymentId ?? '';

      await schedulerOn(daysFromToday(2));
      assert.equal((await readOrder(app, SCHEDULED, id)).Data.Status, 'ACCP', 'not paid the day before');
      assert.equal(await balanceOf(alice.accountIds[0] ?? ''), aliceBefore);

      await schedulerOn(date);
      await schedulerOn(date);
      const paid = await readOrder(app, SCHEDULED, id);
      assert.equal(paid.Data.Status, 'ACSC', 'credited to Bob here: settled');
      assert.equal(paid.Data.ExpectedExecutionDateTime, undefined);
      assert.equal(aliceBefore - (await balanceOf(alice.accountIds[0] ?? '')), 2500n, 'debited once');
      assert.equal((await balanceOf(bob.accountIds[0] ?? '')) - bobBefore, 2500n);
      const lifecycle = await details(app, SCHEDULED, id);
      assert.deepEqual(
        lifecycle.map((entry) => entry.Status),
        ['PDNG', 'ACCC'],
        'received, then credited to the creditor account',
      );
      assert.equal(new Set(lifecycle.map((entry) => entry.PaymentTransactionId)).size, 1);
      const refused = await readOrder(app, SCHEDULED, bigId);
      assert.equal(refused.Data.Status, 'RJCT');
      assert.ok(refused.Data.StatusReason?.[0]?.StatusReasonDescription);
      const refusal = await details(app, SCHEDULED, bigId);
      assert.deepEqual(
        refusal.map((entry) => entry.Status),
        ['PDNG', 'RJCT'],
      );
      assert.ok(refusal[1]?.StatusDetail?.StatusReasonDescription);
      assert.ok((await built.ledger.verify()).ok);
    });

    it("sets up a standing order whose runs appear in its payment-details, and shows the customer's cancellation", async () => {
      const app = await newApp();
      const first = daysFromToday(1);
      const initiation = standingOrderOf(first, 'EvryDay', { NumberOfPayments: '3' });
      const { consentId, token, page } = await authorised(app, STANDING, initiation);
      assert.match(page, new RegExp(`Pay 10\\.00 GBP to Landlord Ltd .* every day from ${first}, 3 times`));
      const created = await json<ObOrder>(await postOrder(token, STANDING, consentId, initiation), 201);
      const id = created.Data.DomesticStandingOrderId ?? '';
      assert.equal(created.Data.Status, 'INCO', 'the standing order is set up');
      assert.deepEqual(created.Data.Initiation, initiation);
      assert.deepEqual(await details(app, STANDING, id), []);

      const before = await balanceOf(alice.accountIds[0] ?? '');
      // The server was down for the first two days: the scheduler catches up, paying each date once.
      await schedulerOn(daysFromToday(3));
      await schedulerOn(daysFromToday(6));
      const runs = await details(app, STANDING, id);
      const payments = [...new Set(runs.map((entry) => entry.PaymentTransactionId))];
      assert.equal(payments.length, 3, 'three payments, one a day');
      for (const paymentId of payments) {
        assert.deepEqual(
          runs.filter((entry) => entry.PaymentTransactionId === paymentId).map((entry) => entry.Status),
          ['PDNG', 'ACSP'],
          'received, then on its way through clearing',
        );
      }
      assert.equal(before - (await balanceOf(alice.accountIds[0] ?? '')), 3000n);
      assert.equal((await readOrder(app, STANDING, id)).Data.Status, 'INCO');

      // A weekly one the customer cancels at the bank before it ever runs.
      const weekly = standingOrderOf(daysFromToday(4), 'WEEK');
      const second = await authorised(app, STANDING, weekly);
      const order = await json<ObOrder>(
        await postOrder(second.token, STANDING, second.consentId, weekly),
        201,
      );
      const orderId = order.Data.DomesticStandingOrderId ?? '';
      const cancelled = await built.orders?.cancel({ customerId: alice.customerId }, orderId);
      assert.equal(typeof cancelled === 'object' && cancelled.status, 'cancelled');
      assert.equal((await readOrder(app, STANDING, orderId)).Data.Status, 'CANC');
      await schedulerOn(daysFromToday(12));
      assert.deepEqual(await details(app, STANDING, orderId), [], 'never paid');
      assert.ok((await built.ledger.verify()).ok);
    });

    it('maps the frequencies the bank pays exactly, and refuses the others with a 400 naming why', async () => {
      const app = await newApp();
      const first = daysFromToday(3);
      const weekday = ((new Date(`${first}T00:00:00Z`).getUTCDay() + 6) % 7) + 1;
      const day = first.slice(8, 10);
      const otherDay = day === '01' ? '02' : '01';
      const last31st = next31st();
      const accepted: [string, string, string][] = [
        ['EvryDay', first, 'daily'],
        ['DAIL', first, 'daily'],
        ['WEEK', first, 'weekly'],
        [`IntrvlWkDay:01:0${weekday}`, first, 'weekly'],
        ['MNTH', first, 'monthly'],
        [`IntrvlMnthDay:01:${day}`, first, 'monthly'],
        ['IntrvlMnthDay:01:-01', last31st, 'monthly'],
        ['YEAR', first, 'yearly'],
        [`IntrvlMnthDay:12:${day}`, first, 'yearly'],
      ];
      for (const [type, date, frequency] of accepted) {
        const { Data } = await createConsent(app, STANDING, standingOrderOf(date, type));
        const own = await built.consents?.find(Data.ConsentId);
        assert.deepEqual(
          own?.details.schedule,
          { firstDate: date, frequency, lastDate: null, count: null },
          type,
        );
      }

      const consents = await count('consents');
      const refused = [
        'EvryWorkgDay',
        'NotKnown',
        'IntrvlDay:14',
        `IntrvlWkDay:02:0${weekday}`,
        `IntrvlWkDay:01:0${(weekday % 7) + 1}`,
        'WkInMnthDay:02:03',
        'IntrvlMnthDay:03:15',
        `IntrvlMnthDay:01:${otherDay}`,
        'IntrvlMnthDay:01:-02',
        'QtrDay:ENGLISH',
        'QtrDay:SCOTTISH',
        'FRTN',
        'QURT',
        'ADHO',
      ];
      for (const type of refused) {
        assert.deepEqual(
          await errorsOf(await postConsent(app, STANDING, standingOrderOf(first, type))),
          [['U002', FREQUENCY_PATH]],
          type,
        );
      }
      // The last day of the month from a first payment not on a 31st: the bank's monthly order would drift.
      assert.deepEqual(
        await errorsOf(
          await postConsent(
            app,
            STANDING,
            standingOrderOf(first.endsWith('-31') ? daysFromToday(4) : first, 'IntrvlMnthDay:01:-01'),
          ),
        ),
        [['U002', FREQUENCY_PATH]],
      );
      // Not the specification's grammar at all: past Prism's request check, the bank refuses it too.
      assert.deepEqual(
        await errorsOf(
          await postConsent(app, STANDING, standingOrderOf(first, 'Every other Tuesday'), undefined, lax),
        ),
        [['U002', FREQUENCY_PATH]],
      );
      assert.equal(await count('consents'), consents, 'nothing created');
    });

    it('refuses dates, amounts and fields it cannot honour, in OBErrorResponse1 form, creating nothing', async () => {
      const app = await newApp();
      const first = daysFromToday(3);
      const past = daysFromToday(-1);
      const mandate = (extra: Record<string, unknown>) => ({
        FirstPaymentDateTime: at(first),
        Frequency: { Type: 'EvryDay' },
        ...extra,
      });
      const refusals: [Resource, object, string, string, PrismProxy?][] = [
        [SCHEDULED, scheduledOf(past), 'U002', 'Data.Initiation.RequestedExecutionDateTime'],
        [SCHEDULED, scheduledOf(daysFromToday(400)), 'U002', 'Data.Initiation.RequestedExecutionDateTime'],
        [SCHEDULED, scheduledOf(first, '2.5'), 'U002', 'Data.Initiation.InstructedAmount.Amount'],
        [
          SCHEDULED,
          { ...scheduledOf(first), LocalInstrument: 'UK.OBIE.FPS' },
          'U002',
          'Data.Initiation.LocalInstrument',
        ],
        [
          SCHEDULED,
          { ...scheduledOf(first), RequestedExecutionDateTime: `${first.slice(0, 8)}32T00:00:00+00:00` },
          'U002',
          'Data.Initiation.RequestedExecutionDateTime',
          lax,
        ],
        [
          STANDING,
          standingOrderOf(past, 'EvryDay'),
          'U002',
          'Data.Initiation.MandateRelatedInformation.FirstPaymentDateTime',
        ],
        [
          STANDING,
          standingOrderOf(first, 'EvryDay', {
            MandateRelatedInformation: { Frequency: { Type: 'EvryDay' } },
          }),
          'U004',
          'Data.Initiation.MandateRelatedInformation.FirstPaymentDateTime',
        ],
        [
          STANDING,
          standingOrderOf(first, 'EvryDay', {
            MandateRelatedInformation: mandate({ FinalPaymentDateTime: at(daysFromToday(2)) }),
          }),
          'U002',
          'Data.Initiation.MandateRelatedInformation.FinalPaymentDateTime',
        ],
        [
          STANDING,
          standingOrderOf(first, 'EvryDay', {
            MandateRelatedInformation: mandate({ RecurringPaymentDateTime: at(daysFromToday(5)) }),
          }),
          'U002',
          'Data.Initiation.MandateRelatedInformation.RecurringPaymentDateTime',
        ],
        [
          STANDING,
          standingOrderOf(first, 'EvryDay', {
            MandateRelatedInformation: mandate({ Frequency: { Type: 'EvryDay', CountPerPeriod: 2 } }),
          }),
          'U002',
          'Data.Initiation.MandateRelatedInformation.Frequency.CountPerPeriod',
        ],
        [
          STANDING,
          standingOrderOf(first, 'EvryDay', { MandateRelatedInformation: mandate({ Reason: 'Rent' }) }),
          'U002',
          'Data.Initiation.MandateRelatedInformation.Reason',
        ],
        [
          STANDING,
          standingOrderOf(first, 'EvryDay', { NumberOfPayments: '0' }),
          'U002',
          'Data.Initiation.NumberOfPayments',
        ],
        [
          STANDING,
          standingOrderOf(first, 'EvryDay', { NumberOfPayments: 'twelve' }),
          'U002',
          'Data.Initiation.NumberOfPayments',
        ],
        [
          STANDING,
          standingOrderOf(first, 'EvryDay', { RecurringPaymentAmount: { Amount: '12.00', Currency: 'GBP' } }),
          'U002',
          'Data.Initiation.RecurringPaymentAmount',
        ],
        [
          STANDING,
          standingOrderOf(first, 'EvryDay', { FirstPaymentAmount: { Amount: '10.5', Currency: 'GBP' } }),
          'U002',
          'Data.Initiation.FirstPaymentAmount.Amount',
        ],
        [
          STANDING,
          standingOrderOf(first, 'EvryDay', {
            DebtorAccount: { SchemeName: 'UK.OBIE.IBAN', Identification: EXTERNAL_IBAN },
          }),
          'U002',
          'Data.Initiation.DebtorAccount',
        ],
      ];
      const consents = await count('consents');
      for (const [resource, initiation, code, path, proxy] of refusals) {
        assert.deepEqual(
          await errorsOf(await postConsent(app, resource, initiation, undefined, proxy)),
          [[code, path]],
          JSON.stringify(initiation),
        );
      }
      // Another field of Data, and a POST without x-idempotency-key (which the spec requires).
      assert.deepEqual(
        await errorsOf(
          await call(prism, app.appToken, SCHEDULED.consents, {
            method: 'POST',
            body: {
              Data: { Permission: 'Create', ReadRefundAccount: 'Yes', Initiation: scheduledOf(first) },
              Risk: {},
            },
          }),
        ),
        [['U002', 'Data.ReadRefundAccount']],
      );
      assert.deepEqual(
        await errorCodes(
          await call(lax, app.appToken, STANDING.consents, {
            method: 'POST',
            body: { Data: { Permission: 'Create', Initiation: standingOrderOf(first, 'EvryDay') }, Risk: {} },
            key: null,
          }),
          400,
        ),
        ['U006'],
      );
      assert.equal(await count('consents'), consents);
      assert.deepEqual(await errorCodes(await call(prism, app.appToken, `${STANDING.consents}/nope`), 400), [
        'U011',
      ]);
    });

    it('refuses an order that differs from its authorised consent, creating and paying nothing', async () => {
      const app = await newApp();
      const date = daysFromToday(5);
      const initiation = scheduledOf(date);
      const scheduled = await authorised(app, SCHEDULED, initiation);
      const standingInitiation = standingOrderOf(date, 'EvryDay', { NumberOfPayments: '4' });
      const standing = await authorised(app, STANDING, standingInitiation);
      const orders = await count('payment_orders');
      const payments = await count('payments');
      const before = await balanceOf(alice.accountIds[0] ?? '');
      const variants: [Resource, { token: string; consentId: string }, object][] = [
        [SCHEDULED, scheduled, scheduledOf(daysFromToday(6))],
        [SCHEDULED, scheduled, scheduledOf(date, '25.01')],
        [SCHEDULED, scheduled, { ...initiation, RemittanceInformation: { Unstructured: ['Invoice 44'] } }],
        [SCHEDULED, scheduled, { ...initiation, EndToEndIdentification: 'ANOTHER.ONE' }],
        [STANDING, standing, standingOrderOf(date, 'DAIL', { NumberOfPayments: '4' })],
        [STANDING, standing, standingOrderOf(date, 'EvryDay', { NumberOfPayments: '5' })],
        [STANDING, standing, standingOrderOf(date, 'EvryDay')],
      ];
      for (const [resource, grant, variant] of variants) {
        assert.deepEqual(
          await errorsOf(await postOrder(grant.token, resource, grant.consentId, variant)),
          [['U002', 'Data.Initiation']],
          JSON.stringify(variant),
        );
      }
      // A token of one kind of consent does not make the other kind of order, nor a payment now.
      const { RequestedExecutionDateTime: _date, ...payNow } = initiation;
      assert.deepEqual(
        await errorCodes(
          await postOrder(scheduled.token, STANDING, standing.consentId, standingInitiation),
          403,
        ),
        ['NARR'],
      );
      assert.deepEqual(
        await errorCodes(
          await call(prism, scheduled.token, '/domestic-payments', {
            method: 'POST',
            body: { Data: { ConsentId: scheduled.consentId, Initiation: payNow }, Risk: {} },
          }),
          403,
        ),
        ['NARR'],
      );
      assert.deepEqual(
        await errorCodes(await postOrder(scheduled.token, SCHEDULED, standing.consentId, initiation), 400),
        ['U011'],
      );
      // The right order, signed by another app (as itself: not the caller), or not signed at all.
      const other = await newApp();
      const wronglySigned = call(prism, scheduled.token, SCHEDULED.orders, {
        method: 'POST',
        body: { Data: { ConsentId: scheduled.consentId, Initiation: initiation }, Risk: {} },
        signedBy: other,
      });
      assert.deepEqual(await errorsOf(await wronglySigned), [['U016', 'http://openbanking.org.uk/iss']]);
      const unsigned = call(lax, standing.token, STANDING.orders, {
        method: 'POST',
        body: { Data: { ConsentId: standing.consentId, Initiation: standingInitiation }, Risk: {} },
        signed: false,
      });
      assert.deepEqual(await errorsOf(await unsigned), [['U019', 'x-jws-signature']]);
      // Nor through the bank's own API: the consent's schedule binds its orders and forbids paying now.
      const own = (path: string, body: object) =>
        fetch(`${issuer}${path}`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${scheduled.token}`,
            'content-type': 'application/json',
            'idempotency-key': nextKey(),
          },
          body: JSON.stringify(body),
        });
      const terms = {
        instructedAmount: { amount: '25.00', currency: 'GBP' },
        creditor: { name: 'Corner Shop', iban: EXTERNAL_IBAN },
        reference: 'Invoice 43',
      };
      for (const [path, body] of [
        ['/v1/payments', terms],
        ['/v1/payment-orders', { ...terms, schedule: { firstDate: daysFromToday(6) } }],
        ['/v1/payment-orders', { ...terms, schedule: { firstDate: date, frequency: 'monthly' } }],
      ] as const) {
        const response = await own(path, body);
        const problem = (await response.json()) as { code?: string; type?: string };
        assert.equal(response.status, 422, `${path} ${JSON.stringify(problem)}`);
      }
      assert.equal(await count('payment_orders'), orders);
      assert.equal(await count('payments'), payments);
      assert.equal(await balanceOf(alice.accountIds[0] ?? ''), before);
      assert.equal(
        await consentStatus(app, SCHEDULED, scheduled.consentId),
        'AUTH',
        'still usable as authorised',
      );
      assert.equal(await consentStatus(app, STANDING, standing.consentId), 'AUTH');
    });

    it('replays a consent and an order under the same x-idempotency-key, setting one up', async () => {
      const app = await newApp();
      const initiation = standingOrderOf(daysFromToday(2), 'MNTH', { NumberOfPayments: '2' });
      const consentKey = nextKey();
      const first = await createConsent(app, STANDING, initiation, consentKey);
      const consents = await count('consents');
      const again = await createConsent(app, STANDING, initiation, consentKey);
      assert.equal(again.Data.ConsentId, first.Data.ConsentId);
      assert.equal(await count('consents'), consents);
      assert.deepEqual(
        await errorCodes(
          await postConsent(app, STANDING, standingOrderOf(daysFromToday(2), 'WEEK'), consentKey),
          400,
        ),
        ['NARR'],
      );

      const { accessToken: token } = await authorise(app, first.Data.ConsentId);
      const key = nextKey();
      const orders = await count('payment_orders');
      const made = await json<ObOrder>(
        await postOrder(token, STANDING, first.Data.ConsentId, initiation, key),
        201,
      );
      const replayed = await json<ObOrder>(
        await postOrder(token, STANDING, first.Data.ConsentId, initiation, key),
        201,
      );
      assert.equal(replayed.Data.DomesticStandingOrderId, made.Data.DomesticStandingOrderId);
      assert.equal(await count('payment_orders'), orders + 1, 'one order');
      // Another key: the consent was used up by the first.
      assert.deepEqual(
        await errorCodes(await postOrder(token, STANDING, first.Data.ConsentId, initiation), 409),
        ['NARR'],
      );
      assert.equal(await count('payment_orders'), orders + 1);
    });

    it("keeps one app's consents and orders from another, and the app's own token from setting one up", async () => {
      const owner = await newApp();
      const other = await newApp();
      const date = daysFromToday(4);
      const scheduledInitiation = scheduledOf(date, '3.00');
      const scheduled = await authorised(owner, SCHEDULED, scheduledInitiation);
      const standingInitiation = standingOrderOf(date, 'YEAR');
      const { Data } = await createConsent(owner, STANDING, standingInitiation);
      for (const path of [
        `${SCHEDULED.consents}/${scheduled.consentId}`,
        `${STANDING.consents}/${Data.ConsentId}`,
      ]) {
        assert.deepEqual(await errorCodes(await call(prism, other.appToken, path), 400), ['U011'], path);
      }
      // A consent of one resource does not exist at the other's path.
      assert.deepEqual(
        await errorCodes(
          await call(prism, owner.appToken, `${STANDING.consents}/${scheduled.consentId}`),
          400,
        ),
        ['U011'],
      );
      // The owner's app token (client credentials) is not the customer's authorisation.
      assert.deepEqual(
        await errorCodes(await postOrder(owner.appToken, STANDING, Data.ConsentId, standingInitiation), 403),
        ['NARR'],
      );
      const made = await json<ObOrder>(
        await postOrder(scheduled.token, SCHEDULED, scheduled.consentId, scheduledInitiation),
        201,
      );
      const id = made.Data.DomesticScheduledPaymentId ?? '';
      for (const path of [`${SCHEDULED.orders}/${id}`, `${SCHEDULED.orders}/${id}/payment-details`]) {
        assert.deepEqual(await errorCodes(await call(prism, other.appToken, path), 400), ['U011'], path);
      }
      // Nor is a scheduled payment a standing order.
      for (const path of [`${STANDING.orders}/${id}`, `${STANDING.orders}/${id}/payment-details`]) {
        assert.deepEqual(await errorCodes(await call(prism, owner.appToken, path), 400), ['U011'], path);
      }
      assert.deepEqual(
        await errorCodes(
          await call(prism, owner.appToken, `${SCHEDULED.orders}/not-an-id/payment-details`),
          400,
        ),
        ['U011'],
      );
      assert.equal((await readOrder(owner, SCHEDULED, id)).Data.DomesticScheduledPaymentId, id);
    });
  });
}

// What the tests saw is their record in the conformance table: written on request, otherwise checked.
after(() => {
  if (observed.length === 0) return;
  keepRecord(
    'uk-ob-pisp-orders',
    recordOf('uk-ob-pisp', 'src/standards/uk-ob/pisp-orders.test.ts', observed, {
      CreateDomesticScheduledPaymentConsents:
        'creditor by UK.OBIE.IBAN only; the date is honoured, not the time of day (every payment order here pays on a date); no DebtorAccount, LocalInstrument, ReadRefundAccount, Authorisation or SCASupportData',
      CreateDomesticStandingOrderConsents:
        'frequencies the bank pays exactly only (EvryDay, DAIL, WEEK, IntrvlWkDay:01, MNTH, IntrvlMnthDay:01 and :12 on the first payment’s day, :-01 from a 31st, YEAR); FirstPaymentDateTime required, its date honoured and not its time of day; every payment the same amount; no DebtorAccount, ReadRefundAccount, Authorisation or SCASupportData',
      GetDomesticStandingOrdersDomesticStandingOrderIdPaymentDetails: `the payments of the latest ${PAYMENT_DETAILS_RUNS_MAX} runs`,
    }),
  );
});
