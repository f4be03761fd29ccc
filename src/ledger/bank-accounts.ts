// The bank's own ledger accounts that payments move through, one per purpose and currency, found by code
// and created on first use (under a lock, so two processes create one):
// - settlement (`bank:settlement-eur`): the bank's money at the central bank and at other banks. An asset,
//   debit-normal: money arriving from another bank raises it, money leaving lowers it.
// - clearing (`bank:clearing-eur`): outbound payments taken from customers and not yet settled with the
//   scheme. A liability, credit-normal: it holds what the bank owes the scheme until the settlement cycle.
import type { Db } from '../db/db.ts';
import { currencyExponent } from '../money.ts';
import type { Ledger } from './service.ts';

export type BankLedgerPurpose = 'settlement' | 'clearing';

export const bankAccountCode = (purpose: BankLedgerPurpose, currency: string) =>
  `bank:${purpose}-${currency.toLowerCase()}`;

export class BankLedgerAccounts {
  readonly #db: Db;
  readonly #ledger: Ledger;
  readonly #known = new Map<string, string>();

  constructor(db: Db, ledger: Ledger) {
    this.#db = db;
    this.#ledger = ledger;
  }

  async id(purpose: BankLedgerPurpose, currency: string): Promise<string> {
    const code = bankAccountCode(purpose, currency);
    const known = this.#known.get(code);
    if (known) return known;
    const exponent = currencyExponent(currency);
    if (exponent === undefined) throw new Error(`no ISO 4217 exponent for ${currency}`);
    const id = await this.#db.transaction(async (tx) => {
      await tx.query('select pg_advisory_xact_lock(hashtext($1))', [code]);
      const [existing] = await tx.query<{ id: string }>(
        'select id from ledger_accounts where code = $1 limit 1',
        [code],
      );
      if (existing) return existing.id;
      const created = await this.#ledger.createAccountIn(tx, {
        currency,
        exponent,
        normalBalance: purpose === 'settlement' ? 'debit' : 'credit',
        allowOverdraft: false,
        code,
        metadata: { bank: true, purpose },
      });
      return created.id;
    });
    this.#known.set(code, id);
    return id;
  }
}
