// Loyalty points. Points are a ledger currency of the bank's own (PTS, whole points): each bank account has
// a points account in the ledger, credited from `bank:points-issued-pts` when points are earned and debited
// back to it when they are spent. A debit paid partly with points is ONE ledger transfer:
//
//   account         -> creditor   the money part (the amount less the points' value)
//   loyalty-funding -> creditor   the points' value: the bank pays it, so the creditor receives the full amount
//   points account  -> issued     the points spent
//   issued          -> points account   the points the money part earns
//
// so points and money move together or not at all, and under the transfer's idempotency key exactly once.
// The split is decided and recorded (a debit, `planned`) with the payment, before any money moves: a retry
// or the recovery sweep rebuilds the very same transfer whatever the operators changed since. The caller
// records the transfer's outcome (`settleDebit`) in the transaction that records its own.
//
// Refunds run the other way in proportion (`planRefund`, rules.ts says how it rounds), and take back the
// points the refunded part had earned, as far as the points account still holds them.
//
// For callers (payments, mandate charges made as payments):
//   planDebit -> recordDebit(tx) -> debitTransfer -> ledger.transfer -> rejectionOf -> settleDebit(tx)
//   planRefund -> refundTransfer -> ledger.transfer -> settleRefund(tx)
import type { Db, Sql } from '../db/db.ts';
import type { OutboxEvent } from '../events/outbox.ts';
import type { FieldError } from '../http/problems.ts';
import { type BankLedgerAccounts, POINTS_CURRENCY, POINTS_EXPONENT } from '../ledger/bank-accounts.ts';
import { balancesOf, type PostingRequest } from '../ledger/model.ts';
import type { Ledger, TransferOutcome } from '../ledger/service.ts';
import { currencyExponent, type Minor, parseAmount } from '../money.ts';
import { type DebitSplitProblem, type Points, pointsPerMinorOf, splitDebit, splitRefund } from './rules.ts';
import {
  deleteEarnRule,
  deleteRedemptionRate,
  findDebit,
  findRefund,
  findWallet,
  insertDebit,
  insertWallet,
  listEarnRules,
  listRedemptionRates,
  loadTerms,
  planRefund,
  putEarnRule,
  putRedemptionRate,
  type StoredDebit,
  type StoredEarnRule,
  type StoredRedemptionRate,
  type StoredRefund,
  settleDebit,
  settleRefund,
  type Wallet,
} from './store.ts';

export type { Points } from './rules.ts';
export type { StoredDebit as LoyaltyDebit, StoredRefund as LoyaltyRefund } from './store.ts';

export const HISTORY_PAGE_MAX = 500;
export const EARN_RULES_PAGE_MAX = 500;
// An operator's rule gives at most this many points per `per` amount: a slip of the keyboard should not
// mint points past what any balance can hold.
export const EARN_POINTS_MAX = 1_000_000n;

export type LoyaltyProblem = DebitSplitProblem | 'insufficient_points';

export interface DebitRequest {
  /** The payment's (or charge's) id: one debit per id. */
  readonly id: string;
  /** The bank account paying, whose points are spent and earned. */
  readonly accountId: string;
  readonly customerId: string;
  readonly currency: string;
  /** The full amount: the creditor receives all of it. */
  readonly amount: Minor;
  /** Points offered towards it; 0 for none. */
  readonly points: Points;
  /** ISO 18245; null for a transfer, which earns nothing. */
  readonly merchantCategory: string | null;
  /** False for a payment between the customer's own accounts: moving one's own money is not spending. */
  readonly earns: boolean;
}

/** One ledger transfer's postings and what its metadata says of them. */
export interface LoyaltyTransfer {
  readonly postings: readonly PostingRequest[];
  readonly metadata: { readonly loyalty: { readonly debitId: string; readonly refundId?: string } };
  /** The posting that spends points, if any: a refusal there is the points', not the money's. */
  readonly pointsPosting: number | undefined;
}

export type PointsMovementKind = 'earned' | 'redeemed' | 'refunded' | 'reversed';

