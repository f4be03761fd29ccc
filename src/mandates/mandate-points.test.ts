// Mandate charges paid partly with loyalty points (issue 7): the charge's one transfer takes the money part from
// the customer, the points part from their points account (the bank funding its value), and pays the merchant
// the whole amount; the mandate's limits count that whole amount. Refunds give both parts back in proportion
// in one transfer each, squaring exactly on the last; a charge without points refunds in money as before.
// Every refusal changes nothing, and the ledger verifies per currency, points included.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { balancesOf } from '../ledger/model.ts';
import type { Loyalty } from '../loyalty/service.ts';
import type { BuiltApp } from '../main.ts';
import { createCustomer, newClientApp, signUpDeveloper, startBank } from '../testing/bank.ts';
import { json, problem } from '../testing/calls.ts';
import { authoriseConsent } from '../testing/consent-flow.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';

const TOKEN = 'mandate-points-test-operator-token-0123456789';
const REDIRECT = 'http://localhost:3000/callback';
const PASSWORD = 'mandate points test password';
const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();

interface ChargeJson {
  id: string;
  paymentId: string;
  status: string;
  failureCode: string | null;
  instructedAmount: { amount: string; currency: string };
  refunded: string;
}
interface RefundJson {
  id: string;
  status: string;
  failureCode: string | null;
  instructedAmount: { amount: string; currency: string };
}
interface LoyaltyRefundRow {
  amount: string;
  money: string;
  points_value: string;
  points: string;
  status: string;
}

