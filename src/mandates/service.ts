// Mandates (auto-debit): a customer authorises a merchant app, once, at the consent page, to charge an account
// while they are away, within limits — at most so much per charge and per calendar day, ISO week or month (UTC),
// in one currency, to the merchant's account, until an expiry. This is the shape of UK Open Banking variable
// recurring payments (VRP): the consent carries the control parameters, each charge is checked against them.
//
// A mandate IS a consent of type `mandate`, with the same id: its lifecycle (awaiting authorisation,
// authorised, rejected, revoked, expired) is the consent's, so revoking either revokes both, and the consent's
// events (`consent.authorised`, `consent.revoked`, ... with `type: "mandate"`) are the mandate's. This module
// keeps the terms as typed columns, the charges and the refunds.
//
// The merchant charges with its own client-credentials token (scope `payments`); what entitles it is owning
// the mandate (the app that created it) and the customer's authorisation of it, checked on every charge inside
// the charge's transaction. No customer token has to be kept alive for months (refresh tokens last 30 days,
// a mandate up to 180), and a revocation stops the next charge whatever tokens the app still holds.
//
// A charge is a payment (payments/service.ts): screened for fraud, with its own events, visible in
// /v1/payments. The limits are checked in the transaction that records that payment: the mandate row is locked
// (FOR UPDATE), the consent share-locked (still authorised), the window's charges summed and the charge
// inserted, so concurrent charges are counted one after the other and never exceed a limit together.
//
// Loyalty points (src/loyalty/) may pay part of a charge: the payment splits its one transfer into points and
// money exactly as any payment's. The limits count the whole charge, whatever part points pay: the customer
// authorised amounts, not a mix. A refund of such a charge gives both parts back in proportion, in the one
// ledger transfer that refunds it (the loyalty module plans the split and records its outcome).
import { isValidIBAN } from 'ibantools';
import { v7 as uuidv7 } from 'uuid';
import { normaliseIban } from '../accounts/iban.ts';
import type { Accounts } from '../accounts/service.ts';
import type { Consents } from '../consents/service.ts';
import type { Consent, ConsentStatus } from '../consents/store.ts';
import type { Db, Sql } from '../db/db.ts';
import { emit } from '../events/outbox.ts';
import { requestHash } from '../idempotency.ts';
import type { Ledger } from '../ledger/service.ts';
import { type Loyalty, type LoyaltyRefund, rejectionOf } from '../loyalty/service.ts';
import { currencyExponent, formatAmount, type Minor, parseAmount } from '../money.ts';
import type { Payment, PaymentProblem, Payments } from '../payments/service.ts';
import { PERIODS, type Period, periodOf } from './periods.ts';
import {
  addRefunded,
  type ChargeStatus,
  chargedIn,
  findCharge,
  findChargeByKey,
  findChargeByPayment,
  findMandate,
  findMandates,
  findRefundByKey,
  finishCharge,
  finishRefund,
  insertCharge,
  insertMandate,
  insertRefund,
  listCharges,
  lockCharge,
  lockMandate,
  refundsOf,
  type StoredCharge,
  type StoredMandate,
  type StoredRefund,
  stalePendingCharges,
  stalePendingRefunds,
} from './store.ts';

export const MANDATES_PAGE_MAX = 50;
export const CHARGES_PAGE_MAX = 100;
/** Partial refunds are few in practice; the bound keeps a charge's view (with its refunds) one small read. */
export const REFUNDS_PER_CHARGE_MAX = 20;
// A charge or refund still pending this long after it was recorded lost its process before its outcome was
// written; the recovery sweep finishes it (the payment's own sweep runs after 30 s).
const RECOVER_AFTER_MS = 60_000;
const RECOVERY_BATCH_MAX = 100;

export interface MandateTerms {
  readonly currency: string;
  /** Decimal strings with the currency's decimals, as JSON carries them. */
  readonly maxPerCharge: string;
  readonly periodicLimits: readonly { readonly period: Period; readonly maxAmount: string }[];
  readonly creditor: { readonly name: string; readonly iban: string };
  readonly expiresAt: Date;
}

/** Terms `Mandates.check` accepted, in minor units, with the creditor's account found: what `record` writes. */
export interface CheckedTerms {
  readonly terms: MandateTerms;
  readonly maxPerCharge: Minor;
  readonly periodicLimits: readonly { readonly period: Period; readonly max: Minor }[];
  readonly creditorIban: string;
  readonly creditorAccountId: string;
}