export interface PointsMovement {
  readonly seq: bigint;
  readonly transferId: string;
  readonly kind: PointsMovementKind;
  readonly points: Points;
  readonly balanceAfter: Points;
  readonly bookedAt: Date;
  readonly debitId: string | null;
  readonly refundId: string | null;
}

export type OperatorOutcome<T> =
  | { ok: true; value: T; created: boolean }
  | {
      ok: false;
      code: 'unsupported_currency' | 'amount_scale_mismatch' | 'validation_failed';
      detail: string;
      errors?: readonly FieldError[];
    };

const pointsAmount = (points: bigint) => ({ minor: points as bigint as Minor, scale: POINTS_EXPONENT });

export class Loyalty {
  readonly #db: Db;
  readonly #ledger: Ledger;
  readonly #bankAccounts: BankLedgerAccounts;
  readonly #now: () => Date;

  constructor(options: { db: Db; ledger: Ledger; bankAccounts: BankLedgerAccounts; now?: () => Date }) {
    this.#db = options.db;
    this.#ledger = options.ledger;
    this.#bankAccounts = options.bankAccounts;
    this.#now = options.now ?? (() => new Date());
  }

  // ------------------------------------------------------------------------------------------------ debits

  /**
   * Splits a debit into points and money under today's terms, before anything is recorded. `debit` is
   * undefined when there is nothing to record: no points offered and none earned. The points balance is
   * checked here so the payer hears at once; the ledger checks it again when the points move.
   */
  async planDebit(
    request: DebitRequest,
  ): Promise<
    { ok: true; debit: StoredDebit | undefined } | { ok: false; code: LoyaltyProblem; detail: string }
  > {
    const category = request.earns ? request.merchantCategory : null;
    // A plain transfer paid in money earns and spends nothing: no need to read the terms.
    if (request.points === 0n && category === null) return { ok: true, debit: undefined };
    const terms = await loadTerms(this.#db, request.currency, category);
    const split = splitDebit({
      amount: request.amount,
      points: request.points,
      rate: terms.rate,
      earnRule: terms.earnRule,
    });
    if (!split.ok) return split;
    if (split.split.points > 0n && (await this.balance(request.accountId)) < split.split.points) {
      return { ok: false, code: 'insufficient_points', detail: 'the account has fewer points than offered' };
    }
    if (split.split.points === 0n && split.split.earned === 0n) return { ok: true, debit: undefined };
    const now = this.#now();
    return {
      ok: true,
      debit: {
        id: request.id,
        accountId: request.accountId,
        customerId: request.customerId,
        currency: request.currency,
        amount: request.amount,
        points: split.split.points,
        pointsValue: split.split.pointsValue,
        pointsPerMinor: split.split.pointsPerMinor,
        pointsEarned: split.split.earned,
        merchantCategory: request.merchantCategory,
        status: 'planned',
        refundedAmount: 0n as Minor,
        refundedValue: 0n as Minor,
        earnedReversed: 0n as Points,
        createdAt: now,
        updatedAt: now,
      },
    };
  }

  /** Records the planned debit in the caller's transaction (with the payment it belongs to). */
  async recordDebit(tx: Sql, debit: StoredDebit): Promise<void> {
    if (debit.status !== 'planned') throw new Error(`debit ${debit.id} is recorded as planned only`);
    if (!(await insertDebit(tx, debit, this.#debitEvent(debit, 'planned')))) {
      throw new Error(`debit ${debit.id} was recorded twice: its payment's key should have stopped the twin`);
    }
  }

  findDebit(id: string): Promise<StoredDebit | undefined> {
    return findDebit(this.#db, id);
  }

  /** The one transfer that moves the debit's money and points (see the top of this file). */
  async debitTransfer(
    debit: StoredDebit,
    sides: { debtorLedgerAccountId: string; creditorLedgerAccountId: string },
  ): Promise<LoyaltyTransfer> {
    const exponent = this.#exponent(debit.currency);
    const postings: PostingRequest[] = [];
    if (debit.pointsValue < debit.amount) {
      postings.push({
        debitAccountId: sides.debtorLedgerAccountId,
        creditAccountId: sides.creditorLedgerAccountId,
        amount: { minor: (debit.amount - debit.pointsValue) as Minor, scale: exponent },
      });
    }
    const wallet = await this.#wallet(debit.accountId, debit.customerId);
    const issued = await this.#bankAccounts.id('points-issued', POINTS_CURRENCY);
    let pointsPosting: number | undefined;
    if (debit.points > 0n) {
      postings.push({
        debitAccountId: await this.#bankAccounts.id('loyalty-funding', debit.currency),
        creditAccountId: sides.creditorLedgerAccountId,
        amount: { minor: debit.pointsValue, scale: exponent },
      });
      pointsPosting = postings.length;
      postings.push({
        debitAccountId: wallet.ledgerAccountId,
        creditAccountId: issued,
        amount: pointsAmount(debit.points),
      });
    }
    // After the points spent, so the points this debit earns can never pay for it.
    if (debit.pointsEarned > 0n) {
      postings.push({
        debitAccountId: issued,
        creditAccountId: wallet.ledgerAccountId,
        amount: pointsAmount(debit.pointsEarned),
      });
    }
    return { postings, metadata: { loyalty: { debitId: debit.id } }, pointsPosting };
  }

  /**
   * Records the transfer's outcome in the caller's transaction: `applied` when it posted, `voided` when it
   * was refused or never ran (a blocked payment). Only the first outcome counts, and it writes the event; a
   * debit never recorded (no points spent or earned) is left alone.
   */
  async settleDebit(tx: Sql, debitId: string, posted: boolean): Promise<void> {
    const debit = await findDebit(tx, debitId);
    if (debit?.status !== 'planned') return;
    const to = posted ? 'applied' : 'voided';
    await settleDebit(tx, debit.id, to, this.#now(), this.#debitEvent(debit, to));
  }

  #debitEvent(debit: StoredDebit, status: StoredDebit['status']): OutboxEvent {
    return {
      type: `loyalty.debit.${status}`,
      subjectId: debit.accountId,
      payload: {
        debitId: debit.id,
        accountId: debit.accountId,
        customerId: debit.customerId,
        currency: debit.currency,
        amount: debit.amount.toString(),
        pointsRedeemed: debit.points.toString(),
        pointsValue: debit.pointsValue.toString(),
        pointsEarned: debit.pointsEarned.toString(),
      },
    };
  }

  // ----------------------------------------------------------------------------------------------- refunds

  /**
   * Plans a refund of `amount` of the debit `debitId` (at most what is left unrefunded: the caller checks),
   * or finds the one planned before under `refundId` (a retry rebuilds the same transfer). Undefined when
   * the debit moved no points: the caller refunds money only, as it would without loyalty.
   */
  async planRefund(request: {
    refundId: string;
    debitId: string;
    amount: Minor;
  }): Promise<StoredRefund | undefined> {
    const debit = await findDebit(this.#db, request.debitId);
    if (!debit) return undefined;
    if (debit.status !== 'applied') {
      throw new Error(`refund of debit ${debit.id}, which is ${debit.status}: its money never moved`);
    }
    // Read before the transaction (on PGlite the transaction is the only connection); the ledger checks again.
    const pointsHeld = (await this.balance(debit.accountId)) as Points;
    return this.#db.transaction(async (tx) => {
      // The debit's lock first: its refunds are planned one at a time, so a twin finds the first's plan.
      const locked = await findDebit(tx, request.debitId, true);
      if (!locked) throw new Error(`debit ${request.debitId} vanished`);
      const existing = await findRefund(tx, request.refundId);
      if (existing && existing.status !== 'voided') {
        if (existing.debitId !== request.debitId || existing.amount !== request.amount) {
          throw new Error(`refund ${request.refundId} was planned before with another debit or amount`);
        }
        return existing;
      }
      const split = splitRefund(
        {
          amount: locked.amount,
          pointsValue: locked.pointsValue,
          pointsPerMinor: locked.pointsPerMinor,
          earned: locked.pointsEarned,
          refundedAmount: locked.refundedAmount,
          refundedValue: locked.refundedValue,
          earnedReversed: locked.earnedReversed,
        },
        request.amount,
        pointsHeld,
      );
      const now = this.#now();
      const refund: StoredRefund = {
        id: request.refundId,
        debitId: locked.id,
        accountId: locked.accountId,
        ...split,
        status: 'planned',
        createdAt: existing?.createdAt ?? now,
        updatedAt: now,
      };
      await planRefund(tx, refund, this.#refundEvent(refund, locked, 'planned'));
      return refund;
    });
  }

  /** The one transfer that returns a refund's money and points, and takes back the points it had earned. */
  async refundTransfer(
    refund: StoredRefund,
    sides: { sourceLedgerAccountId: string; debtorLedgerAccountId: string },
  ): Promise<LoyaltyTransfer> {
    const debit = await findDebit(this.#db, refund.debitId);
    if (!debit) throw new Error(`refund ${refund.id} names a missing debit`);
    const exponent = this.#exponent(debit.currency);
    const postings: PostingRequest[] = [];
    if (refund.money > 0n) {
      postings.push({
        debitAccountId: sides.sourceLedgerAccountId,
        creditAccountId: sides.debtorLedgerAccountId,
        amount: { minor: refund.money, scale: exponent },
      });
    }
    const wallet = await this.#wallet(debit.accountId, debit.customerId);
    const issued = await this.#bankAccounts.id('points-issued', POINTS_CURRENCY);
    if (refund.points > 0n) {
      postings.push(
        {
          debitAccountId: sides.sourceLedgerAccountId,
          creditAccountId: await this.#bankAccounts.id('loyalty-funding', debit.currency),
          amount: { minor: refund.pointsValue, scale: exponent },
        },
        {
          debitAccountId: issued,
          creditAccountId: wallet.ledgerAccountId,
          amount: pointsAmount(refund.points),
        },
      );
    }
    let pointsPosting: number | undefined;
    // After the points returned, which count towards what can be taken back.
    if (refund.clawback > 0n) {
      pointsPosting = postings.length;
      postings.push({
        debitAccountId: wallet.ledgerAccountId,
        creditAccountId: issued,
        amount: pointsAmount(refund.clawback),
      });
    }
    return { postings, metadata: { loyalty: { debitId: debit.id, refundId: refund.id } }, pointsPosting };
  }

  /**
   * Records the refund transfer's outcome in the caller's transaction. A refused one (the points account
   * spent the points to take back between plan and transfer) is voided and may be planned again.
   */
  async settleRefund(tx: Sql, refund: StoredRefund, posted: boolean): Promise<void> {
    const to = posted ? 'applied' : 'voided';
    const debit = await findDebit(tx, refund.debitId);
    if (!debit) throw new Error(`refund ${refund.id} names a missing debit`);
    await settleRefund(tx, refund.id, to, this.#now(), this.#refundEvent(refund, debit, to));
  }

  #refundEvent(refund: StoredRefund, debit: StoredDebit, status: StoredRefund['status']): OutboxEvent {
    return {
      type: `loyalty.refund.${status}`,
      subjectId: debit.accountId,
      payload: {
        refundId: refund.id,
        debitId: debit.id,
        accountId: debit.accountId,
        customerId: debit.customerId,
        currency: debit.currency,
        amount: refund.amount.toString(),
        money: refund.money.toString(),
        pointsReturned: refund.points.toString(),
        pointsReversed: refund.clawback.toString(),
        pointsWaived: refund.waived.toString(),
      },
    };
  }

  // --------------------------------------------------------------------------------------- points accounts

  /** The account's points (0 before its first). */
  async balance(accountId: string): Promise<Points> {
    const wallet = await findWallet(this.#db, accountId);
    if (!wallet) return 0n as Points;
    const account = await this.#ledger.getAccount(wallet.ledgerAccountId);
    if (!account) throw new Error(`points account of ${accountId} has no ledger account`);
    return balancesOf(account).available as Points;
  }

  /** Movements newest first, strictly older than `beforeSeq` when given. */
  async history(accountId: string, beforeSeq: bigint | undefined, limit: number): Promise<PointsMovement[]> {
    const wallet = await findWallet(this.#db, accountId);
    if (!wallet) return [];
    const entries = await this.#ledger.listEntryDetails(
      wallet.ledgerAccountId,
      {},
      beforeSeq,
      Math.min(limit, HISTORY_PAGE_MAX + 1),
    );
    return entries.map((entry) => {
      const notes = (entry.transferMetadata as { loyalty?: { debitId?: unknown; refundId?: unknown } })
        .loyalty;
      const refundId = typeof notes?.refundId === 'string' ? notes.refundId : null;
      const credit = entry.side === 'credit';
      return {
        seq: entry.seq,
        transferId: entry.transferId,
        kind: refundId ? (credit ? 'refunded' : 'reversed') : credit ? 'earned' : 'redeemed',
        points: entry.amount as bigint as Points,
        balanceAfter: entry.balance as Points,
        bookedAt: entry.createdAt,
        debitId: typeof notes?.debitId === 'string' ? notes.debitId : null,
        refundId,
      };
    });
  }

  /** What `points` are worth in `currency` today (rounded down), or undefined when it takes no points. */
  async worth(currency: string, points: Points): Promise<Minor | undefined> {
    const { rate } = await loadTerms(this.#db, currency, null);
    return rate && ((points / pointsPerMinorOf(rate)) as Minor);
  }

  /** The account's points account, made on first use under a lock on the account (so one per account). */
  async #wallet(accountId: string, customerId: string): Promise<Wallet> {
    const known = await findWallet(this.#db, accountId);
    if (known) return known;
    return this.#db.transaction(async (tx) => {
      await tx.query('select pg_advisory_xact_lock(hashtext($1))', [`loyalty-wallet:${accountId}`]);
      const existing = await findWallet(tx, accountId);
      if (existing) return existing;
      const ledgerAccount = await this.#ledger.createAccountIn(tx, {
        currency: POINTS_CURRENCY,
        exponent: POINTS_EXPONENT,
        normalBalance: 'credit',
        allowOverdraft: false,
        code: `points:${accountId}`,
        metadata: { bankAccountId: accountId, loyalty: true },
      });
      const wallet = { accountId, customerId, ledgerAccountId: ledgerAccount.id, createdAt: this.#now() };
      await insertWallet(tx, wallet, {
        type: 'loyalty.points_account.opened',
        subjectId: accountId,
        payload: { accountId, customerId, ledgerAccountId: ledgerAccount.id },
      });
      return wallet;
    });
  }

  #exponent(currency: string): number {
    const exponent = currencyExponent(currency);
    if (exponent === undefined) throw new Error(`debit in ${currency}, which has no ISO 4217 exponent`);
    return exponent;
  }

  // ------------------------------------------------------------------------------------------ operators

  earnRules(
    after: { currency: string; merchantCategory: string } | undefined,
    limit: number,
  ): Promise<StoredEarnRule[]> {
    return listEarnRules(this.#db, after, Math.min(limit, EARN_RULES_PAGE_MAX + 1));
  }

  /** Creates or replaces a rule; payments use it from the next one on, in every process. */
  async putEarnRule(input: {
    currency: string;
    merchantCategory: string;
    points: string;
    per: string;
    changedBy: string;
  }): Promise<OperatorOutcome<StoredEarnRule>> {
    const exponent = currencyExponent(input.currency);
    if (exponent === undefined) return unsupported(input.currency);
    const points = BigInt(input.points);
    if (points > EARN_POINTS_MAX) {
      return invalid('/body/points', `must be at most ${EARN_POINTS_MAX} points per amount`);
    }
    const per = parseAmount(input.per);
    if (!per) return invalid('/body/per', 'must be greater than zero and fit in 63 bits');
    if (per.scale !== exponent) return scaleMismatch(input.currency, exponent);
    const now = this.#now();
    const rule = {
      currency: input.currency,
      merchantCategory: input.merchantCategory,
      points,
      perMinor: per.minor,
    };
    const saved = await putEarnRule(this.#db, rule, input.changedBy, now, {
      type: 'loyalty.earn_rule.changed',
      subjectId: `earn-rule:${input.currency}:${input.merchantCategory}`,
      payload: { ...rule, points: points.toString(), perMinor: per.minor.toString() },
    });
    return { ok: true, value: saved.rule, created: saved.created };
  }

  deleteEarnRule(currency: string, merchantCategory: string): Promise<boolean> {
    return deleteEarnRule(this.#db, currency, merchantCategory, this.#now(), {
      type: 'loyalty.earn_rule.deleted',
      subjectId: `earn-rule:${currency}:${merchantCategory}`,
      payload: { currency, merchantCategory },
    });
  }

  redemptionRates(): Promise<StoredRedemptionRate[]> {
    return listRedemptionRates(this.#db);
  }

  /** Sets what points pay in a currency: `points` points for `amount`, a whole number of points per minor unit. */
  async putRedemptionRate(input: {
    currency: string;
    points: string;
    amount: string;
    changedBy: string;
  }): Promise<OperatorOutcome<StoredRedemptionRate>> {
    const exponent = currencyExponent(input.currency);
    if (exponent === undefined) return unsupported(input.currency);
    const amount = parseAmount(input.amount);
    if (!amount) return invalid('/body/amount', 'must be greater than zero and fit in 63 bits');
    if (amount.scale !== exponent) return scaleMismatch(input.currency, exponent);
    const points = BigInt(input.points);
    if (points % amount.minor !== 0n) {
      // Whole points per minor unit keep every split exact (rules.ts); 50 points for 1.00 would be half a
      // point per cent.
      return invalid(
        '/body/points',
        `must be a whole number of points per minor unit (a multiple of ${amount.minor})`,
      );
    }
    const rate = { currency: input.currency, points, amountMinor: amount.minor };
    const saved = await putRedemptionRate(this.#db, rate, input.changedBy, this.#now(), {
      type: 'loyalty.redemption_rate.changed',
      subjectId: `redemption-rate:${input.currency}`,
      payload: { currency: input.currency, points: points.toString(), amountMinor: amount.minor.toString() },
    });
    return { ok: true, value: saved.rate, created: saved.created };
  }

  deleteRedemptionRate(currency: string): Promise<boolean> {
    return deleteRedemptionRate(this.#db, currency, this.#now(), {
      type: 'loyalty.redemption_rate.deleted',
      subjectId: `redemption-rate:${currency}`,
      payload: { currency },
    });
  }
}

/** The refusal a payment records when the ledger refused its transfer at the points posting. */
export function rejectionOf(
  transfer: LoyaltyTransfer | undefined,
  outcome: Extract<TransferOutcome, { ok: false }>,
): string {
  const atPoints =
    transfer?.pointsPosting !== undefined &&
    'posting' in outcome &&
    outcome.posting === transfer.pointsPosting;
  return atPoints && outcome.code === 'insufficient_funds' ? 'insufficient_points' : outcome.code;
}

const unsupported = (currency: string) =>
  ({
    ok: false,
    code: 'unsupported_currency',
    detail: `${currency} is not an active ISO 4217 currency`,
  }) as const;
const scaleMismatch = (currency: string, exponent: number) =>
  ({
    ok: false,
    code: 'amount_scale_mismatch',
    detail: `${currency} amounts have ${exponent} decimals`,
  }) as const;
const invalid = (field: string, message: string) =>
  ({
    ok: false,
    code: 'validation_failed',
    detail: `${field} ${message}`,
    errors: [{ field, message }],
  }) as const;
