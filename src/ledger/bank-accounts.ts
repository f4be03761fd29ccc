// The bank's own ledger accounts that payments move through, one per purpose and currency, found by code
// and created on first use (under a lock, so two processes create one):
// - settlement (`bank:settlement-eur`): the bank's money at the central bank and at other banks. An asset,
//   debit-normal: money arriving from another bank raises it, money leaving lowers it.
// - clearing (`bank:clearing-eur`): outbound payments taken from customers and not yet settled with the
//   scheme. A liability, credit-normal: it holds what the bank owes the scheme until the settlement cycle.
// - payouts (`bank:payouts-eur`): a payout batch's money between the payer's one debit and the payees'
//   credits. A liability, credit-normal; each batch leaves it as it found it.
// - loyalty-funding (`bank:loyalty-funding-eur`): what the bank pays creditors for the points customers
//   spend (src/loyalty/). The bank's expense, debit-normal: a redemption raises it, a refund lowers it.
// - points-issued (`bank:points-issued-pts`): the other side of every point in customers' points accounts,
//   issued when earned and retired when spent. Debit-normal; its balance is the points outstanding.
// - fx-position (`bank:fx-position-usd`): the bank's open position from customers' conversions (src/fx/):
//   credited with the currency it takes in, debited with what it pays out. Credit-normal, and the one purpose
//   allowed below zero: a negative balance is a short position, which is what a position may be.
// - fx-income (`bank:fx-income-eur`): FX fees earned. Credit-normal.
// - nostro (`bank:nostro-usd`): the bank's account at its correspondent abroad, through which cross-border
//   payments settle. An asset, debit-normal, like settlement.
import type { Db } from '../db/db.ts';
import { currencyExponent } from '../money.ts';
import type { Ledger } from './service.ts';

/**
 * Loyalty points: a ledger currency of the bank's own (not an ISO 4217 code), in whole points. Only the
 * ledger accounts the bank makes for them hold it; whatever names a currency from outside (the ledger API,
 * payments, accounts) still asks `currencyExponent`, which knows ISO 4217 only and refuses `PTS`.
 */
export const POINTS_CURRENCY = 'PTS';
export const POINTS_EXPONENT = 0;

export type BankLedgerPurpose =
  | 'settlement'
  | 'clearing'
  | 'payouts'
  | 'loyalty-funding'
  | 'points-issued'
  | 'fx-position'
  | 'fx-income'
  | 'nostro';

// What the bank holds or spends is debit-normal; what it owes is credit-normal.
const DEBIT_NORMAL: ReadonlySet<BankLedgerPurpose> = new Set([
  'settlement',
  'loyalty-funding',
  'points-issued',
  'nostro',
]);

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
    const exponent = currency === POINTS_CURRENCY ? POINTS_EXPONENT : currencyExponent(currency);
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
        normalBalance: DEBIT_NORMAL.has(purpose) ? 'debit' : 'credit',
        allowOverdraft: purpose === 'fx-position',
        code,
        metadata: { bank: true, purpose },
      });
      return created.id;
    });
    this.#known.set(code, id);
    return id;
  }
}
