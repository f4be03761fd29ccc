// Sandbox data: a bank a newcomer can call at once. Two documented customers (alice and bob) and a
// generated population with a year of history (generate.ts), all created through the same services as
// real customers and all money posted through the ledger, so `apibank ledger verify` passes.
import type { BankAccount } from '../accounts/store.ts';
import type { Db } from '../db/db.ts';
import { BankLedgerAccounts } from '../ledger/bank-accounts.ts';
import type { TransferRequest } from '../ledger/model.ts';
import { Ledger } from '../ledger/service.ts';
import { currencyExponent, type Minor, parseAmount } from '../money.ts';
import type { Onboarding } from '../onboarding/service.ts';
import { hashPassword } from '../passwords.ts';
import { generateSandbox, type SandboxPerson } from './generate.ts';

const SEED_LOCK_KEY = 7_140_417_002;
/** Every generated customer's password (sandbox only; the README publishes it). */
export const GENERATED_CUSTOMER_PASSWORD = 'sandbox-password';
// Customers created per transaction: few enough to keep locks short, many enough to save commits.
const CUSTOMERS_PER_TRANSACTION = 100;

/** The ready-made customers the README lists (the one-time code is 123456). */
export const SANDBOX_CUSTOMERS = [
  {
    username: 'alice',
    password: 'alice-sandbox-password',
    person: {
      legalName: 'Alice Example',
      dateOfBirth: '1988-03-14',
      nationality: 'GB',
      nationalId: { type: 'uk_nino', number: 'AB123456C' },
      address: { lines: ['12 Example Street'], city: 'London', postCode: 'SW1A 1AA', country: 'GB' },
      email: 'alice@example.com',
      phone: '+447911123456',
    },
    accounts: [
      { product: 'current', currency: 'EUR' },
      { product: 'current', currency: 'GBP' },
      { product: 'savings', currency: 'EUR' },
    ],
  },
  {
    username: 'bob',
    password: 'bob-sandbox-password',
    person: {
      legalName: 'Bob Example',
      dateOfBirth: '1979-11-02',
      nationality: 'DE',
      nationalId: null,
      address: { lines: ['Beispielweg 4'], city: 'Berlin', postCode: '10115', country: 'DE' },
      email: 'bob@example.com',
      phone: '+4915112345678',
    },
    accounts: [{ product: 'current', currency: 'EUR' }],
  },
] as const;

/** A ready-made business with two users, for batch payouts: one uploads a batch, the other approves it. */
export const SANDBOX_BUSINESS = {
  username: 'northwind-maker',
  password: 'northwind-sandbox-password',
  secondUser: { username: 'northwind-checker', password: 'northwind-sandbox-password' },
  person: {
    legalName: 'Northwind Ltd',
    dateOfBirth: '1990-01-01',
    nationality: 'GB',
    nationalId: null,
    address: { lines: ['1 Harbour Road'], city: 'Bristol', postCode: 'BS1 4RN', country: 'GB' },
    email: 'payroll@northwind.example',
    phone: '+441179000000',
  },
  accounts: [{ product: 'current', currency: 'EUR' }],
} as const;

export interface SeedReport {
  readonly customersSeconds: number;
  readonly transfersSeconds: number;
  readonly customers: number;
  readonly accounts: number;
  readonly transfers: number;
  readonly sampleUsernames: readonly string[];
}

/**
 * Generated customers with `from`..`to` of history. Each day's transfers are one atomic ledger batch booked at
 * that day's noon (UTC), through a ledger whose clock is the simulated day: the history is real ledger entries.
 */
