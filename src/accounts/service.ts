// Customer accounts: current and savings accounts in the currencies the bank enables, each backed by one
// ledger account (credit-normal: the bank owes the customer), numbered with an IBAN. Balances and
// transactions are the ledger's; this service adds who the account belongs to and what each movement was.
import { v7 as uuidv7 } from 'uuid';
import type { Customers } from '../customers/service.ts';
import type { Db, Sql } from '../db/db.ts';
import { emit } from '../events/outbox.ts';
import { type Balances, balancesOf, type EntryFilter } from '../ledger/model.ts';
import { ENTRIES_PAGE_MAX, type Ledger } from '../ledger/service.ts';
import { currencyExponent, formatAmount, type Minor } from '../money.ts';
import { type BankIdentity, ibanFor, maskIban } from './iban.ts';
import type { Statement } from './statement-formats.ts';
import {
  type AccountProduct,
  type AccountStatus,
  type BankAccount,
  bankAccountsByLedgerIds,
  findBankAccount,
  findBankAccountByIban,
  findBankAccountByIdAndIban,
  findBankAccountsByIban,
  insertBankAccount,
  listBankAccounts,
  nextAccountSerial,
  updateBankAccountStatus,
} from './store.ts';

export const ACCOUNTS_PAGE_MAX = 100;
export const TRANSACTIONS_PAGE_MAX = 500;
// A month with more movements than this is a business account; its statement is paged through the API.
export const STATEMENT_LINES_MAX = 5000;

export interface Transaction {
  /** The account's entry sequence number: unique within the account, and the pagination position. */
  readonly seq: bigint;
  readonly transferId: string;
  readonly bookedAt: Date;
  /** From the customer's side: credit is money in. */
  readonly direction: 'credit' | 'debit';
  readonly amount: Minor;
  readonly balanceAfter: bigint;
  readonly counterparty: { readonly name: string | null; readonly iban: string | null };
  readonly reference: string | null;
  readonly category: string | null;
}

export type StatusChangeOutcome =
  | { ok: true; account: BankAccount }
  | { ok: false; code: 'not_found' | 'account_closed' | 'balance_not_zero' };

interface TransferNotes {
  reference?: unknown;
  category?: unknown;
  counterparty?: { name?: unknown; iban?: unknown };
}

export class Accounts {
  readonly #db: Db;
  readonly #ledger: Ledger;
  readonly #customers: Customers;
  readonly #now: () => Date;
  readonly bank: BankIdentity;
  readonly currencies: ReadonlySet<string>;

  constructor(options: {
    db: Db;
    ledger: Ledger;
    customers: Customers;
    bank: BankIdentity;
    currencies: readonly string[];
    now?: () => Date;
  }) {
    this.#db = options.db;
    this.#ledger = options.ledger;
    this.#customers = options.customers;
    this.bank = options.bank;
    this.currencies = new Set(options.currencies);
    this.#now = options.now ?? (() => new Date());
  }

