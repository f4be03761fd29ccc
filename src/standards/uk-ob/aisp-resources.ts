// The Account and Transaction API's shapes for what the bank's core keeps beyond accounts and orders:
// statements (src/accounts/ computes a calendar month from the ledger), direct debits (the customer's
// mandates as payer, src/mandates/) and beneficiaries (the payees the customer paid, src/payments/). Pure
// mappings; aisp.ts reads the core and decides what the consent allows.

import type { Statement } from '../../accounts/statement-formats.ts';
import type { BankAccount } from '../../accounts/store.ts';
import type { Charge, Mandate } from '../../mandates/service.ts';
import { currencyExponent, formatAmount } from '../../money.ts';
import type { Payee } from '../../payments/service.ts';

// ------------------------------------------------------------------------------------------ statements

/** A statement's id is its calendar month (UTC), `YYYY-MM`: one statement an account and month. */
export const STATEMENT_ID = /^[0-9]{4}-(0[1-9]|1[0-2])$/;

export interface StatementPeriod {
  readonly month: string;
  readonly start: Date;
  /** Exclusive: the first instant of the next month. */
  readonly end: Date;
}

export const periodOf = (month: string): StatementPeriod => {
  const start = new Date(`${month}-01T00:00:00Z`);
  return { month, start, end: new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1)) };
};

const monthOf = (date: Date) => date.toISOString().slice(0, 7);

/** The last instant a statement covers: the month's last millisecond, or now for the month still running. */
export const statementEnd = (period: StatementPeriod, now: Date) =>
  period.end <= now ? new Date(period.end.getTime() - 1) : now;

/**
 * The account's statement months, newest first: from the month it was opened to the current one (an
 * interim statement until the month ends). With fromStatementDateTime and toStatementDateTime, those whose
 * StartDateTime and EndDateTime both lie between them (Account and Transaction API, statements, filtering).
 */
export function statementMonths(account: BankAccount, now: Date, from?: Date, to?: Date): string[] {
  const months: string[] = [];
  const first = monthOf(account.createdAt);
  // One account's lifetime in months: a bank older than a century is not this one.
  for (let month = monthOf(now), count = 0; month >= first && count < 1200; count++) {
    const period = periodOf(month);
    if ((!from || period.start >= from) && (!to || statementEnd(period, now) <= to)) months.push(month);
    month = monthOf(new Date(Date.UTC(period.start.getUTCFullYear(), period.start.getUTCMonth() - 1, 1)));
  }
  return months;
}

/** Whether the account has a statement for `month` (opened by then, and the month begun). */
export function hasStatement(account: BankAccount, month: string, now: Date): boolean {
  return STATEMENT_ID.test(month) && month >= monthOf(account.createdAt) && month <= monthOf(now);
}

/**
 * OBStatement2: Basic names the period; Detail adds its amounts (the permissions table of the Account and
 * Transaction API), exactly as the ledger has them: opening and closing balance and the month's totals.
 * `statement` is undefined for Basic, or 'too_many_lines' when the month is too long to total here.
 */
export function statementJson(
  account: BankAccount,
  period: StatementPeriod,
  now: Date,
  statement: Statement | 'too_many_lines' | undefined,
) {
  const complete = period.end <= now;
  const end = statementEnd(period, now);
  const amount = (type: string, decimal: string) => ({
    CreditDebitIndicator: decimal.startsWith('-') ? 'Debit' : 'Credit',
    Type: type,
    Amount: { Amount: decimal.replace(/^-/, ''), Currency: account.currency },
  });
  return {
    AccountId: account.id,
    StatementId: period.month,
    StatementReference: period.month,
    // A month still running is an interim statement, to now; a past one is the regular monthly statement.
    Type: complete ? 'RegularPeriodic' : 'Interim',
    StartDateTime: period.start.toISOString(),
    EndDateTime: end.toISOString(),
    // The statement is computed when asked for: a past month's exists from the instant the month ended.
    CreationDateTime: (complete ? period.end : now).toISOString(),
    ...(statement === 'too_many_lines' && {
      StatementDescription: ['Too many movements this month to total here: read its transactions instead'],
    }),
    ...(statement &&
      statement !== 'too_many_lines' && {
        StatementAmount: [
          amount('UK.OBIE.StartingBalance', statement.openingBalance),
          amount('UK.OBIE.ClosingBalance', statement.closingBalance),
          { ...amount('UK.OBIE.TotalCredits', statement.totalCredits), CreditDebitIndicator: 'Credit' },
          { ...amount('UK.OBIE.TotalDebits', statement.totalDebits), CreditDebitIndicator: 'Debit' },
        ],
      }),
  };
}

// --------------------------------------------------------------------------------------- direct debits

const MANDATE_STATUS: Readonly<Partial<Record<Mandate['status'], string>>> = {
  authorised: 'ACTV',
  revoked: 'CANC',
  expired: 'EXPI',
};

/** A mandate the customer authorised is a direct debit on its account; one never authorised is none. */
export const isDirectDebit = (mandate: Mandate) =>
  mandate.debtorAccountId !== null && MANDATE_STATUS[mandate.status] !== undefined;

/** OBReadDirectDebit2: the merchant's name and the last payment it took. */
export function directDebitJson(mandate: Mandate, lastPaid: Charge | undefined) {
  const exponent = currencyExponent(mandate.currency) ?? 2;
  return {
    AccountId: mandate.debtorAccountId ?? '',
    DirectDebitId: mandate.id,
    DirectDebitStatusCode: MANDATE_STATUS[mandate.status] ?? 'CANC',
    MandateRelatedInformation: {
      // Variable amounts, taken whenever the merchant charges within the limits: ad hoc.
      Classification: 'VARI',
      FirstPaymentDateTime: mandate.createdAt.toISOString(),
      FinalPaymentDateTime: mandate.expiresAt.toISOString(),
      Frequency: { Type: 'ADHO' },
    },
    Name: mandate.creditor.name.slice(0, 70),
    ...(lastPaid && {
      PreviousPaymentDateTime: lastPaid.createdAt.toISOString(),
      PreviousPaymentAmount: { Amount: formatAmount(lastPaid.amount, exponent), Currency: lastPaid.currency },
    }),
  };
}

// --------------------------------------------------------------------------------------- beneficiaries

/**
 * OBBeneficiary5: the bank keeps no list of saved payees, so a beneficiary is a payee the customer paid
 * from the account (src/payments/ payees()). Never marked trusted by the customer: Ordinary. Detail adds
 * the payee's account, as the permissions table of the specification says.
 */
export function beneficiaryJson(payee: Payee, detail: boolean) {
  return {
    AccountId: payee.debtorAccountId,
    BeneficiaryId: payee.id,
    BeneficiaryType: 'Ordinary',
    ...(payee.reference && { Reference: payee.reference.slice(0, 35) }),
    ...(detail && {
      CreditorAccount: {
        SchemeName: 'UK.OBIE.IBAN',
        Identification: payee.creditor.iban,
        Name: payee.creditor.name.slice(0, 350),
      },
    }),
  };
}