for (const database of testDatabases()) {
  describe(`mandate charges with loyalty points on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let loyalty: Loyalty;
    let issuer: string;
    let developer: Record<string, string>;
    let apps = 0;
    let keys = 0;
    let aliceId: string;
    let aliceCurrent: string;
    let aliceLedger: string;
    let bobCurrent: string;
    let rideCoAccount: string;
    let rideCoLedger: string;
    const ibanOf = new Map<string, string>();

    // ---- calls --------------------------------------------------------------------------------------------

    const call = (
      method: 'GET' | 'POST' | 'PUT',
      url: string,
      options: { token?: string; key?: string; body?: unknown } = {},
    ) =>
      built.app.inject({
        method,
        url,
        headers: {
          ...(options.token && { authorization: `Bearer ${options.token}` }),
          ...(options.key && { 'idempotency-key': options.key }),
        },
        ...(options.body !== undefined && { payload: options.body as object }),
      });
    const nextKey = () => `mandate-points-${++keys}`;
    const receive = async (accountId: string, amount: string) =>
      json(
        await call('POST', '/v1/sandbox/incoming-payments', {
          token: TOKEN,
          key: `incoming-${++keys}`,
          body: {
            creditorIban: ibanOf.get(accountId),
            instructedAmount: { amount, currency: 'EUR' },
            debtor: { name: 'Northwind Ltd' },
          },
        }),
        201,
      );

    // ---- balances -----------------------------------------------------------------------------------------

    const money = async (accountId: string) => {
      const account = await built.accounts?.find(accountId);
      assert.ok(account, accountId);
      return (await built.accounts?.balances(account))?.posted ?? 0n;
    };
    const ledgerIdOf = async (code: string) => {
      const [account] = await built.ledger.listAccounts({ code }, undefined, 1);
      assert.ok(account, code);
      return account.id;
    };
    const bankPosted = async (code: string) => {
      const [account] = await built.ledger.listAccounts({ code }, undefined, 1);
      return account ? balancesOf(account).posted : 0n;
    };
    const count = async (table: string) =>
      Number((await db.query<{ n: number }>(`select count(*)::int as n from ${table}`))[0]?.n);
    /** Every balance a charge or refund touches, and every row one records. */
    const snapshot = async () => ({
      alice: await money(aliceCurrent),
      alicePoints: (await loyalty.balance(aliceCurrent)) as bigint,
      rideCo: await money(rideCoAccount),
      funding: await bankPosted('bank:loyalty-funding-eur'),
      issued: await bankPosted('bank:points-issued-pts'),
      charges: await count('mandate_charges'),
      refunds: await count('mandate_refunds'),
      payments: await count('payments'),
      debits: await count('loyalty_debits'),
      loyaltyRefunds: await count('loyalty_refunds'),
    });
    /** The postings of the transfer under `key`, in order, with accounts named. */
    const postings = async (key: string, names: Map<string, string>) => {
      const rows = await db.query<{ debit: string; credit: string; amount: string }>(
        `select p.debit::text as debit, p.credit::text as credit, p.amount::text as amount
           from ledger_transfers t,
                unnest(t.debit_account_ids, t.credit_account_ids, t.amounts) with ordinality as p(debit, credit, amount, i)
          where t.idempotency_key = $1 order by p.i`,
        [key],
      );
      return rows.map((row) => [
        names.get(row.debit) ?? row.debit,
        names.get(row.credit) ?? row.credit,
        row.amount,
      ]);
    };
    const accountNames = async () =>
      new Map([
        [aliceLedger, 'alice'],
        [rideCoLedger, 'rideCo'],
        [await ledgerIdOf(`points:${aliceCurrent}`), 'alice points'],
        [await ledgerIdOf('bank:loyalty-funding-eur'), 'funding'],
        [await ledgerIdOf('bank:points-issued-pts'), 'issued'],
      ]);
    const loyaltyRefund = async (id: string) =>
      (
        await db.query<LoyaltyRefundRow>(
          `select amount::text, money::text, points_value::text, points::text, status
             from loyalty_refunds where id = $1`,
          [id],
        )
      )[0];

    // ---- the merchant app and its mandate -----------------------------------------------------------------

    const newApp = () =>
      newClientApp({ built, issuer }, developer, {
        name: `Points Ride Co ${++apps}`,
        scopes: ['openid', 'payments'],
        redirectUri: REDIRECT,
      });
    type TestApp = Awaited<ReturnType<typeof newApp>>;
    /** A mandate Alice authorised on her current account: its id. */
    const authorisedMandate = async (app: TestApp, overrides: Record<string, unknown> = {}) => {
      const proposed = json<{ id: string }>(
        await call('POST', '/v1/mandates', {
          token: app.appToken,
          body: {
            currency: 'EUR',
            maxPerCharge: '20.00',
            periodicLimits: [{ period: 'month', maxAmount: '200.00' }],
            creditor: { name: 'Ride Co Ltd', iban: ibanOf.get(rideCoAccount) },
            expiresAt: inDays(90),
            ...overrides,
          },
        }),
        201,
      );
      await authoriseConsent({
        issuer,
        config: app.config,
        redirectUri: REDIRECT,
        scope: 'openid payments',
        type: 'mandate',
        consentId: proposed.id,
        username: 'alice',
        password: PASSWORD,
        accounts: [aliceCurrent],
      });
      return proposed.id;
    };
    const charge = (app: TestApp, mandateId: string, amount: string, points?: string, key = nextKey()) =>
      call('POST', `/v1/mandates/${mandateId}/charges`, {
        token: app.appToken,
        key,
        body: { instructedAmount: { amount, currency: 'EUR' }, ...(points && { points }) },
      });
    const refund = (app: TestApp, mandateId: string, chargeId: string, amount: string, key = nextKey()) =>
      call('POST', `/v1/mandates/${mandateId}/charges/${chargeId}/refunds`, {
        token: app.appToken,
        key,
        body: { instructedAmount: { amount, currency: 'EUR' } },
      });

    before(async () => {
      db = await database.open();
      ({ built, issuer } = await startBank(db, { adminToken: TOKEN }));
      assert.ok(built.loyalty);
      loyalty = built.loyalty;
      developer = await signUpDeveloper(built.app, 'mandate-points-dev@example.com', PASSWORD);
      const alice = await createCustomer(built, { username: 'alice', password: PASSWORD });
      const bob = await createCustomer(built, { username: 'bob', password: PASSWORD });
      const rideCo = await createCustomer(built, { username: 'rideco', password: PASSWORD });
      aliceId = alice.customerId;
      [aliceCurrent = ''] = alice.accountIds;
      [aliceLedger = ''] = alice.ledgerAccountIds;
      [bobCurrent = ''] = bob.accountIds;
      [rideCoAccount = ''] = rideCo.accountIds;
      [rideCoLedger = ''] = rideCo.ledgerAccountIds;
      for (const id of [aliceCurrent, bobCurrent, rideCoAccount]) {
        ibanOf.set(id, (await built.accounts?.find(id))?.iban ?? '');
      }
      for (const rule of (await built.fraud?.rules()) ?? []) {
        await built.fraud?.updateRule(rule.id, { enabled: false, changedBy: 'mandate-points-test' });
      }
      await receive(aliceCurrent, '500.00');
      // The bank's terms: 100 points pay 1.00 EUR; category 9999 earns 1 point per cent (to hand points out).
      json(
        await call('PUT', '/v1/admin/loyalty/redemption-rates/EUR', {
          token: TOKEN,
          body: { points: '100', amount: '1.00', changedBy: 'ops-anna' },
        }),
        201,
      );
      json(
        await call('PUT', '/v1/admin/loyalty/earn-rules/EUR/9999', {
          token: TOKEN,
          body: { points: '1', per: '0.01', changedBy: 'ops-anna' },
        }),
        201,
      );
      // Alice earns 5000 points paying Bob 50.00 at category 9999.
      const paid = await built.payments?.initiate({ kind: 'customer', customerId: aliceId }, nextKey(), {
        instructedAmount: { amount: '50.00', currency: 'EUR' },
        creditor: { name: 'Bob Tester', iban: ibanOf.get(bobCurrent) ?? '' },
        debtorAccountId: aliceCurrent,
        merchantCategory: '9999',
      });
      assert.ok(paid?.ok && paid.payment.status === 'settled');
      assert.equal(await loyalty.balance(aliceCurrent), 5000n);
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    it('takes a charge partly in points in one transfer, the merchant receiving the whole amount', async () => {
      const app = await newApp();
      const mandateId = await authorisedMandate(app);
      const before = await snapshot();

      const charged = json<ChargeJson>(await charge(app, mandateId, '10.00', '333', 'ride-1'), 201);
      assert.deepEqual(
        [charged.status, charged.failureCode, charged.instructedAmount.amount],
        ['succeeded', null, '10.00'],
      );
      const after = await snapshot();
      assert.equal(after.alice, before.alice - 667n, 'the money part: 10.00 less the points value 3.33');
      assert.equal(after.alicePoints, before.alicePoints - 333n);
      assert.equal(after.rideCo, before.rideCo + 1000n, 'the merchant receives the full amount');
      assert.equal(after.funding, before.funding + 333n, 'the bank pays the points part');
      assert.equal(after.issued, before.issued - 333n, 'the points spent are retired');
      assert.deepEqual(await postings(`payment:${charged.paymentId}`, await accountNames()), [
        ['alice', 'rideCo', '667'],
        ['funding', 'rideCo', '333'],
        ['alice points', 'issued', '333'],
      ]);
      // The payment behind the charge shows the split as any payment does.
      const payment = json<{ points?: Record<string, string> }>(
        await call('GET', `/v1/payments/${charged.paymentId}`, { token: app.appToken }),
      );
      assert.deepEqual(payment.points, { redeemed: '333', value: '3.33', money: '6.67', earned: '0' });

      // The same key and body replay; the same key with other points is another request.
      const replay = await charge(app, mandateId, '10.00', '333', 'ride-1');
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      assert.equal(json<ChargeJson>(replay, 201).id, charged.id);
      assert.deepEqual(problem(await charge(app, mandateId, '10.00', '334', 'ride-1')), [
        422,
        'idempotency_key_reused',
      ]);
      assert.deepEqual(await snapshot(), after, 'a replay moves nothing');
    });

    it('refuses points it cannot take before recording anything', async () => {
      const app = await newApp();
      const mandateId = await authorisedMandate(app, { maxPerCharge: '100.00' });
      const before = await snapshot();
      assert.deepEqual(problem(await charge(app, mandateId, '10.00', '1001')), [422, 'points_exceed_amount']);
      assert.ok(before.alicePoints < 10_000n);
      assert.deepEqual(problem(await charge(app, mandateId, '100.00', '10000')), [
        422,
        'insufficient_points',
      ]);
      assert.deepEqual(problem(await charge(app, mandateId, '10.00', '0')), [400, 'validation_failed']);
      assert.deepEqual(problem(await charge(app, mandateId, '10.00', '1.5')), [400, 'validation_failed']);
      assert.deepEqual(await snapshot(), before);
    });

    it('counts the whole charge against the limits, whatever part points pay', async () => {
      const app = await newApp();
      const mandateId = await authorisedMandate(app, {
        maxPerCharge: '15.00',
        periodicLimits: [{ period: 'month', maxAmount: '25.00' }],
      });
      // 15.00 paid almost all in points (0.01 in money) still uses 15.00 of the month.
      json<ChargeJson>(await charge(app, mandateId, '15.00', '1499'), 201);
      const mandate = json<{ periodicLimits: { charged?: string; remaining?: string }[] }>(
        await call('GET', `/v1/mandates/${mandateId}`, { token: app.appToken }),
      );
      assert.deepEqual(
        [mandate.periodicLimits[0]?.charged, mandate.periodicLimits[0]?.remaining],
        ['15.00', '10.00'],
      );
      const before = await snapshot();
      const overMonth = await charge(app, mandateId, '10.01', '1001');
      assert.deepEqual(problem(overMonth), [422, 'mandate_limit_exceeded']);
      assert.equal((overMonth.json() as { limit: string }).limit, 'month');
      const overCharge = await charge(app, mandateId, '15.01', '1501');
      assert.deepEqual(problem(overCharge), [422, 'mandate_limit_exceeded']);
      assert.equal((overCharge.json() as { limit: string }).limit, 'charge');
      assert.deepEqual(await snapshot(), before, 'a refused charge records and moves nothing');
      assert.equal(json<ChargeJson>(await charge(app, mandateId, '10.00', '1000'), 201).status, 'succeeded');
    });

    it('refunds a points-paid charge in proportion, squaring both parts on the last refund', async () => {
      const app = await newApp();
      const mandateId = await authorisedMandate(app);
      const charged = json<ChargeJson>(await charge(app, mandateId, '10.00', '333'), 201);
      const names = await accountNames();
      const start = await snapshot();

      // 5.00 of 10.00: the points part is floor(3.33 x 5 / 10) = 1.66, the money part the remaining 3.34.
      const first = json<RefundJson>(await refund(app, mandateId, charged.id, '5.00', 'back-1'), 201);
      assert.deepEqual([first.status, first.failureCode], ['succeeded', null]);
      const mid = await snapshot();
      assert.equal(mid.alice, start.alice + 334n);
      assert.equal(mid.alicePoints, start.alicePoints + 166n);
      assert.equal(mid.rideCo, start.rideCo - 500n, 'the merchant pays back the whole refund');
      assert.equal(mid.funding, start.funding - 166n, "the points' value goes back to the bank");
      assert.equal(mid.issued, start.issued + 166n);
      assert.deepEqual(await postings(`mandate-refund:${first.id}`, names), [
        ['rideCo', 'alice', '334'],
        ['rideCo', 'funding', '166'],
        ['issued', 'alice points', '166'],
      ]);
      assert.deepEqual(await loyaltyRefund(first.id), {
        amount: '500',
        money: '334',
        points_value: '166',
        points: '166',
        status: 'applied',
      });

      // A replay under the refund's key moves nothing; another body under it is refused.
      const replay = await refund(app, mandateId, charged.id, '5.00', 'back-1');
      assert.equal(replay.headers['idempotent-replayed'], 'true');
      assert.equal(json<RefundJson>(replay, 201).id, first.id);
      assert.deepEqual(problem(await refund(app, mandateId, charged.id, '4.00', 'back-1')), [
        422,
        'idempotency_key_reused',
      ]);
      assert.deepEqual(problem(await refund(app, mandateId, charged.id, '5.01')), [
        422,
        'refund_exceeds_charge',
      ]);
      assert.deepEqual(await snapshot(), mid);

      // The rest: 3.33 - 1.66 = 1.67 in points, 6.67 - 3.34 = 3.33 in money.
      const second = json<RefundJson>(await refund(app, mandateId, charged.id, '5.00'), 201);
      assert.equal(second.status, 'succeeded');
      const end = await snapshot();
      assert.equal(end.alice, start.alice + 667n, 'all the money part back');
      assert.equal(end.alicePoints, start.alicePoints + 333n, 'all the points back');
      assert.equal(end.rideCo, start.rideCo - 1000n);
      assert.equal(end.funding, start.funding - 333n);
      assert.equal(end.issued, start.issued + 333n);
      assert.deepEqual(await postings(`mandate-refund:${second.id}`, names), [
        ['rideCo', 'alice', '333'],
        ['rideCo', 'funding', '167'],
        ['issued', 'alice points', '167'],
      ]);
      assert.deepEqual(problem(await refund(app, mandateId, charged.id, '0.01')), [
        422,
        'refund_exceeds_charge',
      ]);
      const detail = json<ChargeJson & { refunds: RefundJson[] }>(
        await call('GET', `/v1/mandates/${mandateId}/charges/${charged.id}`, { token: app.appToken }),
      );
      assert.deepEqual(
        [detail.refunded, detail.refunds.map((r) => [r.instructedAmount.amount, r.status])],
        [
          '10.00',
          [
            ['5.00', 'succeeded'],
            ['5.00', 'succeeded'],
          ],
        ],
      );
      // The points account's history names the refunds.
      const history = await loyalty.history(aliceCurrent, undefined, 2);
      assert.deepEqual(
        history.map((movement) => [movement.kind, movement.points, movement.refundId]),
        [
          ['refunded', 167n, second.id],
          ['refunded', 166n, first.id],
        ],
      );
    });

    it('refunds a charge without points in money only, as before', async () => {
      const app = await newApp();
      const mandateId = await authorisedMandate(app);
      const before = await snapshot();
      const charged = json<ChargeJson>(await charge(app, mandateId, '8.00'), 201);
      const names = await accountNames();
      assert.deepEqual(await postings(`payment:${charged.paymentId}`, names), [['alice', 'rideCo', '800']]);
      const refunded = json<RefundJson>(await refund(app, mandateId, charged.id, '3.00'), 201);
      assert.equal(refunded.status, 'succeeded');
      assert.deepEqual(await postings(`mandate-refund:${refunded.id}`, names), [['rideCo', 'alice', '300']]);
      assert.deepEqual(await snapshot(), {
        ...before,
        alice: before.alice - 500n,
        rideCo: before.rideCo + 500n,
        charges: before.charges + 1,
        refunds: before.refunds + 1,
        payments: before.payments + 1,
      });
      assert.equal(await loyaltyRefund(refunded.id), undefined);
    });

    it('voids the points part of a refund the merchant cannot pay, and refunds it later in full', async () => {
      const app = await newApp();
      const shop = await createCustomer(built, { username: 'cornershop', password: PASSWORD });
      const [shopAccount = ''] = shop.accountIds;
      const [shopLedger = ''] = shop.ledgerAccountIds;
      ibanOf.set(shopAccount, (await built.accounts?.find(shopAccount))?.iban ?? '');
      const mandateId = await authorisedMandate(app, {
        creditor: { name: 'Corner Shop', iban: ibanOf.get(shopAccount) },
      });
      const charged = json<ChargeJson>(await charge(app, mandateId, '10.00', '200'), 201);
      // The shop spends what it was paid.
      const spend = (debit: string, credit: string) =>
        call('POST', '/v1/ledger/transfers', {
          token: TOKEN,
          key: nextKey(),
          body: { postings: [{ debitAccountId: debit, creditAccountId: credit, amount: '10.00' }] },
        });
      json(await spend(shopLedger, rideCoLedger), 201);
      const before = await snapshot();
      const failed = json<RefundJson>(await refund(app, mandateId, charged.id, '4.00'), 201);
      assert.deepEqual([failed.status, failed.failureCode], ['failed', 'insufficient_funds']);
      assert.deepEqual(
        { ...(await snapshot()), refunds: before.refunds, loyaltyRefunds: before.loyaltyRefunds },
        before,
        'nothing moved',
      );
      assert.equal((await loyaltyRefund(failed.id))?.status, 'voided');

      // Once the shop can pay, the whole charge is refundable again, both parts.
      json(await spend(rideCoLedger, shopLedger), 201);
      const again = json<RefundJson>(await refund(app, mandateId, charged.id, '10.00'), 201);
      assert.equal(again.status, 'succeeded');
      const after = await snapshot();
      assert.equal(after.alice, before.alice + 800n);
      assert.equal(after.alicePoints, before.alicePoints + 200n);
      assert.equal(after.funding, before.funding - 200n);
      assert.deepEqual(await loyaltyRefund(again.id), {
        amount: '1000',
        money: '800',
        points_value: '200',
        points: '200',
        status: 'applied',
      });
    });

    it('finishes a points refund whose outcome was never recorded, moving nothing twice', async () => {
      const app = await newApp();
      const mandateId = await authorisedMandate(app);
      const charged = json<ChargeJson>(await charge(app, mandateId, '6.00', '300'), 201);
      const refunded = json<RefundJson>(await refund(app, mandateId, charged.id, '2.00'), 201);
      // As if the process died after the transfer, before recording the refund's outcome.
      await db.query(`update mandate_refunds set status = 'pending', created_at = $2 where id = $1`, [
        refunded.id,
        new Date(Date.now() - 5 * 60_000),
      ]);
      const before = await snapshot();
      const mandates = built.mandates;
      assert.ok(mandates);
      assert.ok((await mandates.recover()).refunds >= 1);
      assert.deepEqual(await snapshot(), before, 'the same transfer was found under the same key');
      const detail = json<ChargeJson & { refunds: RefundJson[] }>(
        await call('GET', `/v1/mandates/${mandateId}/charges/${charged.id}`, { token: app.appToken }),
      );
      assert.deepEqual([detail.refunded, detail.refunds[0]?.status], ['2.00', 'succeeded']);
      assert.equal((await loyaltyRefund(refunded.id))?.status, 'applied');
    });

    it('leaves a ledger that verifies, and refund sums that agree between mandates and loyalty', async () => {
      const report = await built.ledger.verify();
      assert.ok(
        report.ok,
        JSON.stringify(report, (_, value) => (typeof value === 'bigint' ? `${value}` : value)),
      );
      // What each points-paid charge says was refunded is what its loyalty debit counts as refunded.
      const [drift] = await db.query<{ n: number }>(
        `select count(*)::int as n from mandate_charges c join loyalty_debits d on d.id = c.payment_id
          where c.refunded <> d.refunded_amount`,
      );
      assert.equal(drift?.n, 0);
      const [pending] = await db.query<{ n: number }>(
        `select ((select count(*) from mandate_refunds where status = 'pending')
               + (select count(*) from loyalty_refunds where status = 'planned'))::int as n`,
      );
      assert.equal(pending?.n, 0);
    });
  });
}
