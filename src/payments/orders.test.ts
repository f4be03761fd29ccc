// Scheduled payments and standing orders: the calendar arithmetic, and the scheduler paying each occurrence
// exactly once, catching up after downtime, reporting a day without funds, and stopping when cancelled.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BuiltApp } from '../main.ts';
import { currencyExponent, type Minor, parseAmount } from '../money.ts';
import { createCustomer, startBank } from '../testing/bank.ts';
import { POSTGRES_URL, postgresDatabase, type TestDb, testDatabases } from '../testing/databases.ts';
import { testPii } from '../testing/pii.ts';
import { PaymentOrders } from './orders.ts';
import { formatDate, nthRun, occurrence, parseDate } from './schedule.ts';

describe('standing order dates', () => {
  it('keeps the day of the month, falling on the last day of shorter months', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 12, 13].map((n) => occurrence('2027-01-31', 'monthly', n)),
      ['2027-01-31', '2027-02-28', '2027-03-31', '2027-04-30', '2027-05-31', '2028-01-31', '2028-02-29'],
    );
    assert.equal(occurrence('2027-11-30', 'monthly', 3), '2028-02-29');
  });

  it('pays a 29 February order on the 28th in common years', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4].map((n) => occurrence('2028-02-29', 'yearly', n)),
      ['2028-02-29', '2029-02-28', '2030-02-28', '2031-02-28', '2032-02-29'],
    );
  });

  it('steps days and weeks across month and year ends', () => {
    assert.equal(occurrence('2027-12-30', 'daily', 3), '2028-01-02');
    assert.equal(occurrence('2028-02-25', 'weekly', 1), '2028-03-03');
    assert.equal(occurrence('2027-02-25', 'weekly', 1), '2027-03-04');
  });

  it('reads every date of years 0001 to 9999 as written, and no other', () => {
    // Date.UTC reads years 0 to 99 as 1900 to 1999: 0004 is a leap year, 1904 too, but 0100 is not.
    assert.equal(formatDate(parseDate('0001-01-01') as Date), '0001-01-01');
    assert.equal(formatDate(parseDate('0004-02-29') as Date), '0004-02-29');
    assert.equal(formatDate(parseDate('0099-12-31') as Date), '0099-12-31');
    assert.equal(formatDate(parseDate('9999-12-31') as Date), '9999-12-31');
    for (const text of ['0000-01-01', '0100-02-29', '2027-02-29', '2027-13-01', '2027-1-01']) {
      assert.equal(parseDate(text), undefined, text);
    }
    assert.equal(occurrence('0031-01-31', 'monthly', 1), '0031-02-28');
  });

  it('ends at the count or the last date, and a scheduled payment happens once', () => {
    const base = { first: '2027-01-15', frequency: 'monthly' as const };
    assert.equal(nthRun({ ...base, last: null, countMax: 3 }, 2), '2027-03-15');
    assert.equal(nthRun({ ...base, last: null, countMax: 3 }, 3), undefined);
    assert.equal(nthRun({ ...base, last: '2027-03-14', countMax: null }, 2), undefined);
    assert.equal(
      nthRun({ first: '2027-01-15', frequency: null, last: null, countMax: null }, 0),
      '2027-01-15',
    );
    assert.equal(nthRun({ first: '2027-01-15', frequency: null, last: null, countMax: null }, 1), undefined);
  });
});

const TOKEN = 'orders-test-operator-token-0123456789abcdef';
const CREDITOR = { name: 'Landlord Ltd', iban: 'DE89370400440532013000' };

