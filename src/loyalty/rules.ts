// The arithmetic of loyalty points, with no database: what a debit costs in points and in money and what it
// earns, and how a refund splits back. Exact bigint arithmetic. Every rounding goes the bank's stated way:
// - points earned round down (no fraction of a point is ever credited);
// - the redemption rate makes every minor unit a whole number of points, so points spent are worth a whole
//   number of minor units, or refused (never rounded);
// - a partial refund's points part rounds down to whole minor units of value and the money part takes the
//   remainder; sums run over everything refunded so far, so the last refund squares both parts exactly.
import { MINOR_MAX, type Minor } from '../money.ts';

declare const pointsBrand: unique symbol;
/** A number of loyalty points. Branded so it never mixes with money's minor units. */
export type Points = bigint & { readonly [pointsBrand]: true };

export const MERCHANT_CATEGORY = /^[0-9]{4}$/;
/** The earn rule for purchases whose merchant category has none of its own. */
export const DEFAULT_CATEGORY = 'default';

export interface EarnRule {
  readonly currency: string;
  /** An ISO 18245 merchant category code, or `default`. */
  readonly merchantCategory: string;
  /** `points` points for every `perMinor` of money spent. */
  readonly points: bigint;
  readonly perMinor: Minor;
}

export interface RedemptionRate {
  readonly currency: string;
  /** `points` points pay `amountMinor`; `points` is a multiple of `amountMinor` (the table checks it). */
  readonly points: bigint;
  readonly amountMinor: Minor;
}

export const pointsPerMinorOf = (rate: RedemptionRate): bigint => rate.points / rate.amountMinor;

export type DebitSplitProblem = 'points_not_accepted' | 'points_value_not_whole' | 'points_exceed_amount';

export interface DebitSplit {
  readonly points: Points;
  /** What the points pay, in the debit's currency. */
  readonly pointsValue: Minor;
  /** What the account pays in money: the amount less the points' value. */
  readonly money: Minor;
  /** The rate the points were spent at; null when none were. */
  readonly pointsPerMinor: bigint | null;
  /** Earned on the money part only: points do not earn points. */
  readonly earned: Points;
}

/**
 * Splits a debit of `amount` into points and money at the redemption rate, and what it earns under `earnRule`
 * (undefined: it earns nothing). A refusal says why in words the payer can act on.
 */
export function splitDebit(input: {
  amount: Minor;
  points: Points;
  rate: RedemptionRate | undefined;
  earnRule: EarnRule | undefined;
}): { ok: true; split: DebitSplit } | { ok: false; code: DebitSplitProblem; detail: string } {
  const { amount, points, rate, earnRule } = input;
  if (amount <= 0n || points < 0n)
    throw new RangeError('splitDebit: amount must be positive, points not negative');
  let pointsValue = 0n;
  let pointsPerMinor: bigint | null = null;
  if (points > 0n) {
    if (!rate) {
      return { ok: false, code: 'points_not_accepted', detail: 'the bank takes no points in this currency' };
    }
    pointsPerMinor = pointsPerMinorOf(rate);
    if (points % pointsPerMinor !== 0n) {
      return {
        ok: false,
        code: 'points_value_not_whole',
        detail: `at ${pointsPerMinor} points per minor unit, points come in multiples of ${pointsPerMinor}`,
      };
    }
    pointsValue = points / pointsPerMinor;
    if (pointsValue > amount) {
      return { ok: false, code: 'points_exceed_amount', detail: 'the points are worth more than the amount' };
    }
  }
  const money = amount - pointsValue;
  const earnedExact = earnRule ? (money * earnRule.points) / earnRule.perMinor : 0n;
  // Past what a balance can hold the ledger refuses the transfer (balance_overflow); the record stays storable.
  const earned = earnedExact > MINOR_MAX ? MINOR_MAX : earnedExact;
  return {
    ok: true,
    split: {
      points,
      pointsValue: pointsValue as Minor,
      money: money as Minor,
      pointsPerMinor,
      earned: earned as Points,
    },
  };
}

/** A debit as refunds see it: what it was, and what refunds (planned or applied) have taken so far. */
export interface DebitTotals {
  readonly amount: Minor;
  readonly pointsValue: Minor;
  readonly pointsPerMinor: bigint | null;
  readonly earned: Points;
  readonly refundedAmount: Minor;
  readonly refundedValue: Minor;
  readonly earnedReversed: Points;
}

export interface RefundSplit {
  readonly amount: Minor;
  /** Money back to the account. */
  readonly money: Minor;
  /** The refund's part paid back in points, valued in money... */
  readonly pointsValue: Minor;
  /** ...and as the points returned. */
  readonly points: Points;
  /** Points the refunded part had earned, taken back from the points account... */
  readonly clawback: Points;
  /** ...and those it no longer holds (already spent): not taken, the bank's loss. */
  readonly waived: Points;
}

/**
 * Splits a refund of `refund` (at most what is left unrefunded) in proportion to how the debit was paid,
 * and takes back in proportion the points it earned, as far as the points account holds them (`pointsHeld`,
 * before this refund's points come back). See the rounding rule at the top of this file.
 */
export function splitRefund(debit: DebitTotals, refund: Minor, pointsHeld: Points): RefundSplit {
  const left = debit.amount - debit.refundedAmount;
  if (refund <= 0n || refund > left) throw new RangeError('splitRefund: the refund exceeds what is left');
  const refundedAfter = debit.refundedAmount + refund;
  const moneyLeft = debit.amount - debit.pointsValue - (debit.refundedAmount - debit.refundedValue);
  const valueLeft = debit.pointsValue - debit.refundedValue;
  // The points part: the debit's points value in proportion to everything refunded, rounded down, less what
  // earlier refunds returned (voided refunds leave the running sums off the formula: hence the clamp).
  const pointsValue = clamp(
    (debit.pointsValue * refundedAfter) / debit.amount - debit.refundedValue,
    0n,
    min(refund, valueLeft),
  );
  const money = refund - pointsValue;
  // Never more money than is left: floor(V x after / A) >= after - (A - V), as (A - after)(A - V) >= 0.
  if (money > moneyLeft) throw new Error('splitRefund: the money part exceeds the money left');
  const points = pointsValue * (debit.pointsPerMinor ?? 0n);
  const reverseLeft = debit.earned - debit.earnedReversed;
  const reverse = clamp(
    (debit.earned * refundedAfter) / debit.amount - debit.earnedReversed,
    0n,
    reverseLeft,
  );
  const clawback = min(reverse, pointsHeld + points);
  return {
    amount: refund,
    money: money as Minor,
    pointsValue: pointsValue as Minor,
    points: points as Points,
    clawback: clawback as Points,
    waived: (reverse - clawback) as Points,
  };
}

const min = (a: bigint, b: bigint) => (a < b ? a : b);
const clamp = (value: bigint, low: bigint, high: bigint) => (value < low ? low : value > high ? high : value);
