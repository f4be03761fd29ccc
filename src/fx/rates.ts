// Exchange-rate arithmetic, exact: rates are decimals held as scaled integers (`units / 10^scale`), mid rates
// as fractions of two such decimals, and every amount a bigint of minor units. No float ever touches a rate.
//
// Rounding, always in one direction and always stated:
// - the customer's rate is the mid rate less the spread, truncated to what ISO 20022 can carry (BaseOneRate:
//   at most 11 digits, at most 10 after the point), so it can be quoted, stored and sent as it is used;
// - an amount the customer is credited is rounded down to its currency's minor unit, an amount debited is
//   rounded up (and so is the fee): the bank never credits a fraction of a minor unit it did not receive.
import { MINOR_MAX } from '../money.ts';

/** A positive decimal: `units / 10^scale`. */
export interface Rate {
  readonly units: bigint;
  readonly scale: number;
}

/** A positive exact ratio (a mid rate computed from two quotes against a base currency). */
export interface Ratio {
  readonly numerator: bigint;
  readonly denominator: bigint;
}

/** ISO 20022 BaseOneRate: xs:decimal with totalDigits 11 and fractionDigits 10. */
export const RATE_TOTAL_DIGITS = 11;
export const RATE_FRACTION_DIGITS_MAX = 10;
/** Basis points in one: 10,000. */
export const BPS = 10_000n;

const RATE_SHAPE = /^(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?$/;

/** Parses a strictly positive plain decimal ("1.0850"); undefined for anything else. */
export function parseRate(text: string): Rate | undefined {
  const match = RATE_SHAPE.exec(text);
  if (!match) return undefined;
  const fraction = match[2]?.slice(1) ?? '';
  const units = BigInt(`${match[1]}${fraction}`);
  return units > 0n ? { units, scale: fraction.length } : undefined;
}

export function formatRate(rate: Rate): string {
  if (rate.scale === 0) return rate.units.toString();
  const digits = rate.units.toString().padStart(rate.scale + 1, '0');
  return `${digits.slice(0, -rate.scale)}.${digits.slice(-rate.scale)}`;
}

const pow10 = (n: number) => 10n ** BigInt(n);

/** How many units of `to` one unit of `from` buys, when both are quoted against one base currency. */
export function crossRate(basePerFrom: Rate, basePerTo: Rate): Ratio {
  // from = b_from base-units, to = b_to base-units per base: 1 from = b_to / b_from to.
  return {
    numerator: basePerTo.units * pow10(basePerFrom.scale),
    denominator: basePerFrom.units * pow10(basePerTo.scale),
  };
}

/** The ratio less `spreadBps` basis points (the bank's margin on the mid rate). */
export function lessSpread(mid: Ratio, spreadBps: number): Ratio {
  if (!Number.isInteger(spreadBps) || spreadBps < 0 || spreadBps >= 10_000) {
    throw new RangeError('spreadBps must be an integer from 0 to 9999');
  }
  return { numerator: mid.numerator * (BPS - BigInt(spreadBps)), denominator: mid.denominator * BPS };
}

/**
 * The ratio truncated to the most precise decimal ISO 20022 carries: 11 digits in all, 10 at most after the
 * point. Undefined when it has more than 11 integer digits or truncates to zero (no usable rate).
 */
export function truncateRate(ratio: Ratio): Rate | undefined {
  const whole = ratio.numerator / ratio.denominator;
  const integerDigits = whole === 0n ? 0 : whole.toString().length;
  const scale = Math.min(RATE_FRACTION_DIGITS_MAX, RATE_TOTAL_DIGITS - integerDigits);
  if (scale < 0) return undefined;
  const units = (ratio.numerator * pow10(scale)) / ratio.denominator;
  return units > 0n ? { units, scale } : undefined;
}

/** ceil(a / b) for non-negative a and positive b. */
const divideUp = (a: bigint, b: bigint) => (a + b - 1n) / b;

/**
 * What the customer is credited, in minor units of the bought currency, for `sellMinor` minor units of the
 * sold currency at `rate`: rounded down, so the bank never pays out a fraction it did not receive.
 */
export function buyFor(sellMinor: bigint, rate: Rate, sellExponent: number, buyExponent: number): bigint {
  return (sellMinor * rate.units * pow10(buyExponent)) / (pow10(rate.scale) * pow10(sellExponent));
}

/**
 * What the customer is debited, in minor units of the sold currency, for the creditor to receive `buyMinor`
 * minor units at `rate`: the least amount that buys at least that much (rounded up).
 */
export function sellFor(buyMinor: bigint, rate: Rate, sellExponent: number, buyExponent: number): bigint {
  return divideUp(buyMinor * pow10(rate.scale) * pow10(sellExponent), rate.units * pow10(buyExponent));
}

/** A fee of `feeBps` basis points on `amountMinor`, rounded up to the minor unit. */
export function feeOn(amountMinor: bigint, feeBps: number): bigint {
  if (!Number.isInteger(feeBps) || feeBps < 0 || feeBps >= 10_000) {
    throw new RangeError('feeBps must be an integer from 0 to 9999');
  }
  return divideUp(amountMinor * BigInt(feeBps), BPS);
}

export interface Conversion {
  readonly sellMinor: bigint;
  readonly buyMinor: bigint;
  readonly feeMinor: bigint;
}

/**
 * The amounts of a conversion at `rate` with one side fixed by the customer, or undefined when the other side
 * comes to less than one minor unit or the debit (with its fee) to more than a balance can hold.
 */
export function convert(
  fixed: { readonly side: 'sell' | 'buy'; readonly minor: bigint },
  rate: Rate,
  exponents: { readonly sell: number; readonly buy: number },
  feeBps: number,
): Conversion | undefined {
  const sellMinor =
    fixed.side === 'sell' ? fixed.minor : sellFor(fixed.minor, rate, exponents.sell, exponents.buy);
  const buyMinor =
    fixed.side === 'buy' ? fixed.minor : buyFor(fixed.minor, rate, exponents.sell, exponents.buy);
  const feeMinor = feeOn(sellMinor, feeBps);
  if (buyMinor < 1n || sellMinor < 1n || buyMinor > MINOR_MAX || sellMinor + feeMinor > MINOR_MAX) {
    return undefined;
  }
  return { sellMinor, buyMinor, feeMinor };
}
