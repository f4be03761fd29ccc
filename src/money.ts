import currencyCodes from 'currency-codes';

declare const minorUnits: unique symbol;
/** An amount in a currency's minor units (cents for EUR, yen for JPY). Branded so it never mixes with counts. */
export type Minor = bigint & { readonly [minorUnits]: true };

/** The largest amount a ledger balance (PostgreSQL `bigint`) can hold. */
export const MINOR_MAX = 2n ** 63n - 1n;

// ISO 4217 codes that are not money a bank account holds: precious metals, bond units, SDR, testing, none.
const NOT_MONEY = new Set([
  'XAG',
  'XAU',
  'XBA',
  'XBB',
  'XBC',
  'XBD',
  'XDR',
  'XPD',
  'XPT',
  'XSU',
  'XTS',
  'XUA',
  'XXX',
]);

/** The ISO 4217 minor-unit exponent of an active currency, or undefined for anything else. */
export function currencyExponent(code: string): number | undefined {
  if (!/^[A-Z]{3}$/.test(code) || NOT_MONEY.has(code)) return undefined;
  const digits = currencyCodes.code(code)?.digits;
  return typeof digits === 'number' ? digits : undefined;
}

export interface ParsedAmount {
  readonly minor: Minor;
  /** Digits after the decimal point; must equal the currency's exponent, checked where it is known. */
  readonly scale: number;
}

// Positive, no sign, no exponent, no leading zeros, at most 4 fraction digits (the largest ISO exponent).
const AMOUNT_SHAPE = /^(0|[1-9][0-9]{0,18})(\.[0-9]{1,4})?$/;
export const AMOUNT_PATTERN = AMOUNT_SHAPE.source;

/** Parses a strictly positive decimal amount; undefined when the text is not one or exceeds `MINOR_MAX`. */
export function parseAmount(text: string): ParsedAmount | undefined {
  const match = AMOUNT_SHAPE.exec(text);
  if (!match) return undefined;
  const fraction = match[2]?.slice(1) ?? '';
  const minor = BigInt(`${match[1]}${fraction}`);
  if (minor <= 0n || minor > MINOR_MAX) return undefined;
  return { minor: minor as Minor, scale: fraction.length };
}

/** Minor units as the decimal string JSON carries: `formatAmount(-1050n, 2) === "-10.50"`. */
export function formatAmount(minor: bigint, exponent: number): string {
  const sign = minor < 0n ? '-' : '';
  const digits = (minor < 0n ? -minor : minor).toString();
  if (exponent === 0) return `${sign}${digits}`;
  const padded = digits.padStart(exponent + 1, '0');
  return `${sign}${padded.slice(0, -exponent)}.${padded.slice(-exponent)}`;
}