export async function seedGenerated(
  db: Db,
  onboarding: Onboarding,
  options: { customers: number; seed: number; from: Date; to: Date },
): Promise<SeedReport> {
  const data = generateSandbox(options);
  let clock = options.from;
  const ledger = new Ledger({ db, now: () => clock });
  const bankAccounts = new BankLedgerAccounts(db, ledger);
  const ledgerIds = new Map<string, string>();
  for (const currency of new Set(data.accounts.map((account) => account.currency))) {
    ledgerIds.set(`external:${currency}`, await bankAccounts.id('settlement', currency));
  }
  const accountsOf = new Map<string, typeof data.accounts>();
  for (const account of data.accounts)
    accountsOf.set(account.owner, [...(accountsOf.get(account.owner) ?? []), account]);
  const started = performance.now();
  // One published password for the whole generated population, hashed once: scrypt is deliberately slow
  // (~30 ms and 32 MiB a hash), and a thousand of them would be most of the seeding time.
  const passwordHash = await hashPassword(GENERATED_CUSTOMER_PASSWORD);
  const people = [...data.people];
  for (let start = 0; start < people.length; start += CUSTOMERS_PER_TRANSACTION) {
    const chunk = people.slice(start, start + CUSTOMERS_PER_TRANSACTION);
    await db.transaction(async (tx) => {
      for (const person of chunk) {
        const wanted = accountsOf.get(person.key) ?? [];
        const created = await onboarding.createDirectly(
          {
            person: personalData(person),
            username: person.username,
            password: { hash: passwordHash },
            accounts: wanted.map((account) => ({
              product: account.product,
              currency: account.currency,
              name: account.name,
            })),
          },
          tx,
        );
        if (!created)
          throw new Error(
            `sandbox customer ${person.username} exists: seed ${options.seed} was applied before`,
          );
        for (const [position, account] of wanted.entries()) {
          ledgerIds.set(account.key, (created.accounts[position] as BankAccount).ledgerAccountId);
        }
      }
    });
  }
  const customersDone = performance.now();
  let day = '';
  let batch: { key: string; request: TransferRequest }[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    clock = new Date(`${day}T12:00:00Z`);
    if (clock < options.from) clock = options.from;
    const outcomes = await ledger.transferBatch(true, batch);
    const failed = outcomes.find((outcome) => !outcome.ok);
    if (failed && !failed.ok && failed.code !== 'batch_aborted')
      throw new Error(`sandbox day ${day}: ${failed.code}`);
    batch = [];
  };
  for (const [index, transfer] of data.transfers.entries()) {
    const transferDay = transfer.at.toISOString().slice(0, 10);
    if (transferDay !== day || batch.length >= 8000) {
      await flush();
      day = transferDay;
    }
    const debitAccountId = ledgerIds.get(transfer.from);
    const creditAccountId = ledgerIds.get(transfer.to);
    if (!debitAccountId || !creditAccountId)
      throw new Error(`sandbox transfer ${index} names an unknown account`);
    const external = transfer.from.startsWith('external:') || transfer.to.startsWith('external:');
    batch.push({
      key: `sandbox-${options.seed}-${index}`,
      request: {
        postings: [
          {
            debitAccountId,
            creditAccountId,
            amount: { minor: transfer.amountMinor as Minor, scale: currencyExponent(transfer.currency) ?? 2 },
          },
        ],
        pending: false,
        expiresAt: null,
        metadata: {
          reference: transfer.reference,
          category: transfer.category,
          // Between two customers the account names the counterparty; outside the bank, the transfer does.
          ...(external && { counterparty: { name: transfer.counterparty } }),
        },
      },
    });
  }
  await flush();
  return {
    customersSeconds: (customersDone - started) / 1000,
    transfersSeconds: (performance.now() - customersDone) / 1000,
    customers: data.people.length,
    accounts: data.accounts.length,
    transfers: data.transfers.length,
    sampleUsernames: data.people.slice(0, 5).map((person) => person.username),
  };
}

function personalData(person: SandboxPerson) {
  return {
    legalName: person.legalName,
    dateOfBirth: person.dateOfBirth,
    nationality: person.nationality,
    nationalId: person.nationalId,
    address: person.address,
    email: person.email,
    phone: person.phone,
  };
}

