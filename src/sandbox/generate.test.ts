import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isValidPhoneNumber, parsePhoneNumber } from 'libphonenumber-js/max';
import { ageOn, checkNationalId, nationalIdBirthDate } from '../kyc/validators.ts';
import {
  generateSandbox,
  type PlannedTransfer,
  SANDBOX_CUSTOMERS_MAX,
  type SandboxData,
} from './generate.ts';

const FROM = new Date('2026-01-01T00:00:00Z');
const TO = new Date('2027-01-01T00:00:00Z');
const sample = generateSandbox({ customers: 300, seed: 20260101, from: FROM, to: TO });

const CATEGORIES: readonly PlannedTransfer['category'][] = [
  'salary',
  'rent',
  'groceries',
  'transport',
  'subscriptions',
  'dining',
  'utilities',
  'transfer',
  'savings',
  'opening_deposit',
];

/** Serialises exactly what a caller would persist: bigint as text, dates as ISO strings. */
function serialise(data: SandboxData): string {
  return JSON.stringify(data, (_key, value) => (typeof value === 'bigint' ? `${value}n` : value));
}

/** Executes the plan in order as the ledger would; fails on the first transfer that overdraws an account. */
function replay(data: SandboxData): Map<string, bigint> {
  const balances = new Map(data.accounts.map((account) => [account.key, 0n]));
  for (const [index, transfer] of data.transfers.entries()) {
    if (!transfer.from.startsWith('external:')) {
      const balance = balances.get(transfer.from);
      assert.ok(balance !== undefined, `transfer ${index} from unknown account ${transfer.from}`);
      assert.ok(balance >= transfer.amountMinor, `transfer ${index} overdraws ${transfer.from}`);
      balances.set(transfer.from, balance - transfer.amountMinor);
    }
    if (!transfer.to.startsWith('external:')) {
      const balance = balances.get(transfer.to);
      assert.ok(balance !== undefined, `transfer ${index} to unknown account ${transfer.to}`);
      balances.set(transfer.to, balance + transfer.amountMinor);
    }
  }
  return balances;
}

