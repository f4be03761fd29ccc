// Fraud screening: each rule at its threshold (pure, then against the database), verdict precedence, rule
// changes taking effect without a restart, cases through claim and resolve, screening inside a caller's
// transaction, and the operator API through inject(): bad input answered 400/422, never 5xx.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { v7 as uuidv7 } from 'uuid';
import { type App, createHttpServer } from '../http/app.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { planNodes, planPreferringIndexes } from '../testing/plans.ts';
import { registerFraudRoutes } from './routes.ts';
import {
  compileRule,
  evaluate,
  HISTORY_AMOUNTS_MAX,
  type History,
  percentileOf,
  planHistory,
  type Rule,
  type RuleType,
  type ScreeningInput,
} from './rules.ts';
import { FraudScreening, type ScreeningResult } from './service.ts';
import {
  type HistoryQuery,
  READ_HISTORIES,
  readHistories,
  recordScreenings,
  type ScreeningRecord,
  type StoredScreening,
} from './store.ts';

const TOKEN = 'fraud-test-operator-token-0123456789abcdef';
const admin: Record<string, string> = { authorization: `Bearer ${TOKEN}` };
const PROBLEM_JSON = /^application\/problem\+json\b/;
const T0 = new Date('2026-01-14T12:00:00Z'); // noon in London: outside the default night hours
const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;
const at = (offsetMs: number) => new Date(T0.getTime() + offsetMs);
const PAYEE = 'DE89370400440532013000';
const OTHER_PAYEE = 'GB82WEST12345698765432';
const THIRD_PAYEE = 'FR1420041010050500013M02606';

function input(customerId: string, overrides: Partial<ScreeningInput> = {}): ScreeningInput {
  return {
    paymentId: uuidv7(),
    customerId,
    debtorAccountId: '00000000-0000-4000-8000-000000000001',
    amountMinor: 1000n,
    currency: 'EUR',
    creditorIban: PAYEE,
    creditorName: 'Corner Shop',
    at: T0,
    context: {},
    ...overrides,
  };
}

// --------------------------------------------------------------------------------------------- pure rules

function rule(type: RuleType, parameters: unknown, action: 'step_up' | 'block' = 'step_up'): Rule {
  const compiled = compileRule({ id: type, type, enabled: true, action, version: 1, parameters });
  if (!compiled.ok) throw new Error(JSON.stringify(compiled.errors));
  return compiled.rule;
}

const quiet: History = {
  windows: [],
  amounts: [],
  payeeKnown: true,
  payeeBlocklisted: false,
  deviceLastSeen: undefined,
  anyDeviceLastSeen: undefined,
};

describe('fraud rules (pure)', () => {
  it('checks parameters per rule type, naming each offending field', () => {
    const check = (type: RuleType, parameters: unknown) =>
      compileRule({ id: 'r', type, enabled: true, action: 'step_up', version: 1, parameters });
    assert.deepEqual(check('velocity', { windowMinutes: 10 }), {
      ok: false,
      errors: [{ field: '/parameters', message: 'must set maxCount, maxAmounts or both' }],
    });
    const velocity = check('velocity', {
      windowMinutes: 0,
      maxAmounts: { EUR: '10.5', JPY: '100', XAU: '1' },
      x: 1,
    });
    assert.equal(velocity.ok, false);
    assert.deepEqual(!velocity.ok && velocity.errors.map((error) => error.field).sort(), [
      '/parameters/windowMinutes',
      '/parameters/x',
    ]);
    const amounts = check('velocity', { windowMinutes: 10, maxAmounts: { EUR: '10.5', XAU: '1.00' } });
    assert.deepEqual(!amounts.ok && amounts.errors, [
      { field: '/parameters/maxAmounts/EUR', message: 'must be a positive amount with 2 decimals' },
      { field: '/parameters/maxAmounts/XAU', message: 'is not an active ISO 4217 currency' },
    ]);
    const hours = check('unusual_hour', { timeZone: 'Mars/Olympus', startHour: 3, endHour: 3 });
    assert.deepEqual(!hours.ok && hours.errors.map((error) => error.field), [
      '/parameters/timeZone',
      '/parameters/endHour',
    ]);
    assert.equal(
      check('amount_outlier', { lookbackDays: 90, minHistory: 5, percentile: 90, multiplier: 2.5 }).ok,
      true,
    );
    assert.equal(
      check('amount_outlier', { lookbackDays: 90, minHistory: 5, percentile: 90, multiplier: 2.505 }).ok,
      false,
    );
    assert.equal(check('blocklisted_payee', { anything: true }).ok, false);
  });

  it('reads past amounts only for a payment some outlier rule would look at', () => {
    const outlier = rule('amount_outlier', {
      lookbackDays: 30,
      minHistory: 5,
      percentile: 90,
      multiplier: 3,
      ignoreBelow: { EUR: '100.00' },
    });
    assert.equal(planHistory([outlier], { amountMinor: 9999n, currency: 'EUR' }).amountsMax, 0);
    assert.deepEqual(planHistory([outlier], { amountMinor: 10000n, currency: 'EUR' }), {
      windowMinutes: [],
      amountLookbackDays: 30,
      amountsMax: HISTORY_AMOUNTS_MAX,
    });
    assert.equal(
      planHistory([outlier], { amountMinor: 1n, currency: 'GBP' }).amountsMax,
      HISTORY_AMOUNTS_MAX,
      'no GBP floor',
    );
  });

  it('takes the nearest-rank percentile: an amount the customer really paid', () => {
    assert.equal(percentileOf([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n], 90), 9n);
    assert.equal(percentileOf([5n], 90), 5n);
    assert.equal(percentileOf([1n, 2n], 100), 2n);
  });

  it('reads night hours in the configured time zone, wrapping past midnight', () => {
    const night = rule('unusual_hour', { timeZone: 'America/New_York', startHour: 23, endHour: 2 });
    const verdictAt = (iso: string) => {
      const payment = { ...input(randomUUID()), at: new Date(iso) };
      return evaluate([night], payment, quiet, planHistory([night], payment)).verdict;
    };
    assert.equal(verdictAt('2026-01-14T03:59:00Z'), 'allow'); // 22:59 in New York
    assert.equal(verdictAt('2026-01-14T04:00:00Z'), 'step_up'); // 23:00
    assert.equal(verdictAt('2026-01-14T06:59:00Z'), 'step_up'); // 01:59
    assert.equal(verdictAt('2026-01-14T07:00:00Z'), 'allow'); // 02:00
  });

  it('gives the most severe action, with every reason, most severe first; disabled rules never fire', () => {
    const rules = [
      rule('new_payee', {}),
      rule('blocklisted_payee', {}, 'block'),
      { ...rule('velocity', { windowMinutes: 10, maxCount: 1 }, 'block'), enabled: false },
    ];
    const history = {
      ...quiet,
      windows: [{ count: 5, amountMinor: 0n }],
      payeeKnown: false,
      payeeBlocklisted: true,
    };
    const payment = input(randomUUID());
    const plan = planHistory(rules, payment);
    const result = evaluate(rules, payment, history, plan);
    assert.equal(result.verdict, 'block');
    assert.deepEqual(
      result.reasons.map((reason) => reason.rule),
      ['blocklisted_payee', 'new_payee'],
    );
    assert.equal(evaluate(rules, payment, { ...history, payeeBlocklisted: false }, plan).verdict, 'step_up');
    assert.deepEqual(evaluate(rules, payment, quiet, plan), { verdict: 'allow', reasons: [] });
    assert.deepEqual(plan.windowMinutes, [], 'a disabled rule reads no history');
  });
});