  /** Opens an account with its ledger account, inside the caller's transaction. */
  async open(
    sql: Sql,
    input: { customerId: string; product: AccountProduct; currency: string; name?: string },
  ): Promise<BankAccount> {
    const exponent = currencyExponent(input.currency);
    if (!this.currencies.has(input.currency) || exponent === undefined) {
      throw new Error(`open: ${input.currency} is not enabled (callers check offers() first)`);
    }
    const id = uuidv7();
    const ledgerAccount = await this.#ledger.createAccountIn(sql, {
      currency: input.currency,
      exponent,
      normalBalance: 'credit',
      allowOverdraft: false,
      code: `account:${id}`,
      metadata: { bankAccountId: id, product: input.product },
    });
    const now = this.#now();
    const account: BankAccount = {
      id,
      customerId: input.customerId,
      ledgerAccountId: ledgerAccount.id,
      product: input.product,
      currency: input.currency,
      iban: ibanFor(this.bank, await nextAccountSerial(sql)),
      name: input.name ?? (input.product === 'current' ? 'Current account' : 'Savings account'),
      status: 'active',
      createdAt: now,
      statusUpdatedAt: now,
    };
    await insertBankAccount(sql, account);
    return account;
  }

  offers(currency: string): boolean {
    return this.currencies.has(currency);
  }

  find(id: string): Promise<BankAccount | undefined> {
    return findBankAccount(this.#db, id);
  }

  /** An account of this bank by its IBAN (electronic format: no spaces, upper case). */
  findByIban(iban: string, sql: Sql = this.#db): Promise<BankAccount | undefined> {
    return findBankAccountByIban(sql, iban);
  }

  /**
   * A payment's two sides in one query: the customer's account by id (undefined when it is somebody
   * else's, as `findForCustomer`) and this bank's account with the IBAN, if any.
   */
  async findForPayment(
    customerId: string,
    debtorId: string | undefined,
    creditorIban: string | undefined,
    sql: Sql = this.#db,
  ): Promise<{ debtor: BankAccount | undefined; creditor: BankAccount | undefined }> {
    const found = await findBankAccountByIdAndIban(sql, debtorId, creditorIban);
    return {
      debtor: found.byId?.customerId === customerId ? found.byId : undefined,
      creditor: found.byIban,
    };
  }

  /** Many accounts of this bank by IBAN (electronic format) in one query: a payout file's payees. */
  findByIbans(ibans: readonly string[]): Promise<BankAccount[]> {
    return findBankAccountsByIban(this.#db, ibans);
  }

  /** The customer's account, or undefined when it is somebody else's: callers answer 404 either way. */
  async findForCustomer(
    customerId: string,
    id: string,
    sql: Sql = this.#db,
  ): Promise<BankAccount | undefined> {
    const account = await findBankAccount(sql, id);
    return account?.customerId === customerId ? account : undefined;
  }

  list(
    customerId: string,
    onlyIds: readonly string[] | undefined,
    afterId: string | undefined,
    limit: number,
  ): Promise<BankAccount[]> {
    return listBankAccounts(this.#db, customerId, onlyIds, afterId, Math.min(limit, ACCOUNTS_PAGE_MAX + 1));
  }

  async balances(account: BankAccount): Promise<Balances> {
    const ledgerAccount = await this.#ledger.getAccount(account.ledgerAccountId);
    if (!ledgerAccount) throw new Error(`bank account ${account.id} has no ledger account`);
    return balancesOf(ledgerAccount);
  }

  async transactions(
    account: BankAccount,
    filter: EntryFilter,
    beforeSeq: bigint | undefined,
    limit: number,
  ): Promise<Transaction[]> {
    const entries = await this.#ledger.listEntryDetails(account.ledgerAccountId, filter, beforeSeq, limit);
    // Counterparties inside the bank are named from their account, not from what the transfer says.
    const internal = new Map(
      (
        await bankAccountsByLedgerIds(this.#db, [
          ...new Set(entries.flatMap((entry) => entry.counterpartAccountIds)),
        ])
      ).map((other) => [other.ledgerAccountId, other]),
    );
    const holderNames = new Map<string, Promise<string | undefined>>();
    const holderName = (customerId: string) => {
      const known = holderNames.get(customerId);
      if (known) return known;
      const name = this.#customers.holderName(customerId);
      holderNames.set(customerId, name);
      return name;
    };
    return Promise.all(
      entries.map(async (entry): Promise<Transaction> => {
        const notes = entry.transferMetadata as TransferNotes;
        const other = entry.counterpartAccountIds.map((id) => internal.get(id)).find(Boolean);
        const counterparty = other
          ? { name: (await holderName(other.customerId)) ?? null, iban: maskIban(other.iban) }
          : {
              name: typeof notes.counterparty?.name === 'string' ? notes.counterparty.name : null,
              iban: typeof notes.counterparty?.iban === 'string' ? notes.counterparty.iban : null,
            };
        return {
          seq: entry.seq,
          transferId: entry.transferId,
          bookedAt: entry.createdAt,
          direction: entry.side,
          amount: entry.amount,
          balanceAfter: entry.balance,
          counterparty,
          reference: typeof notes.reference === 'string' ? notes.reference : null,
          category: typeof notes.category === 'string' ? notes.category : null,
        };
      }),
    );
  }

  /** A calendar month (UTC) of the account: opening and closing balance, totals and every movement. */
  async statement(account: BankAccount, month: string): Promise<Statement | 'too_many_lines'> {
    const from = new Date(`${month}-01T00:00:00Z`);
    const to = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth() + 1, 1));
    const exponent = currencyExponent(account.currency) ?? 2;
    // The ledger answers at most ENTRIES_PAGE_MAX entries a call: read the month page by page, one past
    // the limit at most, so a long month is refused rather than cut short.
    const lines: Transaction[] = [];
    for (let pages = 0; pages < Math.ceil((STATEMENT_LINES_MAX + 1) / ENTRIES_PAGE_MAX); pages++) {
      const wanted = Math.min(STATEMENT_LINES_MAX + 1 - lines.length, ENTRIES_PAGE_MAX);
      const page = await this.transactions(account, { from, to }, lines.at(-1)?.seq, wanted);
      lines.push(...page);
      if (page.length < wanted || lines.length > STATEMENT_LINES_MAX) break;
    }
    if (lines.length > STATEMENT_LINES_MAX) return 'too_many_lines';
    lines.reverse();
    const opening = await this.#ledger.balanceBefore(account.ledgerAccountId, from);
    const sum = (direction: 'credit' | 'debit') =>
      lines.filter((line) => line.direction === direction).reduce((total, line) => total + line.amount, 0n);
    const money = (minor: bigint) => formatAmount(minor, exponent);
    return {
      bank: { name: this.bank.name },
      account: {
        id: account.id,
        iban: account.iban,
        name: account.name,
        currency: account.currency,
        holderName: (await this.#customers.holderName(account.customerId)) ?? '',
      },
      // Inclusive dates, as a statement reads: 2026-03-01 to 2026-03-31.
      period: {
        month,
        from: from.toISOString().slice(0, 10),
        to: new Date(to.getTime() - 86_400_000).toISOString().slice(0, 10),
      },
      openingBalance: money(opening),
      closingBalance: money(lines.at(-1)?.balanceAfter ?? opening),
      totalCredits: money(sum('credit')),
      totalDebits: money(sum('debit')),
      lines: lines.map((line) => ({
        bookedAt: line.bookedAt.toISOString(),
        description: [line.counterparty.name, line.reference].filter(Boolean).join(' · '),
        category: line.category,
        direction: line.direction,
        amount: money(line.amount),
        balance: money(line.balanceAfter),
      })),
      generatedAt: this.#now().toISOString(),
    };
  }

  /** Freezes, reactivates or closes an account; closing needs a zero balance and nothing pending. */
  async setStatus(id: string, status: AccountStatus): Promise<StatusChangeOutcome> {
    const account = await findBankAccount(this.#db, id);
    if (!account) return { ok: false, code: 'not_found' };
    if (account.status === 'closed') return { ok: false, code: 'account_closed' };
    if (status === 'closed') {
      const balances = await this.balances(account);
      if (balances.posted !== 0n || balances.pending !== 0n || balances.available !== 0n) {
        return { ok: false, code: 'balance_not_zero' };
      }
    }
    const now = this.#now();
    const updated = await this.#db.transaction(async (tx) => {
      const changed = await updateBankAccountStatus(tx, id, status, now);
      if (changed) {
        await emit(tx, now, {
          type: `account.${status === 'active' ? 'reactivated' : status}`,
          subjectId: id,
          payload: { accountId: id, customerId: changed.customerId, status },
        });
      }
      return changed;
    });
    return updated ? { ok: true, account: updated } : { ok: false, code: 'account_closed' };
  }
}