for (const database of testDatabases()) {
  describe(`standing orders on ${database.name}`, () => {
    let db: TestDb;
    let built: BuiltApp;
    let clock = new Date('2027-01-30T08:00:00Z');
    let orders: PaymentOrders;
    let customers = 0;

    before(async () => {
      db = await database.open();
      ({ built } = await startBank(db, { adminToken: TOKEN }));
      assert.ok(built.payments && built.consents);
      orders = new PaymentOrders({
        db,
        payments: built.payments,
        consents: built.consents,
        pii: await testPii(db),
        now: () => clock,
      });
    });
    after(async () => {
      await built.app.close();
      await db.close();
    });

    /** A customer whose EUR account holds `balance`. */
    const payer = async (balance: string) => {
      const { customerId, accountIds } = await createCustomer(built, {
        username: `tenant${++customers}`,
        password: 'a tenant password',
      });
      const account = await built.accounts?.find(accountIds[0] as string);
      assert.ok(account);
      const funded = await built.payments?.receiveIncoming(`fund-${customerId}`, {
        creditorIban: account.iban,
        amount: parseAmount(balance) as { minor: Minor; scale: number },
        currency: 'EUR',
        debtorName: 'Employer',
      });
      assert.ok(funded?.ok);
      return { customerId, account };
    };
    const balanceOf = async (accountId: string) => {
      const account = await built.accounts?.find(accountId);
      assert.ok(account);
      return (await built.accounts?.balances(account))?.posted;
    };
    const rent = (schedule: Record<string, unknown>, amount = '500.00') => ({
      instructedAmount: { amount, currency: 'EUR' },
      creditor: CREDITOR,
      reference: 'Rent',
      schedule: schedule as never,
    });

    it('pays each month once, catches up after downtime, and completes at the count', async () => {
      clock = new Date('2027-01-30T08:00:00Z');
      const { customerId, account } = await payer('2000.00');
      const created = await orders.create({ kind: 'customer', customerId }, 'rent-1', {
        ...rent({ firstDate: '2027-01-31', frequency: 'monthly', count: 3 }),
        debtorAccountId: account.id,
      });
      assert.ok(created.ok, JSON.stringify(created));
      const id = created.order.id;

      assert.deepEqual(
        await orders.runDue(),
        { runsCreated: 0, paid: 0, failed: 0 },
        'nothing due the day before',
      );
      clock = new Date('2027-01-31T00:05:00Z');
      assert.deepEqual(await orders.runDue(), { runsCreated: 1, paid: 1, failed: 0 });
      assert.deepEqual(
        await orders.runDue(),
        { runsCreated: 0, paid: 0, failed: 0 },
        'a second pass pays nothing',
      );
      // Down from 1 February to 31 March: February's (the 28th) and March's are both paid on restart.
      clock = new Date('2027-03-31T09:00:00Z');
      assert.deepEqual(await orders.runDue(), { runsCreated: 2, paid: 2, failed: 0 });
      const order = await orders.get({ customerId }, id);
      assert.deepEqual(
        order?.runs.map((run) => [run.runOn, run.status]),
        [
          ['2027-01-31', 'paid'],
          ['2027-02-28', 'paid'],
          ['2027-03-31', 'paid'],
        ],
      );
      assert.equal(order?.status, 'completed');
      assert.equal(order?.nextRunOn, null);
      assert.equal(await balanceOf(account.id), 50_000n, '2000.00 less three rents of 500.00');
      clock = new Date('2027-04-30T09:00:00Z');
      assert.deepEqual(await orders.runDue(), { runsCreated: 0, paid: 0, failed: 0 });
    });

    it('reports a day without funds, and pays the next occurrence as a new payment', async () => {
      clock = new Date('2027-01-30T08:00:00Z');
      const { customerId, account } = await payer('700.00');
      const created = await orders.create({ kind: 'customer', customerId }, 'rent-2', {
        ...rent({ firstDate: '2027-02-01', frequency: 'monthly' }),
        debtorAccountId: account.id,
      });
      assert.ok(created.ok);
      clock = new Date('2027-02-01T06:00:00Z');
      assert.deepEqual(await orders.runDue(), { runsCreated: 1, paid: 1, failed: 0 });
      clock = new Date('2027-03-01T06:00:00Z');
      assert.deepEqual(await orders.runDue(), { runsCreated: 1, paid: 0, failed: 1 }, '200.00 left: refused');
      const order = await orders.get({ customerId }, created.order.id);
      assert.deepEqual(order?.runs.at(-1)?.outcome, 'insufficient_funds');
      assert.equal(order?.status, 'active', 'the order goes on');
      assert.equal(await balanceOf(account.id), 20_000n);
      assert.deepEqual(await orders.runDue(), { runsCreated: 0, paid: 0, failed: 0 }, 'not retried');
    });

    it('stops a cancelled order; only its customer or the app that set it up may cancel', async () => {
      clock = new Date('2027-01-30T08:00:00Z');
      const { customerId, account } = await payer('900.00');
      const other = await payer('10.00');
      const created = await orders.create({ kind: 'customer', customerId }, 'rent-3', {
        ...rent({ firstDate: '2027-02-05', frequency: 'weekly' }),
        debtorAccountId: account.id,
      });
      assert.ok(created.ok);
      assert.equal(await orders.cancel({ customerId: other.customerId }, created.order.id), 'not_found');
      assert.equal(
        await orders.cancel({ clientId: '00000000-0000-7000-8000-000000000000' }, created.order.id),
        'not_found',
      );
      const cancelled = await orders.cancel({ customerId }, created.order.id);
      assert.ok(typeof cancelled === 'object' && cancelled.status === 'cancelled');
      assert.equal(await orders.cancel({ customerId }, created.order.id), 'not_active');
      clock = new Date('2027-02-20T06:00:00Z');
      await orders.runDue();
      assert.equal(await balanceOf(account.id), 90_000n, 'nothing paid');
    });

    it('lets the customer set up, list, read and cancel orders at /v1/me/payment-orders', async () => {
      const { account } = await payer('50.00');
      const username = `tenant${customers}`;
      const { issuer } = {
        issuer: `http://127.0.0.1:${(built.app.server.address() as { port: number }).port}`,
      };
      const signIn = await fetch(`${issuer}/me/sign-in`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username, password: 'a tenant password', code: '123456' }),
        redirect: 'manual',
      });
      const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      const call = (method: string, path: string, body?: unknown, key?: string) =>
        fetch(`${issuer}${path}`, {
          method,
          headers: {
            cookie,
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
            ...(key ? { 'idempotency-key': key } : {}),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
      const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
      const body = {
        instructedAmount: { amount: '5.00', currency: 'EUR' },
        creditor: CREDITOR,
        debtorAccountId: account.id,
        schedule: { firstDate: tomorrow, frequency: 'weekly', count: 4 },
      };
      assert.equal(
        (await call('POST', '/v1/me/payment-orders', body)).status,
        400,
        'Idempotency-Key required',
      );
      const created = await call('POST', '/v1/me/payment-orders', body, 'gym-1');
      assert.equal(created.status, 201);
      const order = (await created.json()) as { id: string; kind: string; status: string; nextRunOn: string };
      assert.deepEqual([order.kind, order.status, order.nextRunOn], ['standing', 'active', tomorrow]);
      const listed = (await (await call('GET', '/v1/me/payment-orders')).json()) as {
        orders: { id: string }[];
      };
      assert.deepEqual(
        listed.orders.map((o) => o.id),
        [order.id],
      );
      const bad = await call(
        'POST',
        '/v1/me/payment-orders',
        { ...body, schedule: { firstDate: '2020-01-01' } },
        'gym-2',
      );
      assert.deepEqual(
        [bad.status, ((await bad.json()) as { code: string }).code],
        [422, 'invalid_schedule'],
      );
      assert.equal((await call('DELETE', `/v1/me/payment-orders/${order.id}`)).status, 200);
      const again = await call('DELETE', `/v1/me/payment-orders/${order.id}`);
      assert.deepEqual(
        [again.status, ((await again.json()) as { code: string }).code],
        [409, 'order_not_active'],
      );
      assert.equal((await fetch(`${issuer}/v1/me/payment-orders/${order.id}`)).status, 401);
    });

    it('refuses impossible schedules and replays the same key', async () => {
      clock = new Date('2027-01-30T08:00:00Z');
      const { customerId, account } = await payer('100.00');
      const customer = { kind: 'customer' as const, customerId };
      const cases: [Record<string, unknown>, string][] = [
        [{ firstDate: '2027-01-29' }, 'in the past'],
        [{ firstDate: '2027-02-30' }, 'not a date'],
        [{ firstDate: '2029-01-01' }, 'ahead'],
        [{ firstDate: '2027-02-01', frequency: 'monthly', lastDate: '2027-01-31' }, 'before'],
        [{ firstDate: '2027-02-01', count: 3 }, 'once'],
        [{ firstDate: '2027-02-01', frequency: 'monthly', count: 0 }, 'count'],
      ];
      for (const [schedule, detail] of cases) {
        const outcome = await orders.create(customer, `bad-${detail}`, {
          ...rent(schedule),
          debtorAccountId: account.id,
        });
        assert.ok(!outcome.ok && outcome.code === 'invalid_schedule', JSON.stringify(schedule));
        assert.match(String(outcome.detail), new RegExp(detail));
      }
      const body = { ...rent({ firstDate: '2027-03-01' }), debtorAccountId: account.id };
      const first = await orders.create(customer, 'once', body);
      const again = await orders.create(customer, 'once', body);
      assert.ok(first.ok && again.ok && again.replayed && again.order.id === first.order.id);
      const changed = await orders.create(customer, 'once', { ...body, reference: 'Other' });
      assert.ok(!changed.ok && changed.code === 'idempotency_key_reused');
      assert.equal(first.order.kind, 'scheduled');
    });
  });
}

