// Every line of a payout file is checked before anything is stored as payable: each failure is reported
// with its line, field and a stable code, and a file with any failing line moves nothing. The checks need
// the payer's account and the payees' accounts at this bank, looked up beforehand in one query.
import { isValidIBAN } from 'ibantools';
import { type BankIdentity, normaliseIban } from '../accounts/iban.ts';
import type { BankAccount } from '../accounts/store.ts';
import { currencyExponent, MINOR_MAX, type Minor } from '../money.ts';
import type { RawLine } from './files.ts';

// Lengths from pain.001.001.09: Cdtr/Nm and RmtInf/Ustrd are Max140Text, PmtId/EndToEndId Max35Text.
const NAME_LENGTH_MAX = 140;
const REFERENCE_LENGTH_MAX = 140;
const END_TO_END_ID_LENGTH_MAX = 35;
// Control characters XML 1.0 cannot carry (all of C0 but tab, line feed and carriage return); NUL, among
// them, is also what a PostgreSQL text column refuses, so a line carrying one would fail its batch's insert.
const hasControlCharacter = (text: string): boolean => {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) return true;
  }
  return false;
};
/** A report lists at most this many errors (with the true count beside it): enough to fix any real file. */
export const LINE_ERRORS_REPORTED_MAX = 10_000;

export type LineErrorCode =
  | 'missing'
  | 'too_long'
  | 'invalid_characters'
  | 'invalid_iban'
  | 'invalid_amount'
  | 'total_too_large'
  | 'amount_scale_mismatch'
  | 'currency_mismatch'
  | 'unknown_account'
  | 'account_not_active'
  | 'same_account'
  | 'duplicate_end_to_end_id';

export type LineField = 'name' | 'iban' | 'amount' | 'currency' | 'reference' | 'endToEndId';

export interface LineError {
  readonly line: number;
  readonly field: LineField;
  readonly code: LineErrorCode;
  readonly message: string;
}

/** A line that passed every check: what execution pays. */
export interface PayoutLine {
  readonly line: number;
  readonly creditorName: string;
  readonly creditorIban: string;
  /** The payee's account when it is at this bank; null: another bank. */
  readonly creditorAccountId: string | null;
  readonly amount: Minor;
  readonly reference: string | null;
  readonly endToEndId: string | null;
}

export interface LineReport {
  readonly lines: readonly PayoutLine[];
  readonly errors: readonly LineError[];
  /** All errors found; `errors` holds the first LINE_ERRORS_REPORTED_MAX. */
  readonly errorCount: number;
}

/** The IBANs worth looking up at this bank: the well-formed ones of the file, in electronic form. */
export function payeeIbans(lines: readonly RawLine[]): string[] {
  const ibans = new Set<string>();
  for (const line of lines) {
    const iban = line.iban === null ? '' : normaliseIban(line.iban);
    if (isValidIBAN(iban)) ibans.add(iban);
  }
  return [...ibans];
}

/**
 * An amount from a file: an xs:decimal without sign or exponent ("10.5", "10.50", "+10.500"), of at most the
 * currency's decimals once trailing zeros go. Files are written by spreadsheets and payroll systems, which
 * drop trailing zeros; the value is what counts, and it must be exact in minor units.
 */
export function fileAmount(text: string, exponent: number): Minor | 'invalid' | 'too_many_decimals' {
  const match = /^\+?([0-9]{1,19})(?:\.([0-9]{1,19}))?$/.exec(text);
  if (!match) return 'invalid';
  const fraction = (match[2] ?? '').replace(/0+$/, '');
  if (fraction.length > exponent) return 'too_many_decimals';
  const minor = BigInt(`${match[1]}${fraction.padEnd(exponent, '0')}`);
  return minor > 0n && minor <= MINOR_MAX ? (minor as Minor) : 'invalid';
}

