// Sandbox data: a small bank a newcomer can call at once. Created on the first start in sandbox mode and
// never again (the accounts' codes mark it), under an advisory lock so two processes starting together
// seed it once.
import type { CustomerAuth } from './customer-auth/service.ts';
import type { Db } from './db/db.ts';
import type { Ledger } from './ledger/service.ts';
import { currencyExponent, parseAmount } from './money.ts';

const SEED_LOCK_KEY = 7_140_417_002;
export const SANDBOX_CODE_PREFIX = 'sandbox:';

interface SeedAccount {
  readonly code: string;
  readonly currency: string;
  readonly normalBalance: 'debit' | 'credit';
  readonly allowOverdraft: boolean;
  readonly name: string;
}

// Settlement accounts are the bank's assets (money at the central bank): debit-normal, so paying a customer
// in raises both sides.
const ACCOUNTS: readonly SeedAccount[] = [
  {
    code: 'bank-settlement-eur',
    currency: 'EUR',
    normalBalance: 'debit',
    allowOverdraft: false,
    name: 'Bank settlement (EUR)',
  },
  {
    code: 'alice-eur',
    currency: 'EUR',
    normalBalance: 'credit',
    allowOverdraft: false,
    name: 'Alice Example, current account',
  },
  {
    code: 'bob-eur',
    currency: 'EUR',
    normalBalance: 'credit',
    allowOverdraft: false,
    name: 'Bob Example, current account',
  },
  {
    code: 'merchant-eur',
    currency: 'EUR',
    normalBalance: 'credit',
    allowOverdraft: false,
    name: 'Example Coffee Ltd',
  },
  {
    code: 'bank-settlement-gbp',
    currency: 'GBP',
    normalBalance: 'debit',
    allowOverdraft: false,
    name: 'Bank settlement (GBP)',
  },
  {
    code: 'alice-gbp',
    currency: 'GBP',
    normalBalance: 'credit',
    allowOverdraft: false,
    name: 'Alice Example, GBP account',
  },
  {
    code: 'bank-settlement-jpy',
    currency: 'JPY',
    normalBalance: 'debit',
    allowOverdraft: false,
    name: 'Bank settlement (JPY)',
  },
  {
    code: 'carol-jpy',
    currency: 'JPY',
    normalBalance: 'credit',
    allowOverdraft: false,
    name: 'Carol Example, JPY account',
  },
];

// [debit code, credit code, amount, pending]
const TRANSFERS: readonly [string, string, string, boolean][] = [
  ['bank-settlement-eur', 'alice-eur', '1500.00', false],
  ['bank-settlement-eur', 'bob-eur', '250.00', false],
  ['alice-eur', 'merchant-eur', '4.20', false],
  ['bob-eur', 'merchant-eur', '3.80', false],
  ['alice-eur', 'merchant-eur', '25.00', true],
  ['bank-settlement-gbp', 'alice-gbp', '800.00', false],
  ['bank-settlement-jpy', 'carol-jpy', '120000', false],
];

/** Sandbox customers; their credentials are printed in the README (the one-time code is 123456). */
export const SANDBOX_CUSTOMERS = [
  {
    username: 'alice',
    password: 'alice-sandbox-password',
    displayName: 'Alice Example',
    email: 'alice@example.com',
  },
  { username: 'bob', password: 'bob-sandbox-password', displayName: 'Bob Example', email: 'bob@example.com' },
] as const;

/** Seeds the sandbox ledger and customers unless seeded before; returns whether it did. */
export async function seedSandbox(db: Db, ledger: Ledger, customers: CustomerAuth): Promise<boolean> {
  return db.session(async (session) => {
    await session.query('select pg_advisory_lock($1)', [SEED_LOCK_KEY]);
    try {
      if ((await ledger.listAccounts({ codePrefix: SANDBOX_CODE_PREFIX }, undefined, 1)).length > 0)
        return false;
      const ids = new Map<string, string>();
      for (const account of ACCOUNTS) {
        const exponent = currencyExponent(account.currency);
        if (exponent === undefined) throw new Error(`sandbox currency ${account.currency}`);
        const { account: created } = await ledger.createAccount({
          currency: account.currency,
          exponent,
          normalBalance: account.normalBalance,
          allowOverdraft: account.allowOverdraft,
          code: `${SANDBOX_CODE_PREFIX}${account.code}`,
          metadata: { name: account.name, sandbox: true },
        });
        ids.set(account.code, created.id);
      }
      for (const customer of SANDBOX_CUSTOMERS)
        await customers.createLogin({ ...customer, emailVerified: true });
      for (const [index, [debit, credit, text, pending]] of TRANSFERS.entries()) {
        const amount = parseAmount(text);
        const debitAccountId = ids.get(debit);
        const creditAccountId = ids.get(credit);
        if (!amount || !debitAccountId || !creditAccountId) throw new Error(`sandbox transfer ${index}`);
        const outcome = await ledger.transfer(`sandbox-seed-${index}-${debitAccountId}`, {
          postings: [{ debitAccountId, creditAccountId, amount }],
          pending,
          expiresAt: null,
          metadata: { sandbox: true },
        });
        if (!outcome.ok) throw new Error(`sandbox transfer ${index} failed: ${outcome.code}`);
      }
      return true;
    } finally {
      await session.query('select pg_advisory_unlock($1)', [SEED_LOCK_KEY]);
    }
  });
}