const postgresUrl = POSTGRES_URL;
if (postgresUrl) {
  describe('the scheduler in two processes on postgres', () => {
    it('pays every occurrence exactly once', async () => {
      const first = await postgresDatabase(postgresUrl).open();
      const second = await postgresDatabase(postgresUrl).open({ schema: first.schema as string });
      const { built } = await startBank(first, { adminToken: TOKEN });
      try {
        let clock = new Date('2027-01-30T08:00:00Z');
        const scheduler = async (db: TestDb) =>
          new PaymentOrders({
            db,
            payments: built.payments as NonNullable<BuiltApp['payments']>,
            consents: built.consents as NonNullable<BuiltApp['consents']>,
            pii: await testPii(db),
            now: () => clock,
          });
        const a = await scheduler(first);
        const b = await scheduler(second);
        const ids: string[] = [];
        for (let i = 0; i < 20; i++) {
          const { customerId, accountIds } = await createCustomer(built, {
            username: `payer${i}`,
            password: 'a payer password',
          });
          const account = await built.accounts?.find(accountIds[0] as string);
          assert.ok(account);
          await built.payments?.receiveIncoming(`fund-${i}`, {
            creditorIban: account.iban,
            amount: { minor: 100_000n as Minor, scale: currencyExponent('EUR') ?? 2 },
            currency: 'EUR',
            debtorName: 'Employer',
          });
          const created = await a.create({ kind: 'customer', customerId }, `daily-${i}`, {
            instructedAmount: { amount: '1.00', currency: 'EUR' },
            creditor: CREDITOR,
            schedule: { firstDate: '2027-02-01', frequency: 'daily', count: 5 },
            debtorAccountId: account.id,
          });
          assert.ok(created.ok);
          ids.push(created.order.id);
        }
        clock = new Date('2027-02-10T00:00:00Z');
        const passes = await Promise.all([a.runDue(), b.runDue(), a.runDue(), b.runDue()]);
        // Runs left pending by a pass that lost the race are paid by the next one.
        await Promise.all([a.runDue(), b.runDue()]);
        const paid = passes.reduce((sum, pass) => sum + pass.paid, 0);
        assert.ok(paid <= 100);
        const [row] = await first.query<{ n: bigint }>(
          `select count(*) as n from payments where idempotency_scope like 'order:%'`,
        );
        assert.equal(Number(row?.n), 100, '20 orders x 5 days, each paid once');
        const runs = await first.query<{ n: bigint }>(
          `select count(*) as n from payment_order_runs where status = 'paid'`,
        );
        assert.equal(Number(runs[0]?.n), 100);
        assert.ok((await built.ledger.verify()).ok);
      } finally {
        await built.app.close();
        await second.close();
        await first.close();
      }
    });
  });
}