/** Checks every line against the payer's account and the payees' accounts found at this bank. */
export function checkLines(
  raw: readonly RawLine[],
  context: {
    readonly debtor: BankAccount;
    /** This bank's accounts among the file's payees, by IBAN. */
    readonly payees: ReadonlyMap<string, BankAccount>;
    readonly bank: BankIdentity;
  },
): LineReport {
  const { debtor, payees, bank } = context;
  const exponent = currencyExponent(debtor.currency) ?? 2;
  const errors: LineError[] = [];
  let errorCount = 0;
  const lines: PayoutLine[] = [];
  // The batch's total is one debit and one stored bigint: it must fit where a single amount does.
  let total = 0n;
  const endToEndIds = new Map<string, number>();
  // An IBAN of this bank's country and bank code names an account here, or nobody: it never leaves the bank.
  const ours = (iban: string) => iban.startsWith(bank.country) && iban.slice(4).startsWith(bank.bankCode);

  for (const line of raw) {
    let failed = false;
    const fail = (field: LineField, code: LineErrorCode, message: string) => {
      failed = true;
      errorCount++;
      if (errors.length < LINE_ERRORS_REPORTED_MAX) errors.push({ line: line.line, field, code, message });
    };
    const name = line.name?.trim() ?? '';
    if (name === '') fail('name', 'missing', "the payee's name is required");
    else if (name.length > NAME_LENGTH_MAX) fail('name', 'too_long', `at most ${NAME_LENGTH_MAX} characters`);
    else if (hasControlCharacter(name)) fail('name', 'invalid_characters', 'no control characters');

    const iban = line.iban === null ? '' : normaliseIban(line.iban);
    let payee: BankAccount | undefined;
    if (iban === '') fail('iban', 'missing', "the payee's IBAN is required");
    else if (!isValidIBAN(iban)) fail('iban', 'invalid_iban', 'not a valid IBAN (check digits or format)');
    else {
      payee = payees.get(iban);
      if (iban === debtor.iban) fail('iban', 'same_account', 'the payee is the account paying');
      else if (!payee && ours(iban)) fail('iban', 'unknown_account', 'no account of this bank has this IBAN');
      else if (payee && payee.status !== 'active')
        fail('iban', 'account_not_active', "the payee's account is frozen or closed");
      else if (payee && payee.currency !== debtor.currency)
        fail('iban', 'currency_mismatch', `the payee's account is in ${payee.currency}`);
    }

    if (line.currency === null) fail('currency', 'missing', 'the currency is required');
    else if (line.currency !== debtor.currency)
      fail('currency', 'currency_mismatch', `every payment is in the paying account's ${debtor.currency}`);

    let amount: Minor | undefined;
    if (line.amount === null) fail('amount', 'missing', 'the amount is required');
    else {
      const parsed = fileAmount(line.amount, exponent);
      if (parsed === 'invalid')
        fail('amount', 'invalid_amount', 'not a positive decimal amount (digits, one optional point)');
      else if (parsed === 'too_many_decimals')
        fail(
          'amount',
          'amount_scale_mismatch',
          `${debtor.currency} amounts have at most ${exponent} decimals`,
        );
      else amount = parsed;
    }

    const reference = line.reference?.trim() || null;
    if (reference && reference.length > REFERENCE_LENGTH_MAX)
      fail('reference', 'too_long', `at most ${REFERENCE_LENGTH_MAX} characters`);
    else if (reference && hasControlCharacter(reference))
      fail('reference', 'invalid_characters', 'no control characters');

    const endToEndId = line.endToEndId?.trim() || null;
    if (endToEndId && endToEndId.length > END_TO_END_ID_LENGTH_MAX)
      fail('endToEndId', 'too_long', `at most ${END_TO_END_ID_LENGTH_MAX} characters`);
    else if (endToEndId && hasControlCharacter(endToEndId))
      fail('endToEndId', 'invalid_characters', 'no control characters');
    else if (endToEndId) {
      const first = endToEndIds.get(endToEndId);
      // Two transfers under one end-to-end id are most often one payment entered twice.
      if (first !== undefined)
        fail('endToEndId', 'duplicate_end_to_end_id', `line ${first} has the same end-to-end id`);
      else endToEndIds.set(endToEndId, line.line);
    }

    if (!failed && amount !== undefined && total + amount > MINOR_MAX)
      fail('amount', 'total_too_large', 'the lines up to this one add up to more than an account can hold');
    if (!failed && amount !== undefined) {
      total += amount;
      lines.push({
        line: line.line,
        creditorName: name,
        creditorIban: iban,
        creditorAccountId: payee?.id ?? null,
        amount,
        reference,
        endToEndId,
      });
    }
  }
  return { lines, errors, errorCount };
}