// ------------------------------------------------------------------------------------- against the database

for (const database of testDatabases()) {
  describe(`fraud screening on ${database.name}`, () => {
    let db: TestDb;
    let fraud: FraudScreening;
    let app: App;

    before(async () => {
      db = await database.open();
      fraud = new FraudScreening({ db });
      app = createHttpServer();
      registerFraudRoutes(app, fraud, TOKEN);
      await app.ready();
    });
    after(async () => {
      await app.close();
      await db.close();
    });

    /** Leaves `ruleId` the only enabled rule, with the parameters and action given. */
    const only = async (
      ruleId: string,
      change: { parameters?: Record<string, unknown>; action?: 'step_up' | 'block' } = {},
    ) => {
      for (const stored of await fraud.rules()) {
        const enabled = stored.id === ruleId;
        if (stored.enabled === enabled && !enabled) continue;
        const result = await fraud.updateRule(stored.id, {
          enabled,
          changedBy: 'test',
          ...(enabled ? change : {}),
        });
        assert.ok(result.ok, JSON.stringify(result));
      }
    };
    const verdictOf = async (payment: ScreeningInput) => (await fraud.screen(payment)).verdict;
    /** Allowed history: screened with every rule off, so they all count. */
    const history = async (customerId: string, payments: Partial<ScreeningInput>[]) => {
      const current = (await fraud.rules()).filter((stored) => stored.enabled);
      for (const stored of current) await fraud.updateRule(stored.id, { enabled: false, changedBy: 'test' });
      for (const payment of payments) assert.equal(await verdictOf(input(customerId, payment)), 'allow');
      for (const stored of current) await fraud.updateRule(stored.id, { enabled: true, changedBy: 'test' });
    };
    const count = async (table: string, where = 'true', params: unknown[] = []) =>
      Number(
        (await db.query<{ n: bigint }>(`select count(*) as n from ${table} where ${where}`, params))[0]?.n,
      );

    it('ships default rules that all compile, and allows an ordinary payment', async () => {
      const rules = await fraud.rules();
      assert.deepEqual(rules.map((stored) => stored.id).sort(), [
        'amount_outlier',
        'blocklisted_payee',
        'new_device',
        'new_payee',
        'unusual_hour',
        'velocity_10m',
        'velocity_24h',
      ]);
      for (const stored of rules) assert.ok(compileRule(stored).ok, stored.id);
      const customer = randomUUID();
      const result = await fraud.screen(input(customer, { context: { deviceId: 'phone-1' } }));
      assert.deepEqual(
        { verdict: result.verdict, reasons: result.reasons },
        { verdict: 'allow', reasons: [] },
      );
      const [stored] = await db.query<{
        verdict: string;
        latency_us: number;
        rule_versions: Record<string, number>;
      }>('select verdict, latency_us, rule_versions from fraud_screenings where id = $1', [
        result.screeningId,
      ]);
      assert.equal(stored?.verdict, 'allow');
      assert.ok(typeof stored?.latency_us === 'number' && stored.latency_us > 0);
      assert.equal(Object.keys(stored?.rule_versions ?? {}).length, 7);
      assert.equal(await count('fraud_cases', 'screening_id = $1', [result.screeningId]), 0);
    });

    it('velocity: more payments than the limit within the window', async () => {
      await only('velocity_10m', { parameters: { windowMinutes: 10, maxCount: 3 } });
      const customer = randomUUID();
      for (const minute of [0, 1, 2])
        assert.equal(await verdictOf(input(customer, { at: at(minute * MINUTE_MS) })), 'allow');
      const fourth = await fraud.screen(input(customer, { at: at(3 * MINUTE_MS) }));
      assert.equal(fourth.verdict, 'step_up');
      assert.deepEqual(fourth.reasons, [
        { rule: 'velocity_10m', detail: '4 payments within 10 min; the limit is 3' },
      ]);
      // 10 minutes after the first two, only the third and fourth are in the window.
      assert.equal(await verdictOf(input(customer, { at: at(11 * MINUTE_MS) })), 'allow');
    });

    it('velocity: parallel payments of one customer are screened one after another, not all under the limit', async () => {
      await only('velocity_10m', { parameters: { windowMinutes: 10, maxCount: 2 } });
      const customer = randomUUID();
      const verdicts = await Promise.all(Array.from({ length: 6 }, () => verdictOf(input(customer))));
      assert.deepEqual(verdicts.sort(), ['allow', 'allow', 'step_up', 'step_up', 'step_up', 'step_up']);
    });

    it('velocity: a total above the limit in the currency, other currencies apart', async () => {
      await only('velocity_10m', { parameters: { windowMinutes: 10, maxAmounts: { EUR: '100.00' } } });
      const customer = randomUUID();
      assert.equal(await verdictOf(input(customer, { amountMinor: 6000n })), 'allow');
      assert.equal(await verdictOf(input(customer, { amountMinor: 99999n, currency: 'GBP' })), 'allow');
      assert.equal(await verdictOf(input(customer, { amountMinor: 4000n, at: at(MINUTE_MS) })), 'allow');
      const over = await fraud.screen(input(customer, { amountMinor: 1n, at: at(2 * MINUTE_MS) }));
      assert.deepEqual(over.reasons, [
        { rule: 'velocity_10m', detail: 'EUR 100.01 paid within 10 min; the limit is EUR 100.00' },
      ]);
    });

    it('amount outlier: above k × the percentile, only with enough history, not below the floor', async () => {
      await only('amount_outlier', {
        parameters: {
          lookbackDays: 90,
          minHistory: 5,
          percentile: 90,
          multiplier: 5,
          ignoreBelow: { EUR: '20.00' },
        },
      });
      // Every screened payment joins the history, so each check gets a customer of its own.
      const customerWith = async (count: number, amountMinor: bigint, firstDaysAgo = 1) => {
        const customer = randomUUID();
        const days = Array.from({ length: count }, (_, i) => firstDaysAgo + i);
        await history(
          customer,
          days.map((day) => ({ amountMinor, at: at(-day * DAY_MS) })),
        );
        return customer;
      };
      const tenEuros = 1000n;
      assert.equal(
        await verdictOf(input(await customerWith(4, tenEuros), { amountMinor: 1_000_000n })),
        'allow',
        'four payments are no baseline',
      );
      assert.equal(
        await verdictOf(input(await customerWith(5, tenEuros), { amountMinor: 5000n })),
        'allow',
        'exactly 5 × the 90th percentile',
      );
      const outlier = await fraud.screen(input(await customerWith(5, tenEuros), { amountMinor: 5001n }));
      assert.equal(outlier.verdict, 'step_up');
      assert.match(
        outlier.reasons[0]?.detail ?? '',
        /EUR 50\.01 is more than 5 × the customer's 90th percentile \(EUR 10\.00\) over 90 days/,
      );
      assert.equal(
        await verdictOf(input(await customerWith(5, 100n), { amountMinor: 1999n })),
        'allow',
        'below the floor',
      );
      assert.equal(
        await verdictOf(input(await customerWith(5, 100n), { amountMinor: 2000n })),
        'step_up',
        'at the floor',
      );
      assert.equal(
        await verdictOf(input(await customerWith(5, tenEuros, 91), { amountMinor: 1_000_000n })),
        'allow',
        'payments older than the lookback are no baseline',
      );
      assert.equal(
        await verdictOf(input(await customerWith(5, tenEuros), { amountMinor: 1_000_000n, currency: 'GBP' })),
        'allow',
        'another currency has its own baseline',
      );
    });

    it('new payee: the first payment to an IBAN, from the floor up', async () => {
      await only('new_payee', { parameters: { ignoreBelow: { EUR: '500.00' } } });
      const customer = randomUUID();
      assert.equal(await verdictOf(input(customer, { amountMinor: 49999n })), 'allow', 'below the floor');
      assert.equal(
        await verdictOf(input(customer, { amountMinor: 50000n, creditorIban: OTHER_PAYEE })),
        'step_up',
      );
      // Paid before (the small payment counts), in another spelling.
      assert.equal(
        await verdictOf(
          input(customer, { amountMinor: 90000n, creditorIban: 'de89 3704 0044 0532 0130 00' }),
        ),
        'allow',
      );
      assert.equal(
        await verdictOf(input(randomUUID(), { amountMinor: 50000n })),
        'step_up',
        'another customer never paid it',
      );
    });

    it('block list: a listed payee is blocked, and not once removed', async () => {
      await only('blocklisted_payee');
      const customer = randomUUID();
      assert.equal(await verdictOf(input(customer, { creditorIban: THIRD_PAYEE })), 'allow');
      const added = await fraud.addToBlocklist({ iban: THIRD_PAYEE, reason: 'mule account', addedBy: 'ops' });
      assert.ok(added.ok && added.added);
      const blocked = await fraud.screen(input(customer, { creditorIban: THIRD_PAYEE }));
      assert.deepEqual(blocked.reasons, [
        { rule: 'blocklisted_payee', detail: 'FR14…2606 is on the block list' },
      ]);
      assert.equal(blocked.verdict, 'block');
      assert.equal(await fraud.removeFromBlocklist(THIRD_PAYEE), true);
      assert.equal(await verdictOf(input(customer, { creditorIban: THIRD_PAYEE })), 'allow');
    });

    it('unusual hour: local night hours, from start to end', async () => {
      await only('unusual_hour', { parameters: { timeZone: 'Europe/London', startHour: 1, endHour: 5 } });
      const customer = randomUUID();
      const verdictAt = (iso: string) => verdictOf(input(customer, { at: new Date(iso) }));
      assert.equal(await verdictAt('2026-01-14T00:59:59Z'), 'allow');
      assert.equal(await verdictAt('2026-01-14T01:00:00Z'), 'step_up');
      assert.equal(await verdictAt('2026-01-14T04:59:59Z'), 'step_up');
      assert.equal(await verdictAt('2026-01-14T05:00:00Z'), 'allow');
      // British Summer Time: 01:30 in London is 00:30 UTC.
      assert.equal(await verdictAt('2026-07-14T00:30:00Z'), 'step_up');
    });

    it('new device: one not seen within the lookback, when the customer has a recent device history', async () => {
      await only('new_device', { parameters: { lookbackDays: 90 } });
      const customer = randomUUID();
      assert.equal(
        await verdictOf(input(customer, { context: { deviceId: 'phone-a' } })),
        'allow',
        'no history yet',
      );
      assert.equal(
        await verdictOf(input(customer, { context: { deviceId: 'phone-a' }, at: at(DAY_MS) })),
        'allow',
      );
      const fresh = await fraud.screen(
        input(customer, { context: { deviceId: 'laptop-b' }, at: at(DAY_MS) }),
      );
      assert.deepEqual(fresh.reasons, [
        { rule: 'new_device', detail: 'a device not used for payments in the last 90 days' },
      ]);
      assert.equal(await verdictOf(input(customer, { at: at(DAY_MS) })), 'allow', 'no device named');
      assert.equal(
        await verdictOf(input(customer, { context: { userAgent: 'Mozilla/5.0 (X11)' }, at: at(DAY_MS) })),
        'step_up',
        'a user agent stands in for a device id',
      );
      // Two months on, laptop-b (stepped up, not blocked) is known; a month later phone-a is forgotten.
      assert.equal(
        await verdictOf(input(customer, { context: { deviceId: 'laptop-b' }, at: at(60 * DAY_MS) })),
        'allow',
      );
      assert.equal(
        await verdictOf(input(customer, { context: { deviceId: 'phone-a' }, at: at(92 * DAY_MS) })),
        'step_up',
      );
      assert.equal(
        await verdictOf(input(customer, { context: { deviceId: 'laptop-b' }, at: at(92 * DAY_MS) })),
        'allow',
      );
      assert.equal(
        await verdictOf(input(customer, { context: { deviceId: 'tablet-c' }, at: at(200 * DAY_MS) })),
        'allow',
        'after 90 days without payments there is no device history to compare with',
      );
    });

    it('block wins over step_up, and both reasons are kept', async () => {
      await only('new_payee', { parameters: {} });
      await fraud.updateRule('blocklisted_payee', { enabled: true, changedBy: 'test' });
      await fraud.addToBlocklist({ iban: OTHER_PAYEE, reason: 'reported', addedBy: 'ops' });
      const result = await fraud.screen(input(randomUUID(), { creditorIban: OTHER_PAYEE }));
      assert.equal(result.verdict, 'block');
      assert.deepEqual(
        result.reasons.map((reason) => reason.rule),
        ['blocklisted_payee', 'new_payee'],
      );
      await fraud.removeFromBlocklist(OTHER_PAYEE);
    });

    it('disabled rules do not fire', async () => {
      await only('velocity_10m', { parameters: { windowMinutes: 10, maxCount: 1 } });
      await fraud.addToBlocklist({ iban: OTHER_PAYEE, reason: 'reported', addedBy: 'ops' });
      const customer = randomUUID();
      assert.equal(
        await verdictOf(input(customer, { creditorIban: OTHER_PAYEE })),
        'allow',
        'the block list rule is off',
      );
      await fraud.updateRule('velocity_10m', { enabled: false, changedBy: 'test' });
      assert.equal(await verdictOf(input(customer, { creditorIban: OTHER_PAYEE })), 'allow');
      await fraud.removeFromBlocklist(OTHER_PAYEE);
    });

    it('takes an operator change at the next payment, with no restart, from whichever process made it', async () => {
      await only('velocity_10m', { parameters: { windowMinutes: 10, maxCount: 5 } });
      const customer = randomUUID();
      await verdictOf(input(customer));
      assert.equal(await verdictOf(input(customer)), 'allow', 'the cache is warm with maxCount 5');
      // Another process's service (another instance) changes the rule.
      const elsewhere = new FraudScreening({ db });
      await elsewhere.updateRule('velocity_10m', {
        parameters: { windowMinutes: 10, maxCount: 2 },
        changedBy: 'ops',
      });
      const third = await fraud.screen(input(customer));
      assert.equal(third.verdict, 'step_up');
      // A change needing other history (a longer window) is read with that history, at once.
      await elsewhere.updateRule('velocity_10m', {
        parameters: { windowMinutes: 1440, maxCount: 3 },
        changedBy: 'ops',
      });
      assert.equal(await verdictOf(input(customer, { at: at(-23 * 60 * MINUTE_MS) })), 'allow');
      assert.equal(await verdictOf(input(customer, { at: at(MINUTE_MS) })), 'step_up');
      // Even an edit made in plain SQL.
      await db.query(`update fraud_rules set action = 'block' where id = 'velocity_10m'`);
      assert.equal(await verdictOf(input(customer, { at: at(2 * MINUTE_MS) })), 'block');
      const [versions] = await db.query<{ rule_versions: Record<string, number>; rules_version: bigint }>(
        'select rule_versions, rules_version from fraud_screenings where customer_id = $1 order by at desc limit 1',
        [customer],
      );
      const [set] = await db.query<{ version: bigint }>('select version from fraud_rule_set');
      assert.equal(versions?.rules_version, set?.version);
      assert.deepEqual(Object.keys(versions?.rule_versions ?? {}), ['velocity_10m']);
    });

    it('screens inside the caller’s transaction: a rollback leaves neither screening nor case', async () => {
      await only('new_payee', { parameters: {} });
      const rolledBack = input(randomUUID());
      await assert.rejects(
        db.transaction(async (tx) => {
          assert.equal((await fraud.screen(rolledBack, tx)).verdict, 'step_up');
          throw new Error('the payment failed after screening');
        }),
        /the payment failed/,
      );
      assert.equal(await count('fraud_screenings', 'payment_id = $1', [rolledBack.paymentId]), 0);
      assert.equal(await count('fraud_cases', 'payment_id = $1', [rolledBack.paymentId]), 0);
      const committed = input(randomUUID());
      const result = await db.transaction((tx) => fraud.screen(committed, tx));
      assert.equal(
        await count('fraud_cases', 'screening_id = $1 and status = $2', [result.screeningId, 'open']),
        1,
      );
    });

    it('records the screenings of one joint call, each with its case, and a payment screened once', async () => {
      // A group's payments record their screenings in one statement (src/db/group-commit.ts).
      const stored = (payment: ScreeningInput, verdict: 'allow' | 'step_up' | 'block'): StoredScreening => ({
        ...payment,
        id: uuidv7(),
        deviceKey: null,
        verdict,
        reasons: verdict === 'allow' ? [] : [{ rule: 'new_payee', detail: 'first payment to this payee' }],
        ruleVersions: { new_payee: 1 },
        rulesVersion: 1n,
        latencyUs: 250,
      });
      const [allowed, held, blocked] = [input(randomUUID()), input(randomUUID()), input(randomUUID())];
      const heldScreening = stored(held, 'step_up');
      const blockedScreening = stored(blocked, 'block');
      const opened = new Date(T0.getTime() + 1000);
      assert.deepEqual(
        await recordScreenings(db, [
          { screening: stored(allowed, 'allow'), openCase: undefined },
          { screening: heldScreening, openCase: { id: uuidv7(), at: opened } },
          { screening: stored(allowed, 'allow'), openCase: undefined },
          { screening: blockedScreening, openCase: { id: uuidv7(), at: opened } },
        ]),
        [true, true, false, true],
      );
      const rows = await db.query<{
        payment_id: string;
        verdict: string;
        in_history: boolean;
        amount: bigint;
      }>(
        'select payment_id, verdict, in_history, amount from fraud_screenings where payment_id = any($1::text::uuid[])',
        [`{${allowed.paymentId},${held.paymentId},${blocked.paymentId}}`],
      );
      assert.deepEqual(
        new Map(rows.map((row) => [row.payment_id, [row.verdict, row.in_history, BigInt(row.amount)]])),
        new Map([
          [allowed.paymentId, ['allow', true, 1000n]],
          [held.paymentId, ['step_up', true, 1000n]],
          [blocked.paymentId, ['block', false, 1000n]],
        ]),
      );
      const cases = await db.query<{ screening_id: string; verdict: string; opened_at: Date }>(
        'select screening_id, verdict, opened_at from fraud_cases where payment_id = any($1::text::uuid[]) order by verdict',
        [`{${allowed.paymentId},${held.paymentId},${blocked.paymentId}}`],
      );
      assert.deepEqual(
        cases.map((row) => [row.screening_id, row.verdict, row.opened_at.getTime()]),
        [
          [blockedScreening.id, 'block', opened.getTime()],
          [heldScreening.id, 'step_up', opened.getTime()],
        ],
      );
    });

    it('reads the histories of one joint call, each its own customer’s, in order', async () => {
      // A group's payments read their customers' histories in one statement (src/db/group-commit.ts).
      const [busy, quiet] = [randomUUID(), randomUUID()];
      const screenedBefore = uuidv7();
      await history(busy, [
        { at: at(-20 * MINUTE_MS), amountMinor: 700n, paymentId: screenedBefore },
        { at: at(-5 * MINUTE_MS), amountMinor: 300n },
        { at: at(-2 * MINUTE_MS), amountMinor: 200n, currency: 'GBP' },
      ]);
      const plan = { windowMinutes: [60, 10], amountLookbackDays: 30, amountsMax: 10 };
      const query = (customerId: string, overrides: Partial<HistoryQuery> = {}): HistoryQuery => ({
        paymentId: uuidv7(),
        customerId,
        currency: 'EUR',
        creditorIban: PAYEE,
        deviceKey: null,
        at: T0,
        plan,
        ...overrides,
      });
      const narrow = { windowMinutes: [10], amountLookbackDays: 0, amountsMax: 0 };
      const read = await readHistories(db, [
        query(busy),
        query(quiet),
        query(busy, { creditorIban: OTHER_PAYEE, plan: narrow, paymentId: screenedBefore }),
      ]);
      assert.deepEqual(
        read.map(
          ({ screened }) => screened && [screened.paymentId, screened.customerId, screened.amountMinor],
        ),
        [undefined, undefined, [screenedBefore, busy, 700n]],
      );
      assert.deepEqual(
        read.map(({ history: h }) => [h.windows, h.amounts.map((a) => a.amountMinor), h.payeeKnown]),
        [
          [
            [
              { count: 3, amountMinor: 1000n },
              { count: 2, amountMinor: 300n },
            ],
            [300n, 700n],
            true,
          ],
          [
            [
              { count: 0, amountMinor: 0n },
              { count: 0, amountMinor: 0n },
            ],
            [],
            false,
          ],
          [[{ count: 2, amountMinor: 300n }], [], false],
        ],
      );
      // Every part an index lookup on the customer (or the payment), never a read of every screening.
      const explained = await planPreferringIndexes(db, READ_HISTORIES, [JSON.stringify([])]);
      // Each read of a table, with what its index is searched by (a bitmap's heap scan reads what its
      // index scan found, and the index scan names no table).
      const reads: string[] = [];
      for (const node of planNodes(explained)) {
        const table = node['Relation Name'] ?? node['Index Name']?.match(/^fraud_[a-z]+/)?.[0];
        if (
          table?.startsWith('fraud_') &&
          table !== 'fraud_rule_set' &&
          node['Node Type'] !== 'Bitmap Heap Scan'
        )
          reads.push(`${table} ${node['Node Type']} by ${node['Index Cond'] ?? 'nothing'}`);
      }
      assert.equal(reads.length, 7, reads.join('; '));
      const searches = [
        /^fraud_screenings .*Index.* by \(+customer_id = q\.customer_id/,
        /^fraud_screenings .*Index.* by \(payment_id = q\.payment_id\)/,
        /^fraud_blocklist .*Index.* by \(iban = q\.creditor_iban\)/,
      ];
      for (const read of reads)
        assert.ok(
          searches.some((search) => search.test(read)),
          read,
        );
      assert.equal(reads.filter((read) => read.includes('payment_id')).length, 1, reads.join('; '));
    });

    const answer = ({ verdict, reasons, screeningId }: ScreeningResult) => ({
      verdict,
      reasons,
      screeningId,
    });

    it('answers a payment screened again with its first verdict, and opens one case', async () => {
      await only('new_payee', { parameters: {} });
      const payment = input(randomUUID());
      const first = await fraud.screen(payment);
      await fraud.updateRule('new_payee', { enabled: false, changedBy: 'test' });
      assert.deepEqual(answer(await fraud.screen(payment)), answer(first));
      assert.equal(await count('fraud_cases', 'payment_id = $1', [payment.paymentId]), 1);
      await assert.rejects(
        fraud.screen({ ...payment, amountMinor: 1n }),
        /screened before with other details/,
      );
    });

    it('answers a twin screening, waiting on the first, with the first’s verdict once it commits', async () => {
      await only('new_payee', { parameters: {} });
      const payment = input(randomUUID());
      let twin: Promise<ScreeningResult> | undefined;
      const first = await db.transaction(async (tx) => {
        const result = await fraud.screen(payment, tx);
        await result.recorded;
        // The twin waits for the customer's lock (on PGlite, for the one connection) until this commits;
        // by then the payee is no longer new, so only the first verdict can make it step_up.
        twin = db.transaction((other) => fraud.screen(payment, other));
        return result;
      });
      assert.equal(first.verdict, 'step_up');
      assert.ok(twin);
      assert.deepEqual(answer(await twin), answer(first));
      assert.equal(await count('fraud_screenings', 'payment_id = $1', [payment.paymentId]), 1);
      assert.equal(await count('fraud_cases', 'payment_id = $1', [payment.paymentId]), 1);
    });

    it('answers before its record is written, and a record that fails rejects `recorded`', {
      skip: database.name === 'pglite' && 'PGlite runs one transaction at a time',
      timeout: 30_000,
    }, async () => {
      await only('new_payee', { parameters: {} });
      const payment = input(randomUUID());
      // Another transaction writes a screening of the payment without the customer's lock (no code of
      // the bank does), and holds it uncommitted: the record waits on it, the verdict does not.
      const stray: ScreeningRecord = {
        screening: {
          ...payment,
          id: uuidv7(),
          deviceKey: null,
          verdict: 'allow',
          reasons: [],
          ruleVersions: {},
          rulesVersion: 1n,
          latencyUs: 1,
        },
        openCase: undefined,
      };
      let release: () => void = () => {};
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      let written: () => void = () => {};
      const strayWritten = new Promise<void>((resolve) => {
        written = resolve;
      });
      const strayTx = db.transaction(async (tx) => {
        assert.deepEqual(await recordScreenings(tx, [stray]), [true]);
        written();
        await held;
      });
      await strayWritten;
      const outcome = db.transaction(async (tx) => {
        const result = await fraud.screen(payment, tx);
        assert.equal(result.verdict, 'step_up');
        release();
        await result.recorded;
      });
      // Asserted at once: the stray's commit fails the record, maybe before the stray's own answer is in.
      const failed = assert.rejects(outcome, /screened meanwhile/);
      await strayTx;
      await failed;
      assert.equal(await count('fraud_cases', 'payment_id = $1', [payment.paymentId]), 0);
    });

    it('opens a case for step_up and block, which operators claim and resolve', async () => {
      await only('new_payee', { parameters: {} });
      const customer = randomUUID();
      const stepped = await fraud.screen(input(customer, { amountMinor: 25000n }));
      const [opened] = await db.query<{ id: string }>('select id from fraud_cases where screening_id = $1', [
        stepped.screeningId,
      ]);
      const id = opened?.id ?? '';
      const found = await fraud.getCase(id);
      assert.equal(found?.case.status, 'open');
      assert.equal(found?.case.verdict, 'step_up');
      assert.deepEqual(found?.screening.reasons, stepped.reasons);

      assert.deepEqual(await fraud.resolveCase(id, { reviewer: 'anna', outcome: 'legitimate', note: 'ok' }), {
        ok: false,
        code: 'fraud_case_not_claimed',
      });
      assert.equal((await fraud.claimCase(id, 'anna')).ok, true);
      assert.deepEqual(await fraud.claimCase(id, 'ben'), {
        ok: false,
        code: 'fraud_case_claimed_by_another',
      });
      assert.deepEqual(await fraud.resolveCase(id, { reviewer: 'ben', outcome: 'legitimate', note: 'ok' }), {
        ok: false,
        code: 'fraud_case_claimed_by_another',
      });
      const resolved = await fraud.resolveCase(id, {
        reviewer: 'anna',
        outcome: 'confirmed_fraud',
        note: 'customer denies it',
      });
      assert.ok(resolved.ok);
      assert.equal(resolved.case.status, 'resolved');
      assert.equal(resolved.case.outcome, 'confirmed_fraud');
      assert.deepEqual(await fraud.claimCase(id, 'anna'), { ok: false, code: 'fraud_case_resolved' });
      assert.deepEqual(await fraud.resolveCase(id, { reviewer: 'anna', outcome: 'legitimate', note: 'x' }), {
        ok: false,
        code: 'fraud_case_resolved',
      });
      assert.deepEqual(await fraud.claimCase(randomUUID(), 'anna'), { ok: false, code: 'not_found' });
      // A claim nobody acted on for half an hour may be taken over.
      const other = await fraud.screen(input(randomUUID()));
      const [otherCase] = await db.query<{ id: string }>(
        'select id from fraud_cases where screening_id = $1',
        [other.screeningId],
      );
      assert.equal((await fraud.claimCase(otherCase?.id ?? '', 'anna')).ok, true);
      const later = new FraudScreening({ db, now: () => new Date(Date.now() + 31 * MINUTE_MS) });
      const takenOver = await later.claimCase(otherCase?.id ?? '', 'ben');
      assert.ok(takenOver.ok && takenOver.case.claimedBy === 'ben');
      // A confirmed fraud is not the customer's history: the payee is new to them again.
      assert.equal(await verdictOf(input(customer)), 'step_up');
    });

    // ------------------------------------------------------------------------------------- operator API

    const call = async (
      method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
      url: string,
      payload?: unknown,
      headers = admin,
    ) => {
      const response = await app.inject({
        method,
        url,
        headers,
        ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
      });
      return {
        status: response.statusCode,
        type: response.headers['content-type'],
        body: response.body ? (response.json() as Record<string, unknown>) : {},
      };
    };

    it('asks for the operator token on every route', async () => {
      for (const [method, url] of [
        ['GET', '/v1/admin/fraud/cases'],
        ['GET', `/v1/admin/fraud/cases/${randomUUID()}`],
        ['POST', `/v1/admin/fraud/cases/${randomUUID()}/claim`],
        ['GET', '/v1/admin/fraud/rules'],
        ['PATCH', '/v1/admin/fraud/rules/new_payee'],
        ['GET', '/v1/admin/fraud/blocklist'],
        ['POST', '/v1/admin/fraud/blocklist'],
        ['DELETE', `/v1/admin/fraud/blocklist/${PAYEE}`],
      ] as const) {
        for (const headers of [{}, { authorization: 'Bearer wrong-token' }] as Record<string, string>[]) {
          const response = await call(method, url, undefined, headers);
          assert.equal(response.status, 401, `${method} ${url}`);
          assert.match(String(response.type), PROBLEM_JSON);
          assert.equal(response.body.code, 'unauthorized');
        }
      }
    });

    it('lists and changes rules, refusing parameters that do not fit the rule', async () => {
      const listed = await call('GET', '/v1/admin/fraud/rules');
      assert.equal(listed.status, 200);
      const rules = listed.body.rules as { id: string; version: number }[];
      assert.equal(rules.length, 7);
      const before = rules.find((stored) => stored.id === 'velocity_24h');

      const changed = await call('PATCH', '/v1/admin/fraud/rules/velocity_24h', {
        changedBy: 'ops-anna',
        enabled: true,
        action: 'block',
        parameters: { windowMinutes: 1440, maxCount: 50, maxAmounts: { EUR: '25000.00' } },
      });
      assert.equal(changed.status, 200, JSON.stringify(changed.body));
      assert.equal(changed.body.action, 'block');
      assert.equal(changed.body.version, (before?.version ?? 0) + 1);
      assert.equal(changed.body.updatedBy, 'ops-anna');

      const bad = await call('PATCH', '/v1/admin/fraud/rules/velocity_24h', {
        changedBy: 'ops-anna',
        parameters: { windowMinutes: 99999999, maxAmounts: { EUR: '1' }, extra: 1 },
      });
      assert.equal(bad.status, 400);
      assert.match(String(bad.type), PROBLEM_JSON);
      assert.equal(bad.body.code, 'validation_failed');
      assert.deepEqual((bad.body.errors as { field: string }[]).map((error) => error.field).sort(), [
        '/body/parameters/extra',
        '/body/parameters/windowMinutes',
      ]);
      const scale = await call('PATCH', '/v1/admin/fraud/rules/velocity_24h', {
        changedBy: 'ops-anna',
        parameters: { windowMinutes: 60, maxAmounts: { EUR: '1' } },
      });
      assert.deepEqual(scale.body.errors, [
        { field: '/body/parameters/maxAmounts/EUR', message: 'must be a positive amount with 2 decimals' },
      ]);
      const unchanged = await call('GET', '/v1/admin/fraud/rules');
      assert.equal(
        (unchanged.body.rules as { id: string; version: number }[]).find(
          (stored) => stored.id === 'velocity_24h',
        )?.version,
        changed.body.version,
        'a refused change changes nothing',
      );

      for (const [url, payload, status] of [
        ['/v1/admin/fraud/rules/no_such_rule', { changedBy: 'a', enabled: false }, 404],
        ['/v1/admin/fraud/rules/Bad-Id', { changedBy: 'a', enabled: false }, 400],
        ['/v1/admin/fraud/rules/velocity_24h', { changedBy: 'a' }, 400],
        ['/v1/admin/fraud/rules/velocity_24h', { enabled: false }, 400],
        ['/v1/admin/fraud/rules/velocity_24h', { changedBy: 'a', action: 'allow' }, 400],
        ['/v1/admin/fraud/rules/velocity_24h', { changedBy: 'a', parameters: [] }, 400],
        ['/v1/admin/fraud/rules/velocity_24h', { changedBy: 'a', enabled: 'yes' }, 400],
      ] as const) {
        const response = await call('PATCH', url, payload);
        assert.equal(
          response.status,
          status,
          `${url} ${JSON.stringify(payload)}: ${JSON.stringify(response.body)}`,
        );
        assert.match(String(response.type), PROBLEM_JSON);
      }
    });

    it('manages the block list: checked IBANs, idempotent adds, pages, removal', async () => {
      const invalid = await call('POST', '/v1/admin/fraud/blocklist', {
        iban: 'DE89370400440532013001',
        reason: 'x',
        addedBy: 'ops',
      });
      assert.equal(invalid.status, 422);
      assert.equal(invalid.body.code, 'invalid_creditor_iban');
      const malformed = await call('POST', '/v1/admin/fraud/blocklist', {
        iban: 'nope',
        reason: 'x',
        addedBy: 'ops',
      });
      assert.equal(malformed.status, 400);
      assert.equal(malformed.body.code, 'validation_failed');

      const ibans = ['NL91ABNA0417164300', 'BE68539007547034', 'AT611904300234573201'];
      for (const iban of ibans) {
        const added = await call('POST', '/v1/admin/fraud/blocklist', {
          iban,
          reason: 'mule',
          addedBy: 'ops',
        });
        assert.equal(added.status, 201, JSON.stringify(added.body));
      }
      const again = await call('POST', '/v1/admin/fraud/blocklist', {
        iban: 'nl91 abna 0417 1643 00',
        reason: 'other',
        addedBy: 'ops2',
      });
      assert.equal(again.status, 200);
      assert.equal(again.body.reason, 'mule', 'the first entry stands');

      const seen: string[] = [];
      let cursor: string | null = null;
      for (let pages = 0; pages < 10; pages++) {
        const page = await call(
          'GET',
          `/v1/admin/fraud/blocklist?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        );
        assert.equal(page.status, 200);
        seen.push(...(page.body.entries as { iban: string }[]).map((entry) => entry.iban));
        cursor = page.body.nextCursor as string | null;
        if (!cursor) break;
      }
      assert.deepEqual(
        seen.filter((iban) => ibans.includes(iban)),
        [...ibans].sort(),
      );
      assert.equal((await call('GET', '/v1/admin/fraud/blocklist?cursor=bm9wZQ')).status, 400);
      assert.equal((await call('GET', '/v1/admin/fraud/blocklist?limit=100000')).status, 400);
      assert.equal((await call('GET', '/v1/admin/fraud/blocklist?limit=201')).status, 400);

      assert.equal((await call('DELETE', '/v1/admin/fraud/blocklist/BE68539007547034')).status, 204);
      const gone = await call('DELETE', '/v1/admin/fraud/blocklist/BE68539007547034');
      assert.equal(gone.status, 404);
      assert.match(String(gone.type), PROBLEM_JSON);
    });

    it('works cases over HTTP: list by status with cursors, detail with reasons, claim, resolve', async () => {
      await only('new_payee', { parameters: {} });
      // Resolve whatever earlier tests opened, so the open queue is this test's alone.
      for (const open of await fraud.listCases('open', undefined, 100)) {
        await fraud.claimCase(open.id, 'cleanup');
        await fraud.resolveCase(open.id, {
          reviewer: 'cleanup',
          outcome: 'legitimate',
          note: 'test cleanup',
        });
      }
      const screened = [];
      for (let i = 0; i < 3; i++)
        screened.push(await fraud.screen(input(randomUUID(), { amountMinor: 123456n })));

      const ids: string[] = [];
      let cursor: string | null = null;
      for (let pages = 0; pages < 10; pages++) {
        const page = await call(
          'GET',
          `/v1/admin/fraud/cases?status=open&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        );
        assert.equal(page.status, 200, JSON.stringify(page.body));
        ids.push(...(page.body.cases as { id: string }[]).map((found) => found.id));
        cursor = page.body.nextCursor as string | null;
        if (!cursor) break;
      }
      assert.equal(ids.length, 3);
      const first = await call('GET', '/v1/admin/fraud/cases?status=open&limit=1');
      const openCursor = first.body.nextCursor as string;
      assert.equal(
        (await call('GET', `/v1/admin/fraud/cases?status=resolved&cursor=${openCursor}`)).status,
        400,
        'a cursor from another filter',
      );

      const id = ids[0] ?? '';
      const detail = await call('GET', `/v1/admin/fraud/cases/${id}`);
      assert.equal(detail.status, 200);
      const screening = detail.body.screening as Record<string, unknown>;
      assert.equal(detail.body.verdict, 'step_up');
      assert.equal(screening.amount, '1234.56');
      assert.equal(screening.creditorIban, PAYEE);
      assert.deepEqual(screening.reasons, [{ rule: 'new_payee', detail: 'first payment to DE89…3000' }]);
      assert.equal(typeof screening.latencyUs, 'number');

      const unclaimed = await call('POST', `/v1/admin/fraud/cases/${id}/resolve`, {
        reviewer: 'anna',
        outcome: 'legitimate',
        note: 'called the customer',
      });
      assert.equal(unclaimed.status, 409);
      assert.equal(unclaimed.body.code, 'fraud_case_not_claimed');
      const claimed = await call('POST', `/v1/admin/fraud/cases/${id}/claim`, { reviewer: 'anna' });
      assert.equal(claimed.status, 200);
      assert.equal(claimed.body.status, 'claimed');
      assert.equal(
        (await call('POST', `/v1/admin/fraud/cases/${id}/claim`, { reviewer: 'ben' })).body.code,
        'fraud_case_claimed_by_another',
      );
      const claimedList = await call('GET', '/v1/admin/fraud/cases?status=claimed');
      assert.ok((claimedList.body.cases as { id: string }[]).some((found) => found.id === id));
      const resolved = await call('POST', `/v1/admin/fraud/cases/${id}/resolve`, {
        reviewer: 'anna',
        outcome: 'legitimate',
        note: 'called the customer',
      });
      assert.equal(resolved.status, 200);
      assert.equal(resolved.body.outcome, 'legitimate');
      assert.equal(resolved.body.resolutionNote, 'called the customer');

      for (const [method, url, payload, status] of [
        ['GET', `/v1/admin/fraud/cases/${randomUUID()}`, undefined, 404],
        ['GET', '/v1/admin/fraud/cases/not-a-uuid', undefined, 400],
        ['GET', '/v1/admin/fraud/cases?status=pending', undefined, 400],
        ['GET', '/v1/admin/fraud/cases?cursor=%%%', undefined, 400],
        ['GET', '/v1/admin/fraud/cases?limit=0', undefined, 400],
        ['POST', `/v1/admin/fraud/cases/${randomUUID()}/claim`, { reviewer: 'anna' }, 404],
        ['POST', `/v1/admin/fraud/cases/${id}/claim`, {}, 400],
        ['POST', `/v1/admin/fraud/cases/${id}/claim`, { reviewer: ' \t ' }, 400],
        ['POST', `/v1/admin/fraud/cases/${id}/claim`, { reviewer: 'anna' }, 409],
        [
          'POST',
          `/v1/admin/fraud/cases/${id}/resolve`,
          { reviewer: 'anna', outcome: 'maybe', note: 'x' },
          400,
        ],
        [
          'POST',
          `/v1/admin/fraud/cases/${id}/resolve`,
          { reviewer: 'anna', outcome: 'legitimate', note: '' },
          400,
        ],
      ] as const) {
        const response = await call(method, url, payload);
        assert.equal(response.status, status, `${method} ${url}: ${JSON.stringify(response.body)}`);
        assert.match(String(response.type), PROBLEM_JSON);
      }
      const malformed = await app.inject({
        method: 'POST',
        url: `/v1/admin/fraud/cases/${id}/claim`,
        headers: { ...admin, 'content-type': 'application/json' },
        payload: '{"reviewer":',
      });
      assert.equal(malformed.statusCode, 400);
      assert.equal(screened.length, 3);
    });
  });
}