// Ends are `external:<currency>` (another bank, via settlement) or `<username>:<account position>`.
const READY_MADE_TRANSFERS: readonly {
  from: string;
  to: string;
  amount: string;
  reference: string;
  category: string;
  counterparty?: string;
  pending?: boolean;
}[] = [
  {
    from: 'external:EUR',
    to: 'alice:0',
    amount: '1500.00',
    reference: 'Salary',
    category: 'salary',
    counterparty: 'Northwind Ltd',
  },
  {
    from: 'external:EUR',
    to: 'bob:0',
    amount: '250.00',
    reference: 'Opening deposit',
    category: 'opening_deposit',
    counterparty: 'Cash deposit',
  },
  {
    from: 'alice:0',
    to: 'external:EUR',
    amount: '4.20',
    reference: 'Card payment',
    category: 'dining',
    counterparty: 'Example Coffee',
  },
  { from: 'alice:0', to: 'bob:0', amount: '20.00', reference: 'Concert tickets', category: 'transfer' },
  {
    from: 'external:EUR',
    to: 'northwind-maker:0',
    amount: '50000.00',
    reference: 'Transfer from own account',
    category: 'transfer',
    counterparty: 'Own account at Northbank',
  },
  { from: 'alice:0', to: 'alice:2', amount: '200.00', reference: 'Savings', category: 'savings' },
  {
    from: 'alice:0',
    to: 'external:EUR',
    amount: '25.00',
    reference: 'Card authorisation',
    category: 'dining',
    counterparty: 'Example Hotel',
    pending: true,
  },
  {
    from: 'external:GBP',
    to: 'alice:1',
    amount: '800.00',
    reference: 'Transfer from own account',
    category: 'transfer',
    counterparty: 'Own account at Northbank',
  },
];

/**
 * Seeds the sandbox unless seeded before (the ready-made customers mark it: alice exists), under an advisory lock so two
 * processes starting together seed once. Returns whether it did.
 */
export async function seedSandbox(
  db: Db,
  onboarding: Onboarding,
  generated: { customers: number; seed: number; now: Date },
): Promise<boolean> {
  return db.session(async (session) => {
    await session.query('select pg_advisory_lock($1)', [SEED_LOCK_KEY]);
    try {
      if (await onboarding.usernameTaken(SANDBOX_CUSTOMERS[0].username)) return false;
      const ledger = new Ledger({ db });
      const bankAccounts = new BankLedgerAccounts(db, ledger);
      const ids = new Map<string, string>();
      for (const currency of ['EUR', 'GBP'])
        ids.set(`external:${currency}`, await bankAccounts.id('settlement', currency));
      for (const customer of SANDBOX_CUSTOMERS) {
        const created = await onboarding.createDirectly({
          person: customer.person,
          username: customer.username,
          password: customer.password,
          accounts: customer.accounts,
        });
        if (!created) throw new Error(`sandbox customer ${customer.username} exists`);
        for (const [position, account] of created.accounts.entries()) {
          ids.set(`${customer.username}:${position}`, account.ledgerAccountId);
        }
      }
      const business = await onboarding.createDirectly({
        ...SANDBOX_BUSINESS,
        business: {
          users: [
            {
              ...SANDBOX_BUSINESS.secondUser,
              displayName: 'Northwind payroll checker',
              email: 'checker@northwind.example',
            },
          ],
        },
      });
      if (!business) throw new Error(`sandbox customer ${SANDBOX_BUSINESS.username} exists`);
      ids.set(`${SANDBOX_BUSINESS.username}:0`, (business.accounts[0] as BankAccount).ledgerAccountId);
      for (const [index, transfer] of READY_MADE_TRANSFERS.entries()) {
        const amount = parseAmount(transfer.amount);
        const debitAccountId = ids.get(transfer.from);
        const creditAccountId = ids.get(transfer.to);
        if (!amount || !debitAccountId || !creditAccountId) throw new Error(`sandbox transfer ${index}`);
        const outcome = await ledger.transfer(`sandbox-ready-${index}`, {
          postings: [{ debitAccountId, creditAccountId, amount }],
          pending: transfer.pending ?? false,
          expiresAt: null,
          metadata: {
            reference: transfer.reference,
            category: transfer.category,
            ...(transfer.counterparty && { counterparty: { name: transfer.counterparty } }),
          },
        });
        if (!outcome.ok) throw new Error(`sandbox transfer ${index} failed: ${outcome.code}`);
      }
      if (generated.customers > 0) {
        const to = new Date(
          Date.UTC(generated.now.getUTCFullYear(), generated.now.getUTCMonth(), generated.now.getUTCDate()),
        );
        const from = new Date(Date.UTC(to.getUTCFullYear() - 1, to.getUTCMonth(), to.getUTCDate()));
        await seedGenerated(db, onboarding, {
          customers: generated.customers,
          seed: generated.seed,
          from,
          to,
        });
      }
      return true;
    } finally {
      await session.query('select pg_advisory_unlock($1)', [SEED_LOCK_KEY]);
    }
  });
}