export interface Mandate {
  readonly id: string;
  readonly clientId: string;
  /** Set when the customer authorised (or rejected) it. */
  readonly customerId: string | null;
  /** Its consent's: a mandate is never `consumed`, it is charged until it ends. */
  readonly status: Exclude<ConsentStatus, 'consumed'>;
  readonly currency: string;
  readonly maxPerCharge: Minor;
  readonly periodicLimits: readonly { readonly period: Period; readonly max: Minor }[];
  readonly creditor: { readonly name: string; readonly iban: string };
  /** The account the customer chose to be charged; null until authorised. */
  readonly debtorAccountId: string | null;
  readonly expiresAt: Date;
  readonly createdAt: Date;
  readonly statusUpdatedAt: Date;
}

/** Where a mandate stands in each of its periods now. */
export interface PeriodUsage {
  readonly period: Period;
  readonly start: Date;
  readonly end: Date;
  readonly charged: Minor;
}

export type Charge = StoredCharge;
export type Refund = StoredRefund;

export type MandateProblem =
  | PaymentProblem
  | 'validation_failed'
  | 'unsupported_currency'
  | 'invalid_expiry'
  | 'creditor_not_at_this_bank'
  | 'mandate_not_active'
  | 'mandate_limit_exceeded'
  | 'charge_not_refundable'
  | 'refund_exceeds_charge'
  | 'refund_limit_reached';

export interface Refusal {
  readonly ok: false;
  readonly code: MandateProblem;
  readonly detail?: string | undefined;
  /** For validation_failed: the JSON Pointer of the offending field. */
  readonly field?: string;
  /** For mandate_limit_exceeded: which limit (`charge`, `day`, `week`, `month`). */
  readonly limit?: 'charge' | Period;
}

/** What a caller of `charge` adds beyond the charge itself: a standard's facade keeps its own wording of it. */
export interface ChargeCaller {
  /** The rest of the caller's request (a standard's whole body): a replay under the same key must repeat it. */
  readonly fingerprint?: unknown;
  /** The caller's own record of the charge, written in the charge's transaction: both commit, or neither. */
  readonly record?: ((tx: Sql, charge: Charge) => Promise<void>) | undefined;
}

/** Who reads: the merchant app that owns the mandate, or the customer who authorised it. */
export type Reader = { readonly clientId: string } | { readonly customerId: string };

/** Thrown inside the payment's recording transaction to roll it back: the charge is refused. */
class ChargeRefused extends Error {
  readonly refusal: Refusal;
  constructor(refusal: Refusal) {
    super(refusal.code);
    this.refusal = refusal;
  }
}

const refuse = (code: MandateProblem, detail?: string, more: Partial<Refusal> = {}): Refusal => ({
  ok: false,
  code,
  ...(detail === undefined ? {} : { detail }),
  ...more,
});

/** The payment's outcome as the charge's: settled money succeeded, a rejection failed, anything else waits. */
function chargeOutcomeOf(payment: Payment): 'succeeded' | 'failed' | undefined {
  if (payment.status === 'rejected') return 'failed';
  return payment.status === 'settled' || payment.status === 'accepted' ? 'succeeded' : undefined;
}

export class Mandates {
  readonly #db: Db;
  readonly #consents: Consents;
  readonly #payments: Payments;
  readonly #accounts: Accounts;
  readonly #ledger: Ledger;
  readonly #loyalty: Loyalty | undefined;
  readonly #now: () => Date;

  constructor(options: {
    db: Db;
    consents: Consents;
    payments: Payments;
    accounts: Accounts;
    ledger: Ledger;
    /** The one payments use: without it, charges take no points and refunds return money only. */
    loyalty?: Loyalty;
    now?: () => Date;
  }) {
    this.#db = options.db;
    this.#consents = options.consents;
    this.#payments = options.payments;
    this.#accounts = options.accounts;
    this.#ledger = options.ledger;
    this.#loyalty = options.loyalty;
    this.#now = options.now ?? (() => new Date());
  }

  // ---- mandates --------------------------------------------------------------------------------------------