describe('sandbox generator', () => {
  it('gives byte-identical data for the same options and different data for another seed', () => {
    const options = { customers: 40, seed: 7, from: FROM, to: new Date('2026-04-01T00:00:00Z') };
    const first = generateSandbox(options);
    const again = generateSandbox({ ...options, from: new Date(FROM), to: new Date(options.to) });
    assert.deepEqual(again, first);
    assert.equal(serialise(again), serialise(first));
    const other = generateSandbox({ ...options, seed: 8 });
    assert.notDeepEqual(other.people, first.people);
    assert.notDeepEqual(other.transfers, first.transfers);
    // Seeds differing only above 32 bits are different seeds too.
    assert.notDeepEqual(generateSandbox({ ...options, seed: 7 + 2 ** 32 }).people, first.people);
  });

  it('keys a customer by number and spells usernames and emails uniquely, in ASCII, at reserved domains', () => {
    const keys = sample.people.map((person) => person.key);
    assert.equal(keys[0], 'c0001');
    assert.equal(new Set(keys).size, keys.length);
    const usernames = sample.people.map((person) => person.username);
    assert.equal(new Set(usernames).size, usernames.length);
    const emails = sample.people.map((person) => person.email);
    assert.equal(new Set(emails).size, emails.length);
    for (const person of sample.people) {
      assert.match(person.username, /^s\d+-customer\d{4,}$/, person.username);
      assert.match(person.email, /^[a-z0-9.]+@example\.(com|org|net)$/, person.email);
      assert.ok(person.legalName.trim().split(/\s+/).length >= 2, person.legalName);
      assert.ok(person.address.lines.length >= 1 && person.address.city && person.address.postCode);
    }
  });

  it('mixes the nationalities and gives each the national id its country issues', () => {
    const nationalities = new Set(sample.people.map((person) => person.nationality));
    assert.deepEqual([...nationalities].sort(), ['CN', 'DE', 'ES', 'FR', 'GB', 'IT', 'NL', 'US']);
    const expectedType = { CN: 'cn_resident_id', GB: 'uk_nino', US: 'us_ssn' } as Record<string, string>;
    for (const person of sample.people) {
      const type = expectedType[person.nationality];
      if (type === undefined) {
        assert.equal(person.nationalId, null, person.key);
        continue;
      }
      assert.ok(person.nationalId, person.key);
      assert.equal(person.nationalId.type, type);
      assert.deepEqual(checkNationalId(person.nationalId.type, person.nationalId.number, TO), {
        ok: true,
        value: person.nationalId.number,
      });
      if (person.nationalId.type === 'cn_resident_id') {
        assert.equal(nationalIdBirthDate('cn_resident_id', person.nationalId.number), person.dateOfBirth);
      }
    }
  });

  it('gives everyone a valid mobile number of their nationality, in E.164', () => {
    for (const person of sample.people) {
      assert.match(person.phone, /^\+[1-9]\d{7,14}$/);
      assert.ok(isValidPhoneNumber(person.phone), `${person.key} ${person.phone}`);
      assert.equal(parsePhoneNumber(person.phone).country, person.nationality, person.phone);
    }
  });

  it('makes everyone an adult of 20 to 80 at the end of the period', () => {
    for (const person of sample.people) {
      const age = ageOn(person.dateOfBirth, TO);
      assert.ok(age !== undefined && age >= 20 && age <= 80, `${person.dateOfBirth} is ${age}`);
    }
  });

  it('opens one current account in the local currency and savings for about a third', () => {
    const currencyOf = (nationality: string) =>
      nationality === 'GB' ? 'GBP' : nationality === 'US' ? 'USD' : 'EUR';
    for (const person of sample.people) {
      const owned = sample.accounts.filter((account) => account.owner === person.key);
      const current = owned.filter((account) => account.product === 'current');
      assert.equal(current.length, 1);
      assert.ok(owned.length <= 2);
      for (const account of owned) {
        assert.equal(account.currency, currencyOf(person.nationality));
        assert.equal(account.key, `${person.key}-${account.product}-${account.currency.toLowerCase()}`);
      }
    }
    const savings = sample.accounts.filter((account) => account.product === 'savings').length;
    assert.ok(savings > 0.2 * sample.people.length && savings < 0.4 * sample.people.length, `${savings}`);
  });

  it('plans transfers inside the period, sorted, positive, in the currency of both ends', () => {
    const currencyOf = new Map(sample.accounts.map((account) => [account.key, account.currency]));
    let previous = -Infinity;
    for (const transfer of sample.transfers) {
      const at = transfer.at.getTime();
      assert.ok(at >= FROM.getTime() && at < TO.getTime(), transfer.at.toISOString());
      assert.ok(at >= previous, 'sorted by time');
      previous = at;
      assert.ok(transfer.amountMinor > 0n);
      assert.notEqual(transfer.from, transfer.to);
      for (const end of [transfer.from, transfer.to]) {
        const currency = end.startsWith('external:') ? end.slice('external:'.length) : currencyOf.get(end);
        assert.equal(currency, transfer.currency, `${end} in ${transfer.currency}`);
      }
      assert.ok(transfer.counterparty.length > 0 && transfer.reference.length > 0);
    }
    const seen = new Set(sample.transfers.map((transfer) => transfer.category));
    assert.deepEqual([...seen].sort(), [...CATEGORIES].sort());
  });

  it('funds every account once at the start and pays each salary monthly', () => {
    const deposits = sample.transfers.filter((transfer) => transfer.category === 'opening_deposit');
    assert.deepEqual(
      deposits.map((deposit) => deposit.to).sort(),
      sample.accounts.map((account) => account.key).sort(),
    );
    for (const deposit of deposits) {
      assert.equal(deposit.at.getTime(), FROM.getTime());
      assert.equal(deposit.from, `external:${deposit.currency}`);
    }
    // Opening deposits come first, so nothing at `from` is planned against an empty account.
    assert.ok(
      sample.transfers.slice(0, deposits.length).every((transfer) => transfer.category === 'opening_deposit'),
    );
    const salaries = new Map<string, number>();
    for (const transfer of sample.transfers.filter((transfer) => transfer.category === 'salary')) {
      assert.equal(transfer.from, `external:${transfer.currency}`);
      assert.match(transfer.reference, /^Salary [A-Z][a-z]+ 2026$/);
      salaries.set(transfer.to, (salaries.get(transfer.to) ?? 0) + 1);
    }
    assert.equal(salaries.size, sample.people.length);
    assert.ok([...salaries.values()].every((count) => count === 12));
  });

  it('moves money between customers only within one currency and savings only to the owner', () => {
    const accountByKey = new Map(sample.accounts.map((account) => [account.key, account]));
    for (const transfer of sample.transfers) {
      if (transfer.category === 'transfer') {
        const from = accountByKey.get(transfer.from);
        const to = accountByKey.get(transfer.to);
        assert.ok(from && to, 'both ends are customer accounts');
        assert.notEqual(from.owner, to.owner);
        assert.equal(from.currency, to.currency);
      }
      if (transfer.category === 'savings') {
        const from = accountByKey.get(transfer.from);
        const to = accountByKey.get(transfer.to);
        assert.ok(from && to && from.owner === to.owner && to.product === 'savings');
      }
    }
  });

  it('never plans a debit the account cannot cover, whatever the seed and period', () => {
    const balances = replay(sample);
    assert.ok([...balances.values()].every((balance) => balance >= 0n));
    fc.assert(
      fc.property(
        fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
        fc.integer({ min: 1, max: 25 }),
        fc.integer({ min: 0, max: 365 * 24 }),
        fc.integer({ min: 1, max: 200 }),
        (seed, customers, startHours, days) => {
          const from = new Date(Date.UTC(2025, 0, 1) + startHours * 3_600_000);
          const to = new Date(from.getTime() + days * 86_400_000);
          const data = generateSandbox({ customers, seed, from, to });
          replay(data);
          for (const transfer of data.transfers) {
            assert.ok(transfer.at >= from && transfer.at < to && transfer.amountMinor > 0n);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('refuses options that can only be a bug', () => {
    for (const customers of [0, -1, 1.5, SANDBOX_CUSTOMERS_MAX + 1, Number.NaN]) {
      assert.throws(() => generateSandbox({ customers, seed: 1, from: FROM, to: TO }), RangeError);
    }
    for (const seed of [1.5, Number.NaN, 2 ** 53]) {
      assert.throws(() => generateSandbox({ customers: 1, seed, from: FROM, to: TO }), RangeError);
    }
    assert.throws(() => generateSandbox({ customers: 1, seed: 1, from: TO, to: FROM }), RangeError);
    assert.throws(() => generateSandbox({ customers: 1, seed: 1, from: FROM, to: FROM }), RangeError);
    assert.throws(
      () =>
        generateSandbox({ customers: 1, seed: 1, from: new Date('2000-01-01'), to: new Date('2020-01-01') }),
      RangeError,
    );
    // The plan is held in memory: the largest sandbox fits for a month, not for a year.
    assert.throws(
      () => generateSandbox({ customers: SANDBOX_CUSTOMERS_MAX, seed: 1, from: FROM, to: TO }),
      RangeError,
    );
  });

  it('generates 1,000 customers over a year quickly, at 15-25 transfers per customer-month', () => {
    const started = performance.now();
    const data = generateSandbox({ customers: 1_000, seed: 1, from: FROM, to: TO });
    const elapsedMs = performance.now() - started;
    const perCustomerMonth = data.transfers.length / 1_000 / 12;
    assert.ok(perCustomerMonth >= 15 && perCustomerMonth <= 25, `${perCustomerMonth} per customer-month`);
    assert.ok(elapsedMs < 5_000, `${elapsedMs} ms`);
  });
});