  /**
   * The app proposes a mandate; the customer authorises it at the consent page (RFC 9396 authorization_details
   * `{ type: "mandate", consentId }`), choosing the account to charge. Its consent and terms commit together.
   */
  async create(clientId: string, terms: MandateTerms): Promise<{ ok: true; mandate: Mandate } | Refusal> {
    const checked = await this.check(terms);
    if (!checked.ok) return checked;
    return this.#db.transaction((tx) => this.record(tx, clientId, checked.terms));
  }

  /**
   * `create` in two steps, for a caller that records the mandate in a transaction of its own (a standard's
   * facade, with its idempotency key): the terms checked first, outside it, since the check reads accounts.
   */
  async check(terms: MandateTerms): Promise<{ ok: true; terms: CheckedTerms } | Refusal> {
    const checked = await this.#checkTerms(terms);
    return checked.ok ? { ok: true, terms: { ...checked, terms } } : checked;
  }

  /**
   * Writes checked terms as a mandate, its consent and terms together in `tx`. `extraDetails` are kept on the
   * consent beside the bank's own (a standard's wording of the same terms, echoed to the app); they never
   * replace them.
   */
  async record(
    tx: Sql,
    clientId: string,
    checked: CheckedTerms,
    extraDetails: Readonly<Record<string, unknown>> = {},
  ): Promise<{ ok: true; mandate: Mandate } | Refusal> {
    const { terms, maxPerCharge, periodicLimits, creditorIban, creditorAccountId } = checked;
    const now = this.#now();
    const exponent = currencyExponent(terms.currency) ?? 2;
    // What the customer is shown and the app reads back (GET /v1/consents/{id}); the typed copy is the row.
    const details = {
      ...extraDetails,
      currency: terms.currency,
      maxPerCharge: formatAmount(maxPerCharge, exponent),
      periodicLimits: periodicLimits.map(({ period, max }) => ({
        period,
        maxAmount: formatAmount(max, exponent),
      })),
      creditor: { name: terms.creditor.name, iban: creditorIban },
    };
    const created = await this.#consents.create(
      clientId,
      { type: 'mandate', details, expiresAt: terms.expiresAt },
      tx,
    );
    if (!created.ok) return refuse(created.code);
    const stored: StoredMandate = {
      id: created.consent.id,
      clientId,
      currency: terms.currency,
      maxPerCharge,
      periodicLimits,
      creditorIban,
      creditorAccountId,
      createdAt: now,
    };
    await insertMandate(tx, stored);
    return { ok: true, mandate: mandateView(stored, created.consent) };
  }

  async #checkTerms(terms: MandateTerms): Promise<
    | {
        ok: true;
        maxPerCharge: Minor;
        periodicLimits: { period: Period; max: Minor }[];
        creditorIban: string;
        creditorAccountId: string;
      }
    | Refusal
  > {
    const exponent = currencyExponent(terms.currency);
    if (exponent === undefined) {
      return refuse('unsupported_currency', `${terms.currency} is not an active ISO 4217 currency`);
    }
    const amount = (text: string, field: string): Minor | Refusal => {
      const parsed = parseAmount(text);
      if (!parsed) return refuse('validation_failed', `${field} must be greater than zero`, { field });
      if (parsed.scale !== exponent) {
        return refuse('amount_scale_mismatch', `${terms.currency} amounts have ${exponent} decimals`);
      }
      return parsed.minor;
    };
    const maxPerCharge = amount(terms.maxPerCharge, '/body/maxPerCharge');
    if (typeof maxPerCharge !== 'bigint') return maxPerCharge;
    const periodicLimits: { period: Period; max: Minor }[] = [];
    for (const [index, limit] of terms.periodicLimits.entries()) {
      const field = `/body/periodicLimits/${index}`;
      const max = amount(limit.maxAmount, `${field}/maxAmount`);
      if (typeof max !== 'bigint') return max;
      if (periodicLimits.some((known) => known.period === limit.period)) {
        return refuse('validation_failed', `${field}/period: one limit per period`, {
          field: `${field}/period`,
        });
      }
      // A charge bigger than a whole period's allowance could never be taken: the terms would mislead.
      if (maxPerCharge > max) {
        return refuse(
          'validation_failed',
          `/body/maxPerCharge must not exceed the ${limit.period}'s maximum`,
          {
            field: '/body/maxPerCharge',
          },
        );
      }
      periodicLimits.push({ period: limit.period, max });
    }
    if (periodicLimits.length === 0) {
      return refuse('validation_failed', '/body/periodicLimits needs at least one limit', {
        field: '/body/periodicLimits',
      });
    }
    periodicLimits.sort((a, b) => PERIODS.indexOf(a.period) - PERIODS.indexOf(b.period));
    const creditorIban = normaliseIban(terms.creditor.iban);
    if (!isValidIBAN(creditorIban)) return refuse('invalid_creditor_iban');
    // Refunds are paid back out of the creditor's account, so it must be one this bank holds and can debit.
    const creditor = await this.#accounts.findByIban(creditorIban);
    if (creditor?.status !== 'active' || creditor.currency !== terms.currency) {
      return refuse(
        'creditor_not_at_this_bank',
        `the creditor must be an active ${terms.currency} account at this bank`,
      );
    }
    return { ok: true, maxPerCharge, periodicLimits, creditorIban, creditorAccountId: creditor.id };
  }

  /** The mandate, if `reader` may see it: the app that owns it, or the customer who authorised it. */
  async get(reader: Reader, id: string): Promise<Mandate | undefined> {
    const found = await this.#find(reader, id);
    return found && mandateView(found.mandate, found.consent);
  }

  async #find(reader: Reader, id: string): Promise<{ mandate: StoredMandate; consent: Consent } | undefined> {
    const mandate = await findMandate(this.#db, id);
    if (!mandate) return undefined;
    if ('clientId' in reader && mandate.clientId !== reader.clientId) return undefined;
    const consent = await this.#consents.find(id);
    if (!consent) throw new Error(`mandate ${id} has no consent`);
    if ('customerId' in reader && consent.customerId !== reader.customerId) return undefined;
    return { mandate, consent };
  }

  /** The customer's mandates in creation order, after `afterId`. */
  async listForCustomer(customerId: string, afterId: string | undefined, limit: number): Promise<Mandate[]> {
    const consents = await this.#consents.listForCustomer(
      customerId,
      afterId,
      Math.min(limit, MANDATES_PAGE_MAX + 1),
      'mandate',
    );
    const mandates = new Map(
      (
        await findMandates(
          this.#db,
          consents.map((consent) => consent.id),
        )
      ).map((mandate) => [mandate.id, mandate]),
    );
    return consents.map((consent) => {
      const mandate = mandates.get(consent.id);
      if (!mandate) throw new Error(`mandate consent ${consent.id} has no terms`);
      return mandateView(mandate, consent);
    });
  }

  /** How much the mandate charged in each of its current periods (pending charges included). */
  async usage(mandate: Mandate): Promise<PeriodUsage[]> {
    const now = this.#now();
    const windows = mandate.periodicLimits.map(({ period }) => ({ period, ...periodOf(period, now) }));
    const charged = await chargedIn(this.#db, mandate.id, windows);
    return windows.map((window) => ({ ...window, charged: (charged.get(window.period) ?? 0n) as Minor }));
  }

  /**
   * The customer revokes a mandate: its consent is revoked, so the next charge is refused and every token
   * under it stops. A charge already under way finishes first (they share the consent's row lock).
   */
  async revoke(customerId: string, id: string): Promise<'revoked' | 'not_found' | 'not_active'> {
    const consent = await this.#consents.getForCustomer(customerId, id);
    if (consent?.type !== 'mandate') return 'not_found';
    if (consent.status === 'revoked') return 'revoked';
    return (await this.#consents.revoke(consent)) ? 'revoked' : 'not_active';
  }

  // ---- charges ---------------------------------------------------------------------------------------------

  async charge(
    clientId: string,
    mandateId: string,
    key: string,
    request: {
      readonly instructedAmount: { readonly amount: string; readonly currency: string };
      readonly reference?: string | undefined;
      /** Loyalty points paying part of the amount: whole points, as digits. */
      readonly points?: string | undefined;
    },
    caller: ChargeCaller = {},
  ): Promise<{ ok: true; charge: Charge; replayed: boolean } | Refusal> {
    const found = await this.#find({ clientId }, mandateId);
    if (!found) return refuse('not_found', 'no mandate with this id');
    const { mandate, consent } = found;
    const hash = requestHash(caller.fingerprint === undefined ? request : [request, caller.fingerprint]);
    const existing = await findChargeByKey(this.#db, mandateId, key);
    if (existing) return this.#replayCharge(existing, hash);

    const { amount: text, currency } = request.instructedAmount;
    if (currency !== mandate.currency) {
      return refuse('consent_mismatch', `the mandate charges in ${mandate.currency}`);
    }
    const amount = parseAmount(text);
    if (!amount) {
      return refuse('validation_failed', '/body/instructedAmount/amount must be greater than zero', {
        field: '/body/instructedAmount/amount',
      });
    }
    const exponent = currencyExponent(currency) ?? 2;
    if (amount.scale !== exponent) {
      return refuse('amount_scale_mismatch', `${currency} amounts have ${exponent} decimals`);
    }
    if (amount.minor > mandate.maxPerCharge) {
      return refuse(
        'mandate_limit_exceeded',
        `at most ${formatAmount(mandate.maxPerCharge, exponent)} ${currency} a charge`,
        { limit: 'charge' },
      );
    }
    const debtorAccountId = consent.accountIds?.[0];
    if (consent.status !== 'authorised' || !consent.customerId || !debtorAccountId) {
      return refuse('mandate_not_active', `the mandate is ${consent.status}`);
    }
    const customerId = consent.customerId;
    const creditorName = String((consent.details as { creditor?: { name?: string } }).creditor?.name);
    // Points, if offered, are split and moved by the payment (its refusals, such as insufficient_points, are
    // the charge's); the limits below (#reserve) count the whole amount.
    try {
      const outcome = await this.#payments.initiate(
        {
          kind: 'mandate',
          mandateId,
          clientId,
          customerId,
          reserve: (tx, paymentId) =>
            this.#reserve(tx, mandate, {
              paymentId,
              customerId,
              debtorAccountId,
              key,
              hash,
              amount: amount.minor,
              reference: request.reference ?? null,
              record: caller.record,
            }),
        },
        key,
        {
          instructedAmount: { amount: text, currency },
          creditor: { name: creditorName, iban: mandate.creditorIban },
          reference: request.reference,
          debtorAccountId,
          ...(request.points !== undefined && { points: request.points }),
        },
      );
      if (!outcome.ok) return refuse(outcome.code, outcome.detail);
      const charge = await findChargeByPayment(this.#db, outcome.payment.id);
      if (!charge) throw new Error(`payment ${outcome.payment.id} has no charge`);
      return { ok: true, charge: await this.#settle(charge, outcome.payment), replayed: outcome.replayed };
    } catch (error) {
      if (error instanceof ChargeRefused) return error.refusal;
      throw error;
    }
  }

  /**
   * Inside the payment's recording transaction: the mandate locked, its consent still authorised (share-locked
   * against a racing revocation), the charge recorded, and each period's charges with it within its limit.
   * Throws ChargeRefused to roll the payment back; false when a twin request recorded its charge under the
   * same key first.
   */
  async #reserve(
    tx: Sql,
    mandate: StoredMandate,
    charge: {
      paymentId: string;
      customerId: string;
      debtorAccountId: string;
      key: string;
      hash: string;
      amount: Minor;
      reference: string | null;
      record: ChargeCaller['record'];
    },
  ): Promise<boolean> {
    if (!(await lockMandate(tx, mandate.id))) throw new Error(`mandate ${mandate.id} vanished`);
    const consent = await this.#consents.lockAuthorised(mandate.id, tx);
    if (!consent)
      throw new ChargeRefused(refuse('mandate_not_active', 'the mandate is no longer authorised'));
    if (consent.accountIds?.[0] !== charge.debtorAccountId || consent.customerId !== charge.customerId) {
      throw new Error(`mandate ${mandate.id} changed its account or customer`);
    }
    const now = this.#now();
    const stored: StoredCharge = {
      id: uuidv7(),
      mandateId: mandate.id,
      clientId: mandate.clientId,
      customerId: charge.customerId,
      paymentId: charge.paymentId,
      debtorAccountId: charge.debtorAccountId,
      idempotencyKey: charge.key,
      requestHash: charge.hash,
      currency: mandate.currency,
      amount: charge.amount,
      refunded: 0n,
      reference: charge.reference,
      status: 'pending',
      failureCode: null,
      createdAt: now,
      updatedAt: now,
    };
    // Recorded before the limits are counted: a twin that got here first is answered as itself, even when
    // its charge took what was left.
    if (!(await insertCharge(tx, stored))) return false;
    const exponent = currencyExponent(mandate.currency) ?? 2;
    const windows = mandate.periodicLimits.map((limit) => ({ ...limit, ...periodOf(limit.period, now) }));
    const charged = await chargedIn(tx, mandate.id, windows);
    for (const window of windows) {
      const before = (charged.get(window.period) ?? 0n) - charge.amount; // this charge is counted in
      if (before + charge.amount > window.max) {
        throw new ChargeRefused(
          refuse(
            'mandate_limit_exceeded',
            `${formatAmount(window.max - before, exponent)} ${mandate.currency} left this ${window.period} (UTC)`,
            { limit: window.period },
          ),
        );
      }
    }
    await charge.record?.(tx, stored);
    await emit(tx, now, chargeEvent(stored, 'created'));
    return true;
  }

  async #replayCharge(
    existing: StoredCharge,
    hash: string,
  ): Promise<{ ok: true; charge: Charge; replayed: boolean } | Refusal> {
    if (existing.requestHash !== hash) return refuse('idempotency_key_reused');
    if (existing.status !== 'pending') return { ok: true, charge: existing, replayed: true };
    const payment = await this.#payments.get({ clientId: existing.clientId }, existing.paymentId);
    if (!payment) throw new Error(`charge ${existing.id} names a missing payment`);
    return { ok: true, charge: await this.#settle(existing, payment), replayed: true };
  }

  /** Records the payment's outcome on a pending charge (once, whoever gets there first), with its event. */
  async #settle(charge: StoredCharge, payment: Payment): Promise<StoredCharge> {
    const outcome = chargeOutcomeOf(payment);
    if (charge.status !== 'pending' || !outcome) return charge;
    const now = this.#now();
    const code = outcome === 'failed' ? (payment.rejectionCode ?? 'payment_rejected') : null;
    return this.#db.transaction(async (tx) => {
      const finished = await finishCharge(tx, charge.id, outcome, code, now);
      if (!finished) return (await findCharge(tx, charge.mandateId, charge.id)) ?? charge;
      await emit(tx, now, chargeEvent(finished, outcome));
      return finished;
    });
  }

  /** A mandate's charges, newest first, if `reader` may see the mandate. */
  async charges(
    reader: Reader,
    mandateId: string,
    beforeId: string | undefined,
    limit: number,
  ): Promise<Charge[] | undefined> {
    if (!(await this.#find(reader, mandateId))) return undefined;
    return listCharges(this.#db, mandateId, beforeId, Math.min(limit, CHARGES_PAGE_MAX + 1));
  }

  /** One charge with its refunds. */
  async chargeWithRefunds(
    reader: Reader,
    mandateId: string,
    chargeId: string,
  ): Promise<{ charge: Charge; refunds: Refund[] } | undefined> {
    if (!(await this.#find(reader, mandateId))) return undefined;
    const charge = await findCharge(this.#db, mandateId, chargeId);
    if (!charge) return undefined;
    return { charge, refunds: await refundsOf(this.#db, charge.id, REFUNDS_PER_CHARGE_MAX) };
  }

  // ---- refunds ---------------------------------------------------------------------------------------------

  /**
   * The merchant pays back part or all of a charge, from its account into the customer's. Decided under the
   * charge's row lock, so refunds together never exceed the charge; the money then moves once, under a ledger
   * key derived from the refund's id, however often this runs. A refund of a revoked mandate's charge is fine.
   */
  async refund(
    clientId: string,
    mandateId: string,
    chargeId: string,
    key: string,
    request: { readonly instructedAmount: { readonly amount: string; readonly currency: string } },
  ): Promise<{ ok: true; refund: Refund; replayed: boolean } | Refusal> {
    const found = await this.#find({ clientId }, mandateId);
    const charge = found && (await findCharge(this.#db, mandateId, chargeId));
    if (!charge) return refuse('not_found', 'no charge with this id under this mandate');
    const { amount: text, currency } = request.instructedAmount;
    if (currency !== charge.currency) {
      return refuse('validation_failed', `/body/instructedAmount/currency must be ${charge.currency}`, {
        field: '/body/instructedAmount/currency',
      });
    }
    const amount = parseAmount(text);
    if (!amount) {
      return refuse('validation_failed', '/body/instructedAmount/amount must be greater than zero', {
        field: '/body/instructedAmount/amount',
      });
    }
    const exponent = currencyExponent(currency) ?? 2;
    if (amount.scale !== exponent) {
      return refuse('amount_scale_mismatch', `${currency} amounts have ${exponent} decimals`);
    }
    const hash = requestHash(request);
    const now = this.#now();
    const decided = await this.#db.transaction(
      async (tx): Promise<{ refund: StoredRefund; replayed: boolean } | Refusal> => {
        const locked = await lockCharge(tx, charge.id);
        if (!locked) throw new Error(`charge ${charge.id} vanished`);
        const twin = await findRefundByKey(tx, charge.id, key);
        if (twin)
          return twin.requestHash === hash
            ? { refund: twin, replayed: true }
            : refuse('idempotency_key_reused');
        if (locked.status !== 'succeeded') {
          return refuse('charge_not_refundable', `the charge is ${locked.status}`);
        }
        if ((await refundsOf(tx, charge.id, REFUNDS_PER_CHARGE_MAX)).length >= REFUNDS_PER_CHARGE_MAX) {
          return refuse('refund_limit_reached', `a charge takes at most ${REFUNDS_PER_CHARGE_MAX} refunds`);
        }
        const refundable = locked.amount - locked.refunded;
        if (amount.minor > refundable) {
          return refuse(
            'refund_exceeds_charge',
            `${formatAmount(refundable, exponent)} ${currency} of the charge can still be refunded`,
          );
        }
        const refund: StoredRefund = {
          id: uuidv7(),
          chargeId: charge.id,
          mandateId,
          clientId,
          customerId: charge.customerId,
          idempotencyKey: key,
          requestHash: hash,
          amount: amount.minor,
          status: 'pending',
          failureCode: null,
          createdAt: now,
          updatedAt: now,
        };
        await insertRefund(tx, refund);
        await addRefunded(tx, charge.id, amount.minor, now);
        await emit(tx, now, refundEvent(refund, 'created'));
        return { refund, replayed: false };
      },
    );
    if ('ok' in decided) return decided;
    const refund =
      decided.refund.status === 'pending' ? await this.#payRefund(decided.refund) : decided.refund;
    return { ok: true, refund, replayed: decided.replayed };
  }

  /**
   * Moves a pending refund's money (once, whatever the retries) and records the outcome. A charge paid partly
   * in points gets both parts back in proportion, in the same transfer: the loyalty split is planned first
   * under the refund's id (a retry or the sweep finds the same plan, so rebuilds the same transfer) and its
   * outcome recorded with the refund's.
   */
  async #payRefund(refund: StoredRefund): Promise<StoredRefund> {
    const mandate = await findMandate(this.#db, refund.mandateId);
    const charge = await findCharge(this.#db, refund.mandateId, refund.chargeId);
    if (!mandate || !charge) throw new Error(`refund ${refund.id} names a missing mandate or charge`);
    const [creditor, debtor] = await Promise.all([
      this.#accounts.find(mandate.creditorAccountId),
      this.#accounts.find(charge.debtorAccountId),
    ]);
    const loyalty = this.#loyalty;
    // Undefined for a charge that moved no points: it is refunded in money only.
    const points: LoyaltyRefund | undefined = await loyalty?.planRefund({
      refundId: refund.id,
      debitId: charge.paymentId,
      amount: refund.amount as Minor,
    });
    let failure: string | null = null;
    if (creditor?.status !== 'active') failure = 'creditor_account_not_active';
    else if (debtor?.status !== 'active') failure = 'debtor_account_not_active';
    else {
      const split =
        points &&
        (await loyalty?.refundTransfer(points, {
          sourceLedgerAccountId: creditor.ledgerAccountId,
          debtorLedgerAccountId: debtor.ledgerAccountId,
        }));
      const outcome = await this.#ledger.transfer(`mandate-refund:${refund.id}`, {
        postings: split?.postings ?? [
          {
            debitAccountId: creditor.ledgerAccountId,
            creditAccountId: debtor.ledgerAccountId,
            amount: { minor: refund.amount as Minor, scale: currencyExponent(charge.currency) ?? 2 },
          },
        ],
        pending: false,
        expiresAt: null,
        metadata: {
          mandateId: refund.mandateId,
          chargeId: refund.chargeId,
          refundId: refund.id,
          paymentId: charge.paymentId,
          reference: charge.reference ? `Refund: ${charge.reference}` : 'Refund',
          category: 'refund',
          ...split?.metadata,
        },
      });
      if (!outcome.ok) {
        // A twin (a replay, the recovery sweep) is moving this refund's money right now: the outcome is its to
        // record. Recording a failure here would release an amount that is being paid.
        if (outcome.code === 'idempotency_key_in_flight') return refund;
        failure = rejectionOf(split, outcome);
      }
    }
    const now = this.#now();
    return this.#db.transaction(async (tx) => {
      const finished = await finishRefund(tx, refund.id, failure ? 'failed' : 'succeeded', failure, now);
      if (!finished) return (await findRefundByKey(tx, refund.chargeId, refund.idempotencyKey)) ?? refund;
      // A refund that did not happen gives its amount back to what may still be refunded, points' share too.
      if (failure) await addRefunded(tx, refund.chargeId, -refund.amount, now);
      if (points && loyalty) await loyalty.settleRefund(tx, points, failure === null);
      await emit(tx, now, refundEvent(finished, finished.status));
      return finished;
    });
  }

  // ---- recovery --------------------------------------------------------------------------------------------

  /** Finishes charges and refunds whose process died between recording them and recording their outcome. */
  async recover(): Promise<{ charges: number; refunds: number }> {
    const before = new Date(this.#now().getTime() - RECOVER_AFTER_MS);
    let charges = 0;
    for (const charge of await stalePendingCharges(this.#db, before, RECOVERY_BATCH_MAX)) {
      const payment = await this.#payments.get({ clientId: charge.clientId }, charge.paymentId);
      if (!payment) throw new Error(`charge ${charge.id} names a missing payment`);
      if ((await this.#settle(charge, payment)).status !== 'pending') charges++;
    }
    let refunds = 0;
    for (const refund of await stalePendingRefunds(this.#db, before, RECOVERY_BATCH_MAX)) {
      if ((await this.#payRefund(refund)).status !== 'pending') refunds++;
    }
    return { charges, refunds };
  }
}

function mandateView(mandate: StoredMandate, consent: Consent): Mandate {
  const creditor = (consent.details as { creditor?: { name?: string } }).creditor;
  const status = consent.status;
  if (status === 'consumed') throw new Error(`mandate ${mandate.id} was consumed like a single payment`);
  return {
    id: mandate.id,
    clientId: mandate.clientId,
    customerId: consent.customerId,
    status,
    currency: mandate.currency,
    maxPerCharge: mandate.maxPerCharge as Minor,
    periodicLimits: mandate.periodicLimits.map(({ period, max }) => ({ period, max: max as Minor })),
    creditor: { name: String(creditor?.name), iban: mandate.creditorIban },
    debtorAccountId: consent.accountIds?.[0] ?? null,
    expiresAt: consent.expiresAt,
    createdAt: mandate.createdAt,
    statusUpdatedAt: consent.statusUpdatedAt,
  };
}

/** Ids, status and codes only, as every event: webhooks deliver them as they are. */
function chargeEvent(charge: StoredCharge, what: 'created' | ChargeStatus) {
  return {
    type: `mandate.charge.${what}`,
    subjectId: charge.id,
    payload: {
      mandateId: charge.mandateId,
      chargeId: charge.id,
      paymentId: charge.paymentId,
      clientId: charge.clientId,
      customerId: charge.customerId,
      status: charge.status,
      ...(charge.failureCode === null ? {} : { code: charge.failureCode }),
    },
  };
}

function refundEvent(refund: StoredRefund, what: string) {
  return {
    type: `mandate.refund.${what}`,
    subjectId: refund.id,
    payload: {
      mandateId: refund.mandateId,
      chargeId: refund.chargeId,
      refundId: refund.id,
      clientId: refund.clientId,
      customerId: refund.customerId,
      status: refund.status,
      ...(refund.failureCode === null ? {} : { code: refund.failureCode }),
    },
  };
}
