// Payments out of a customer's account. A payment is recorded (`received`) in the same transaction that
// consumes its consent; the money then moves through the ledger under a key derived from the payment's id,
// so however often that step runs (a retry, the recovery sweep after a crash) it moves the money once.
//
//   internal:  debtor -> creditor's account at this bank                 received -> settled
//   domestic:  debtor -> clearing, then in a settlement cycle             received -> accepted -> settled
//              clearing -> settlement; a return restores the debtor       ... -> returned
//   refused by the ledger (insufficient funds) or by the accounts' state:  received -> rejected (with a code)
//   cross_border (another bank, another currency, at an FX quote): debtor -> FX positions -> clearing, with
//              a pacs.008; settled clearing -> nostro; a return restores what the debtor paid (src/fx/)
import { isValidIBAN } from 'ibantools';
import { v7 as uuidv7 } from 'uuid';
import { normaliseIban } from '../accounts/iban.ts';
import type { Accounts } from '../accounts/service.ts';
import type { BankAccount } from '../accounts/store.ts';
import type { Consents } from '../consents/service.ts';
import type { Consent } from '../consents/store.ts';
import type { Db, Sql } from '../db/db.ts';
import { GroupCommit, GroupRead, type Jointly } from '../db/group-commit.ts';
import { emit } from '../events/outbox.ts';
import type { ScreeningInput } from '../fraud/rules.ts';
import type { FraudScreening } from '../fraud/service.ts';
import { type Fx, QuoteNoLongerOpen, type QuoteOwner } from '../fx/service.ts';
import type { StoredQuote } from '../fx/store.ts';
import { requestHash } from '../idempotency.ts';
import type { BankLedgerAccounts } from '../ledger/bank-accounts.ts';
import type { TransferRequest } from '../ledger/model.ts';
import type { Ledger } from '../ledger/service.ts';
import {
  type Loyalty,
  type LoyaltyDebit,
  type LoyaltyProblem,
  type LoyaltyTransfer,
  type Points,
  rejectionOf,
} from '../loyalty/service.ts';
import { currencyExponent, type Minor, type ParsedAmount, parseAmount } from '../money.ts';
import { fieldContext, type Pii } from '../pii/pii.ts';
import {
  claimForSettlement,
  findPayment,
  findPaymentByKey,
  insertPayments,
  listPayees,
  listPayments,
  type PaymentStatus,
  type PaymentType,
  type StatusChange,
  type StoredPayment,
  statusChange,
  transitionPayment,
} from './store.ts';

export const SETTLEMENT_BATCH_MAX = 1000;
export const PAYEES_PAGE_MAX = 200;
// A payment still `received` this long after it was recorded lost its process between the two steps.
export const RECOVER_AFTER_MS = 30_000;
// A settlement or return claim this old belonged to a process that died before finishing it.
const STALE_CLAIM_MS = 5 * 60_000;
// How long a held payment waits for the customer's confirmation.
export const SCA_WINDOW_MS = 10 * 60_000;

export interface PaymentInstruction {
  readonly instructedAmount: { readonly amount: string; readonly currency: string };
  readonly creditor: { readonly name: string; readonly iban: string };
  readonly reference?: string | undefined;
  readonly debtorAccountId?: string | undefined;
  /** An FX quote, for a payment in another currency than the debtor account's (src/fx/). */
  readonly quoteId?: string | undefined;
  /** Loyalty points paying part of the amount (src/loyalty/): whole points, as digits. */
  readonly points?: string | undefined;
  /** ISO 18245 merchant category, declared by the merchant's app: what points the payment earns. */
  readonly merchantCategory?: string | undefined;
}

/** Who pays: an app under the customer's payment consent, or the customer at the bank's pages. */
export type Initiator =
  | {
      readonly kind: 'app';
      readonly clientId: string;
      readonly customerId: string;
      readonly consent: Consent;
    }
  | { readonly kind: 'customer'; readonly customerId: string }
  // A scheduled payment or standing order on one of its dates, authorised when it was set up.
  | {
      readonly kind: 'order';
      readonly orderId: string;
      readonly clientId: string | null;
      readonly customerId: string;
    }
  // A charge under a mandate (src/mandates/), authorised when the customer approved the mandate. `reserve`
  // runs inside the transaction that records the payment, so the mandate's limits are checked and the charge
  // recorded atomically with it; it throws to refuse, and then nothing is recorded. It answers false when a
  // twin request under the same key recorded its charge first: the payment answers as the twin's replay.
  | {
      readonly kind: 'mandate';
      readonly mandateId: string;
      readonly clientId: string;
      readonly customerId: string;
      readonly reserve: (tx: Sql, paymentId: string) => Promise<boolean>;
    };

export interface Payment {
  readonly id: string;
  readonly clientId: string | null;
  readonly customerId: string;
  readonly consentId: string | null;
  readonly debtorAccountId: string;
  readonly type: PaymentType;
  readonly creditor: { readonly name: string; readonly iban: string };
  readonly currency: string;
  readonly amount: Minor;
  readonly reference: string | null;
  readonly status: PaymentStatus;
  readonly rejectionCode: string | null;
  readonly statusHistory: readonly StatusChange[];
  readonly createdAt: Date;
  /** The FX quote of a payment in another currency: what it debits, credits and charges. */
  readonly quote: StoredQuote | null;
  /** Its loyalty points, when it spent or earned any: the part paid in points, and the points earned. */
  readonly points?: LoyaltyDebit | undefined;
}

/** Someone the customer paid from one of their accounts (see payees()). */
export interface Payee {
  /** The first payment to this payee from this account: a stable id for the pair. */
  readonly id: string;
  readonly debtorAccountId: string;
  readonly creditor: { readonly name: string; readonly iban: string };
  readonly reference: string | null;
  readonly lastPaidAt: Date;
}

export type PaymentProblem =
  | 'not_found'
  | 'consent_mismatch'
  | 'consent_not_active'
  | 'currency_mismatch'
  | 'amount_scale_mismatch'
  | 'invalid_creditor_iban'
  | 'same_account'
  | 'idempotency_key_reused'
  | 'quote_mismatch'
  | 'quote_expired'
  | 'quote_already_used'
  | LoyaltyProblem;

export type InitiateOutcome =
  | { ok: true; payment: Payment; replayed: boolean }
  | { ok: false; code: PaymentProblem; detail?: string };

/** Dynamic linking (PSD2 RTS Art. 5): the payment must be exactly the one the customer authorised. */
function mismatchWithConsent(
  consent: Consent,
  instruction: PaymentInstruction,
  amount: ParsedAmount,
): string | undefined {
  const authorised = consent.details as {
    instructedAmount?: { amount?: string; currency?: string };
    creditor?: { name?: string; iban?: string };
    reference?: string;
  };
  const authorisedAmount = parseAmount(String(authorised.instructedAmount?.amount));
  if (consent.type !== 'payment_initiation') return 'the token carries no payment consent';
  if (authorised.instructedAmount?.currency !== instruction.instructedAmount.currency) return 'currency';
  if (authorisedAmount?.minor !== amount.minor || authorisedAmount.scale !== amount.scale) return 'amount';
  if (normaliseIban(String(authorised.creditor?.iban)) !== normaliseIban(instruction.creditor.iban))
    return 'creditor IBAN';
  if (authorised.creditor?.name !== instruction.creditor.name) return 'creditor name';
  if ((authorised.reference ?? null) !== (instruction.reference ?? null)) return 'reference';
  return undefined;
}

/**
 * What a fraud verdict means for the payment. `block` refuses it. `step_up` asks for strong customer
 * authentication bound to this payment: an app's payment already had it (the customer authorised this exact
 * payment at the consent page, PSD2 RTS Art. 5), and so did an order or a mandate when it was set up (the
 * customer is not there to ask when a mandate's charge comes); a payment made in a
 * signed-in session waits (`awaiting_sca`) until the customer confirms it with a one-time code.
 */
function decisionOf(verdict: 'allow' | 'step_up' | 'block', initiator: Initiator): 'go' | 'block' | 'hold' {
  if (verdict === 'block') return 'block';
  return verdict === 'step_up' && initiator.kind === 'customer' ? 'hold' : 'go';
}

/** Whose Idempotency-Keys these are. An app's keys are its own per customer: the same key and body for
 * another customer is another payment. */
export function idempotencyScopeOf(initiator: Initiator): string {
  if (initiator.kind === 'app') return `app:${initiator.clientId}:${initiator.customerId}`;
  if (initiator.kind === 'mandate') return `mandate:${initiator.mandateId}`;
  return initiator.kind === 'order' ? `order:${initiator.orderId}` : `customer:${initiator.customerId}`;
}

/** Whose FX quotes a payment may use: those its app or customer asked for; orders and mandates use none. */
function quoteOwnerOf(initiator: Initiator): QuoteOwner | undefined {
  if (initiator.kind === 'app') {
    return { kind: 'app', clientId: initiator.clientId, customerId: initiator.customerId };
  }
  return initiator.kind === 'customer' ? { kind: 'customer', customerId: initiator.customerId } : undefined;
}

/** Thrown inside a recording transaction to roll it back when the consent was revoked meanwhile. */
export class ConsentNoLongerActive extends Error {}

/** How a payment's money moves (a ledger transfer, with its loyalty split), or why it cannot. */
interface Movement {
  readonly rejection: string | null;
  readonly transfer?: TransferRequest;
  readonly split?: LoyaltyTransfer | undefined;
  readonly points: LoyaltyDebit | undefined;
}

/** Where a payment goes from `received`, and why when it is refused or held. */
interface Outcome {
  readonly to: PaymentStatus;
  readonly code: string | null;
}

/** Another request under the same idempotency key recorded its payment first. */
class TwinRequest extends Error {}

export class Payments {
  readonly #db: Db;
  readonly #group: GroupCommit;
  readonly #reads: GroupRead;
  readonly #ledger: Ledger;
  readonly #bankAccounts: BankLedgerAccounts;
  readonly #accounts: Accounts;
  readonly #consents: Consents;
  readonly #pii: Pii;
  readonly #fraud: FraudScreening;
  readonly #fx: Fx;
  readonly #loyalty: Loyalty | undefined;
  readonly #secondFactor: {
    confirmWithSecondFactor(customerId: string, code: string): Promise<'confirmed' | 'wrong_code' | 'locked'>;
  };
  readonly #now: () => Date;

  constructor(options: {
    db: Db;
    ledger: Ledger;
    bankAccounts: BankLedgerAccounts;
    accounts: Accounts;
    consents: Consents;
    pii: Pii;
    fraud: FraudScreening;
    fx: Fx;
    /** Loyalty points (src/loyalty/); without it payments neither spend nor earn points. */
    loyalty?: Loyalty;
    /** Checks the customer's one-time code for a step-up (customer-auth). */
    secondFactor: {
      confirmWithSecondFactor(
        customerId: string,
        code: string,
      ): Promise<'confirmed' | 'wrong_code' | 'locked'>;
    };
    now?: () => Date;
  }) {
    this.#db = options.db;
    this.#group = new GroupCommit(options.db);
    this.#reads = new GroupRead(options.db);
    this.#ledger = options.ledger;
    this.#bankAccounts = options.bankAccounts;
    this.#accounts = options.accounts;
    this.#consents = options.consents;
    this.#pii = options.pii;
    this.#fraud = options.fraud;
    this.#fx = options.fx;
    this.#loyalty = options.loyalty;
    this.#secondFactor = options.secondFactor;
    this.#now = options.now ?? (() => new Date());
  }

  async initiate(
    initiator: Initiator,
    key: string,
    instruction: PaymentInstruction,
    context?: ScreeningInput['context'],
  ): Promise<InitiateOutcome> {
    // A consent naming a schedule authorised a payment on its date (src/payments/orders.ts), not one now.
    if (initiator.kind === 'app' && initiator.consent.details.schedule !== undefined) {
      return {
        ok: false,
        code: 'consent_mismatch',
        detail: 'the customer authorised a payment on a later date',
      };
    }
    const scope = idempotencyScopeOf(initiator);
    const hash = requestHash(instruction);
    // The replay lookup and the checks' reads go out together; a replay still answers before any check.
    const [existing, checked] = await this.#reads.run((sql) =>
      Promise.all([findPaymentByKey(sql, scope, key), this.check(initiator, instruction, sql)]),
    );
    if (existing) return this.#replay(existing, hash);
    if (!checked.ok) return checked;
    const { debtor, creditor, creditorIban, amount, quote } = checked;
    const currency = instruction.instructedAmount.currency;

    const id = uuidv7();
    const points = await this.#planPoints(initiator, instruction, id, checked);
    if (!points.ok) return points;
    const now = this.#now();
    const recorded: StoredPayment = {
      id,
      clientId: initiator.kind === 'customer' ? null : initiator.clientId,
      customerId: initiator.customerId,
      consentId:
        initiator.kind === 'app'
          ? initiator.consent.id
          : initiator.kind === 'mandate'
            ? initiator.mandateId
            : null,
      idempotencyScope: scope,
      idempotencyKey: key,
      requestHash: hash,
      debtorAccountId: debtor.id,
      type: creditor ? 'internal' : quote ? 'cross_border' : 'domestic',
      creditorNameEnc: this.#pii.encrypt(
        instruction.creditor.name,
        fieldContext('payments', 'creditor_name_enc', id),
      ),
      creditorIban,
      creditorAccountId: creditor?.id ?? null,
      currency,
      amount: amount.minor,
      reference: instruction.reference ?? null,
      quoteId: quote?.id ?? null,
      status: 'received',
      rejectionCode: null,
      statusHistory: [statusChange('received', null, now)],
      createdAt: now,
      updatedAt: now,
    };
    // How its money would move, prepared now with the reads it needs: in the transaction, it only moves.
    // Abroad, the payment is accepted with its pacs.008, prepared once the payment is recorded (below).
    const movement =
      recorded.type === 'cross_border'
        ? undefined
        : await this.#movementOf(recorded, debtor, creditor, quote, points.debit);
    let done: StoredPayment;
    try {
      // One transaction consumes an app's consent, screens the payment for fraud before any money moves,
      // moves the money and records the payment with its outcome: a payment is never left recorded but not
      // executed. The screening's reasons stay with the bank (a case for operators): the payer learns only
      // that the payment was refused, never which rule fired.
      // Concurrent payments share the transaction (src/db/group-commit.ts), and their ledger transfers one
      // call; one customer's never do, so each screening reads a history with the customer's earlier
      // payments in it.
      done = await this.#group.run(initiator.customerId, async (tx, jointly) => {
        // The quote first, before the payment that names it (quote ids are unique among payments): of two
        // payments racing for one quote, the second waits for the first and finds it used.
        if (quote) await this.#fx.useIn(tx, quote, `payment:${id}`, now);
        // The consent's use (one statement for the group's, once every payment has asked) and the
        // screening's reads; its verdict comes back with its record on the way (one statement for the
        // group's), ahead of the money's move on the connection.
        const [consumed, screening] = await Promise.all([
          initiator.kind !== 'app' || this.#consents.consume(initiator.consent, tx, jointly),
          this.#fraud.screen(
            {
              paymentId: id,
              customerId: initiator.customerId,
              debtorAccountId: debtor.id,
              amountMinor: amount.minor,
              currency,
              creditorIban,
              creditorName: instruction.creditor.name,
              at: now,
              context: context ?? {},
            },
            tx,
            jointly,
          ),
        ]);
        if (!consumed) throw new ConsentNoLongerActive();
        if (initiator.kind === 'mandate' && !(await initiator.reserve(tx, id))) throw new TwinRequest();
        if (points.debit) await this.#loyalty?.recordDebit(tx, points.debit);
        let outcome: Outcome | undefined;
        switch (decisionOf(screening.verdict, initiator)) {
          case 'block':
            outcome = { to: 'rejected', code: 'payment_blocked' };
            break;
          case 'hold':
            outcome = { to: 'awaiting_sca', code: 'sca_required' };
            break;
          case 'go':
            outcome = movement && (await this.#moveMoney(recorded, movement, jointly));
        }
        const payment = outcome ? this.#advanced(recorded, outcome, this.#now()) : recorded;
        // The record with every change so far, each with its event. A twin's insert finds the key taken, and
        // the whole transaction is undone, its money with it.
        const events = [
          this.#event(recorded, 'received', null),
          ...(outcome ? [this.#event(recorded, outcome.to, outcome.code)] : []),
        ];
        // The screening's record, sent before the money moved, is written by now or with the payment.
        const [inserted] = await Promise.all([
          jointly(insertPayments, { payment, events }),
          screening.recorded,
        ]);
        if (!inserted) throw new TwinRequest();
        // The points moved with the money, or never will (src/loyalty/); a held payment's wait for it.
        if (points.debit && outcome && outcome.to !== 'awaiting_sca')
          await this.#loyalty?.settleDebit(tx, id, outcome.to !== 'rejected');
        return payment;
      });
    } catch (error) {
      // A twin request under the same key won the race: answer as a replay of it.
      if (error instanceof TwinRequest) {
        const twin = await findPaymentByKey(this.#db, scope, key);
        if (!twin) throw new Error('payment key conflict without a payment');
        return this.#replay(twin, hash);
      }
      if (error instanceof ConsentNoLongerActive || error instanceof QuoteNoLongerOpen) {
        // Used by a twin under the same key, which then answers; otherwise by another payment.
        const twin = await findPaymentByKey(this.#db, scope, key);
        if (twin) return this.#replay(twin, hash);
        return { ok: false, code: error instanceof QuoteNoLongerOpen ? error.code : 'consent_not_active' };
      }
      throw error;
    }
    if (done.status === 'received') done = await this.#execute(done, debtor, creditor, points.debit ?? null);
    return {
      ok: true,
      payment: await this.#view(done, {
        creditorName: instruction.creditor.name,
        withoutPoints: points.debit === undefined,
      }),
      replayed: false,
    };
  }

  /**
   * What a payment (or an order of payments) needs before anything is recorded: a well-formed amount, the
   * consent's exact terms (dynamic linking, PSD2 RTS Art. 5), the payer's own account in the currency, a
   * valid creditor IBAN that is not the same account.
   */
  async check(
    initiator: Initiator,
    instruction: PaymentInstruction,
    // Where the accounts are read: a shared connection's reads (src/db/group-commit.ts), or any.
    sql?: Sql,
  ): Promise<
    | {
        ok: true;
        debtor: BankAccount;
        creditor: BankAccount | undefined;
        creditorIban: string;
        amount: ParsedAmount;
        quote: StoredQuote | undefined;
      }
    | { ok: false; code: PaymentProblem; detail?: string }
  > {
    const currency = instruction.instructedAmount.currency;
    const amount = parseAmount(instruction.instructedAmount.amount);
    if (!amount || amount.scale !== currencyExponent(currency)) {
      return {
        ok: false,
        code: 'amount_scale_mismatch',
        detail: `${currency} amounts have ${currencyExponent(currency)} decimals`,
      };
    }
    let debtorAccountId = instruction.debtorAccountId;
    if (initiator.kind === 'app') {
      const mismatch = mismatchWithConsent(initiator.consent, instruction, amount);
      if (mismatch)
        return {
          ok: false,
          code: 'consent_mismatch',
          detail: `the ${mismatch} differs from what the customer authorised`,
        };
      const chosen = initiator.consent.accountIds?.[0];
      if (!chosen || (debtorAccountId !== undefined && debtorAccountId !== chosen)) {
        return {
          ok: false,
          code: 'consent_mismatch',
          detail: 'the debtor account is not the one the customer chose',
        };
      }
      debtorAccountId = chosen;
    }
    const creditorIban = normaliseIban(instruction.creditor.iban);
    const ibanValid = isValidIBAN(creditorIban);
    // Both accounts are looked up at once; the answers are judged in the order the checks are documented.
    const { debtor, creditor } = await this.#accounts.findForPayment(
      initiator.customerId,
      debtorAccountId,
      ibanValid ? creditorIban : undefined,
      sql,
    );
    if (!debtor) return { ok: false, code: 'not_found', detail: 'no debtor account with this id' };
    const quoteId = instruction.quoteId;
    if (quoteId === undefined && debtor.currency !== currency)
      return { ok: false, code: 'currency_mismatch', detail: `the account is in ${debtor.currency}` };
    if (!ibanValid) return { ok: false, code: 'invalid_creditor_iban' };
    if (creditor?.id === debtor.id) return { ok: false, code: 'same_account' };
    if (quoteId === undefined && creditor && creditor.currency !== currency) {
      return {
        ok: false,
        code: 'currency_mismatch',
        detail: `the creditor's account is in ${creditor.currency}`,
      };
    }
    if (quoteId === undefined) return { ok: true, debtor, creditor, creditorIban, amount, quote: undefined };
    // In another currency, at a quote: it sells the debtor's currency, buys the creditor account's (when the
    // creditor banks here), and the instructed amount is one of its two sides.
    const quoted = await this.#fx.quoteFor(quoteOwnerOf(initiator), quoteId, {
      sellCurrency: debtor.currency,
      buyCurrency: creditor?.currency,
      instructed: { currency, minor: amount.minor },
    });
    if (!quoted.ok) return quoted;
    return { ok: true, debtor, creditor, creditorIban, amount, quote: quoted.quote };
  }

  async #replay(existing: StoredPayment, hash: string): Promise<InitiateOutcome> {
    if (existing.requestHash !== hash) return { ok: false, code: 'idempotency_key_reused' };
    // Recorded but not yet executed (its process died, or a twin is executing it): executing is idempotent.
    const payment = existing.status === 'received' ? await this.#executeStored(existing) : existing;
    return { ok: true, payment: await this.#view(payment), replayed: true };
  }

  async #executeStored(payment: StoredPayment): Promise<StoredPayment> {
    const debtor = await this.#accounts.find(payment.debtorAccountId);
    if (!debtor) throw new Error(`payment ${payment.id} names a missing account`);
    const creditor = payment.creditorAccountId
      ? await this.#accounts.find(payment.creditorAccountId)
      : undefined;
    return this.#execute(payment, debtor, creditor);
  }

  /** Moves the money (once, whatever the retries) and records the outcome. */
  async #execute(
    payment: StoredPayment,
    debtor: BankAccount,
    creditor: BankAccount | undefined,
    // Its loyalty split when the caller just recorded it (null: none); undefined: read it.
    recordedPoints?: LoyaltyDebit | null,
  ): Promise<StoredPayment> {
    const quote = await this.#quoteOf(payment);
    const points =
      recordedPoints === undefined
        ? await this.#loyalty?.findDebit(payment.id)
        : (recordedPoints ?? undefined);
    return this.#move(payment, await this.#movementOf(payment, debtor, creditor, quote, points));
  }

  /**
   * The ledger transfer that moves a payment's money, or why it cannot move. Everything it reads (the bank's
   * own ledger accounts, a loyalty wallet) is read here, outside any transaction.
   */
  async #movementOf(
    payment: StoredPayment,
    debtor: BankAccount,
    creditor: BankAccount | undefined,
    quote: StoredQuote | undefined,
    points: LoyaltyDebit | undefined,
  ): Promise<Movement> {
    if (debtor.status !== 'active') return { rejection: 'debtor_account_not_active', points };
    if (creditor && creditor.status !== 'active') return { rejection: 'creditor_account_not_active', points };
    const target = creditor
      ? creditor.ledgerAccountId
      : await this.#bankAccounts.id('clearing', quote?.buyCurrency ?? payment.currency);
    // Paid partly in points, or earning them: the points move in this same transfer (src/loyalty/).
    const split =
      points &&
      (await this.#loyalty?.debitTransfer(points, {
        debtorLedgerAccountId: debtor.ledgerAccountId,
        creditorLedgerAccountId: target,
      }));
    const transfer: TransferRequest = {
      postings: quote
        ? await this.#fx.conversionPostings(quote, debtor.ledgerAccountId, target)
        : (split?.postings ?? [
            {
              debitAccountId: debtor.ledgerAccountId,
              creditAccountId: target,
              amount: { minor: payment.amount as Minor, scale: currencyExponent(payment.currency) ?? 2 },
            },
          ]),
      pending: false,
      expiresAt: null,
      metadata: {
        paymentId: payment.id,
        reference: payment.reference,
        category: 'transfer',
        // Inside the bank the accounts name both sides; outside, the payee is all the statement can show.
        ...(creditor ? {} : { counterparty: { iban: payment.creditorIban } }),
        ...split?.metadata,
      },
    };
    return { rejection: null, transfer, split, points };
  }

  /** Moves the money, then records the outcome (`#execute`). */
  async #move(payment: StoredPayment, movement: Movement): Promise<StoredPayment> {
    const outcome = await this.#moveMoney(payment, movement);
    // A twin (a replayed request, the recovery sweep) is moving this payment's money right now: recording
    // the outcome is its job. Refusing here would mark `rejected` a payment whose money moves anyway.
    if (outcome === 'in_flight') return (await findPayment(this.#db, payment.id)) ?? payment;
    if (outcome.to === 'accepted' && payment.type === 'cross_border') return this.#acceptCrossBorder(payment);
    const loyalty = this.#loyalty;
    return this.#transition(
      payment,
      ['received'],
      outcome.to,
      outcome.code,
      movement.points && loyalty && ((tx) => loyalty.settleDebit(tx, payment.id, outcome.to !== 'rejected')),
    );
  }

  /**
   * Moves a received payment's money and says where the payment goes next. With `jointly`, in the caller's
   * transaction, with its group's other transfers (src/db/group-commit.ts); otherwise in the ledger's own,
   * where a twin may be moving it right now (`in_flight`). No twin moves a payment still being recorded.
   */
  async #moveMoney(payment: StoredPayment, movement: Movement, jointly: Jointly): Promise<Outcome>;
  async #moveMoney(payment: StoredPayment, movement: Movement): Promise<Outcome | 'in_flight'>;
  async #moveMoney(
    payment: StoredPayment,
    movement: Movement,
    jointly?: Jointly,
  ): Promise<Outcome | 'in_flight'> {
    let code = movement.rejection;
    if (movement.transfer) {
      const key = `payment:${payment.id}`;
      const moved = await (jointly
        ? this.#ledger.transferIn(jointly, key, movement.transfer)
        : this.#ledger.transfer(key, movement.transfer));
      if (!moved.ok) {
        if (moved.code === 'idempotency_key_in_flight') return 'in_flight';
        code = rejectionOf(movement.split, moved);
      }
    }
    if (code !== null) return { to: 'rejected', code };
    return { to: payment.type === 'internal' ? 'settled' : 'accepted', code: null };
  }

  /** The payment as `outcome` leaves it, changed at `at`. */
  #advanced(payment: StoredPayment, outcome: Outcome, at: Date): StoredPayment {
    return {
      ...payment,
      status: outcome.to,
      rejectionCode: outcome.code,
      statusHistory: [...payment.statusHistory, statusChange(outcome.to, outcome.code, at)],
      updatedAt: at,
    };
  }

  /** The FX quote a payment converts at, if any. */
  async #quoteOf(payment: StoredPayment): Promise<StoredQuote | undefined> {
    if (payment.quoteId === null) return undefined;
    const quote = await this.#fx.quoteOf(payment.quoteId);
    if (!quote) throw new Error(`payment ${payment.id} names a missing quote`);
    return quote;
  }

  /**
   * The payment's loyalty points (src/loyalty/), decided before it is recorded: the part paid in points at
   * the redemption rate and the points its money part earns at the merchant category's rule. Payments between
   * the customer's own accounts earn nothing; payments at an FX quote neither spend nor earn (the split is in
   * one currency). The consent covers the full amount: points change only how it is paid.
   */
  async #planPoints(
    initiator: Initiator,
    instruction: PaymentInstruction,
    id: string,
    checked: { debtor: BankAccount; creditor: BankAccount | undefined; amount: ParsedAmount; quote: unknown },
  ): Promise<
    { ok: true; debit: LoyaltyDebit | undefined } | { ok: false; code: LoyaltyProblem; detail: string }
  > {
    const points = BigInt(instruction.points ?? '0') as Points;
    if (!this.#loyalty || checked.quote) {
      const detail = checked.quote ? 'points do not pay payments at an FX quote' : 'the bank takes no points';
      return points > 0n
        ? { ok: false, code: 'points_not_accepted', detail }
        : { ok: true, debit: undefined };
    }
    return this.#loyalty.planDebit({
      id,
      accountId: checked.debtor.id,
      customerId: initiator.customerId,
      currency: checked.debtor.currency,
      amount: checked.amount.minor,
      points,
      merchantCategory: instruction.merchantCategory ?? null,
      earns: checked.creditor?.customerId !== initiator.customerId,
    });
  }

  /** A cross-border payment is accepted with its pacs.008, in one transaction: never one without the other. */
  async #acceptCrossBorder(payment: StoredPayment): Promise<StoredPayment> {
    const now = this.#now();
    const message = await this.#fx.prepareMessage({
      paymentId: payment.id,
      clientId: payment.clientId,
      customerId: payment.customerId,
      debtorAccountId: payment.debtorAccountId,
      creditor: {
        name: await this.#pii.decrypt(
          payment.creditorNameEnc,
          fieldContext('payments', 'creditor_name_enc', payment.id),
        ),
        iban: payment.creditorIban,
      },
      reference: payment.reference,
      instructed: { currency: payment.currency, minor: payment.amount },
      quoteId: payment.quoteId as string,
      acceptedAt: now,
    });
    const accepted = await this.#db.transaction(async (tx) => {
      const moved = await transitionPayment(
        tx,
        payment.id,
        ['received'],
        'accepted',
        null,
        now,
        this.#event(payment, 'accepted', null),
      );
      if (moved) await this.#fx.recordMessage(tx, message);
      return moved;
    });
    return accepted ?? ((await findPayment(this.#db, payment.id)) as StoredPayment);
  }

  async #transition(
    payment: StoredPayment,
    from: readonly PaymentStatus[],
    to: PaymentStatus,
    code: string | null,
    alongside?: (tx: Sql) => Promise<void>,
  ): Promise<StoredPayment> {
    const now = this.#now();
    const move = (on: Sql) =>
      transitionPayment(on, payment.id, from, to, code, now, this.#event(payment, to, code));
    // What moved with the money (loyalty points) is recorded in the transaction that records the payment's
    // outcome; a rejected payment's points never moved. Rejections are rare: the extra transaction is too.
    const loyalty = this.#loyalty;
    const withIt =
      alongside ??
      (loyalty && to === 'rejected' ? (tx: Sql) => loyalty.settleDebit(tx, payment.id, false) : undefined);
    const moveWithIt = async (tx: Sql) => {
      const changed = await move(tx);
      if (changed) await withIt?.(tx);
      return changed;
    };
    // Sharing a transaction with concurrent payments (src/db/group-commit.ts).
    const moved = await this.#group.run(payment.customerId, moveWithIt);
    // Another worker moved it first: report where it is now.
    return moved ?? ((await findPayment(this.#db, payment.id)) as StoredPayment);
  }

  #event(payment: StoredPayment, status: PaymentStatus, code: string | null) {
    return {
      type: `payment.${status}`,
      subjectId: payment.id,
      payload: {
        paymentId: payment.id,
        status,
        ...(code === null ? {} : { code }),
        clientId: payment.clientId,
        customerId: payment.customerId,
        debtorAccountId: payment.debtorAccountId,
      },
    };
  }

  /**
   * What the caller already knows needs no read: `creditorName`, the name it just sealed; `withoutPoints`, that
   * the payment spent and earned no points.
   */
  async #view(
    payment: StoredPayment,
    known: { creditorName?: string; withoutPoints?: boolean } = {},
  ): Promise<Payment> {
    return {
      id: payment.id,
      clientId: payment.clientId,
      customerId: payment.customerId,
      consentId: payment.consentId,
      debtorAccountId: payment.debtorAccountId,
      type: payment.type,
      creditor: {
        name:
          known.creditorName ??
          (await this.#pii.decrypt(
            payment.creditorNameEnc,
            fieldContext('payments', 'creditor_name_enc', payment.id),
          )),
        iban: payment.creditorIban,
      },
      currency: payment.currency,
      amount: payment.amount as Minor,
      reference: payment.reference,
      status: payment.status,
      rejectionCode: payment.rejectionCode,
      statusHistory: payment.statusHistory,
      createdAt: payment.createdAt,
      quote: (await this.#quoteOf(payment)) ?? null,
      points: known.withoutPoints ? undefined : await this.#loyalty?.findDebit(payment.id),
    };
  }

  /**
   * Whom the customer paid from `accountIds` (payments that left, mandate charges aside): per account and
   * payee IBAN the first payment's id, the latest payment's name and reference. After `after`, at most
   * `limit` (capped at PAYEES_PAGE_MAX).
   */
  async payees(
    customerId: string,
    accountIds: readonly string[],
    after: { accountId: string; iban: string } | undefined,
    limit: number,
  ): Promise<Payee[]> {
    const found = await listPayees(this.#db, customerId, accountIds, after, Math.min(limit, PAYEES_PAGE_MAX));
    return Promise.all(
      found.map(async ({ firstPaymentId, latest }) => ({
        id: firstPaymentId,
        debtorAccountId: latest.debtorAccountId,
        creditor: {
          name: await this.#pii.decrypt(
            latest.creditorNameEnc,
            fieldContext('payments', 'creditor_name_enc', latest.id),
          ),
          iban: latest.creditorIban,
        },
        reference: latest.reference,
        lastPaidAt: latest.createdAt,
      })),
    );
  }

  /**
   * The payment `initiator` already made under idempotency `key`, if any: a caller that prepares each request
   * anew (a fresh FX quote) answers a retry with the first payment before preparing a second.
   */
  async madeUnder(initiator: Initiator, key: string): Promise<Payment | undefined> {
    const existing = await findPaymentByKey(this.#db, idempotencyScopeOf(initiator), key);
    return existing && this.#view(existing);
  }

  /** The payment, if `who` may see it: the app that initiated it, or the customer who paid. */
  async get(who: { clientId: string } | { customerId: string }, id: string): Promise<Payment | undefined> {
    const payment = await findPayment(this.#db, id);
    if (!payment) return undefined;
    const visible =
      'clientId' in who ? payment.clientId === who.clientId : payment.customerId === who.customerId;
    return visible ? this.#view(payment) : undefined;
  }

  /**
   * One settlement cycle with the scheme: accepted outbound payments are claimed (`settling`, one statement,
   * SKIP LOCKED) so no return or other cycle can touch them, their money leaves clearing for settlement in
   * one ledger batch under per-payment keys, and each becomes `settled`. A payment the ledger refuses now (the
   * bank's nostro short of funds) goes back to `accepted` for the next cycle; `deferredFor` counts them by the
   * ledger's reason.
   */
  async settleCycle(): Promise<{ settled: number; deferred: number; deferredFor: Record<string, number> }> {
    const now = this.#now();
    const due = await claimForSettlement(
      this.#db,
      now,
      new Date(now.getTime() - STALE_CLAIM_MS),
      SETTLEMENT_BATCH_MAX,
    );
    if (due.length === 0) return { settled: 0, deferred: 0, deferredFor: {} };
    const transfers = [];
    // A cross-border payment settles what its quote bought, through the nostro account in that currency.
    const quotes = await this.#fx.quotesOf(due.flatMap((payment) => payment.quoteId ?? []));
    for (const payment of due) {
      const quote = payment.quoteId === null ? undefined : quotes.get(payment.quoteId);
      const currency = quote?.buyCurrency ?? payment.currency;
      transfers.push({
        key: `payment-settlement:${payment.id}`,
        request: {
          postings: [
            {
              debitAccountId: await this.#bankAccounts.id('clearing', currency),
              creditAccountId: await this.#bankAccounts.id(quote ? 'nostro' : 'settlement', currency),
              amount: {
                minor: (quote?.buyAmount ?? payment.amount) as Minor,
                scale: currencyExponent(currency) ?? 2,
              },
            },
          ],
          pending: false,
          expiresAt: null,
          metadata: { paymentId: payment.id, purpose: 'settlement' },
        },
      });
    }
    const outcomes = await this.#ledger.transferBatch(false, transfers);
    let settled = 0;
    const deferredFor: Record<string, number> = {};
    for (const [index, payment] of due.entries()) {
      const outcome = outcomes[index];
      if (outcome?.ok) {
        await this.#transition(payment, ['settling'], 'settled', null);
        settled++;
      } else {
        const reason = outcome?.code ?? 'no_outcome';
        deferredFor[reason] = (deferredFor[reason] ?? 0) + 1;
        await this.#transition(payment, ['settling'], 'accepted', null);
      }
    }
    return { settled, deferred: due.length - settled, deferredFor };
  }

  /**
   * The receiving bank sent the payment back (a closed account, a wrong name): the debtor gets the money
   * back, from clearing if it had not settled yet, from settlement if it had. The payment is claimed first
   * (`returning`, from exactly the status it was read in), so a settlement cycle cannot move it meanwhile.
   */
  async returnPayment(id: string, reasonCode: string): Promise<Payment | 'not_found' | 'not_returnable'> {
    const payment = await findPayment(this.#db, id);
    if (!payment) return 'not_found';
    if (payment.type === 'internal' || (payment.status !== 'accepted' && payment.status !== 'settled')) {
      return 'not_returnable';
    }
    const claimed = await transitionPayment(
      this.#db,
      id,
      [payment.status],
      'returning',
      reasonCode,
      this.#now(),
      {
        type: 'payment.returning',
        payload: { paymentId: id, status: 'returning', code: reasonCode },
      },
    );
    if (!claimed) return 'not_returnable';
    return this.#view(await this.#finishReturn(claimed, payment.status));
  }

  async #finishReturn(payment: StoredPayment, from: 'accepted' | 'settled'): Promise<StoredPayment> {
    const debtor = await this.#accounts.find(payment.debtorAccountId);
    if (!debtor) throw new Error(`payment ${payment.id} names a missing account`);
    const quote = await this.#quoteOf(payment);
    const source = await this.#bankAccounts.id(
      from === 'settled' ? (quote ? 'nostro' : 'settlement') : 'clearing',
      quote?.buyCurrency ?? payment.currency,
    );
    // Paid partly in points, or earned some: both parts go back in proportion, in this same transfer.
    const loyalty = this.#loyalty;
    const refund = await loyalty?.planRefund({
      refundId: payment.id,
      debitId: payment.id,
      amount: payment.amount as Minor,
    });
    const split =
      refund &&
      (await loyalty?.refundTransfer(refund, {
        sourceLedgerAccountId: source,
        debtorLedgerAccountId: debtor.ledgerAccountId,
      }));
    const outcome = await this.#ledger.transfer(`payment-return:${payment.id}`, {
      // At a quote, the debtor gets back what they paid, fee included, at the quote's rate (src/fx/).
      postings: quote
        ? await this.#fx.reversalPostings(quote, source, debtor.ledgerAccountId)
        : (split?.postings ?? [
            {
              debitAccountId: source,
              creditAccountId: debtor.ledgerAccountId,
              amount: { minor: payment.amount as Minor, scale: currencyExponent(payment.currency) ?? 2 },
            },
          ]),
      pending: false,
      expiresAt: null,
      metadata: {
        paymentId: payment.id,
        reference: `Returned: ${payment.reference ?? ''}`.trim(),
        category: 'transfer',
        ...split?.metadata,
      },
    });
    const settleRefund = (posted: boolean) =>
      refund && loyalty ? (tx: Sql) => loyalty.settleRefund(tx, refund, posted) : undefined;
    // The money is where it was: the payment goes back to where it was.
    if (!outcome.ok) return this.#transition(payment, ['returning'], from, null, settleRefund(false));
    return this.#transition(payment, ['returning'], 'returned', payment.rejectionCode, settleRefund(true));
  }

  /**
   * The customer confirms a held payment with a one-time code (step-up SCA). Only one confirmation wins the
   * move back to `received`; the money then moves as for any payment.
   */
  async confirm(
    customerId: string,
    id: string,
    code: string,
  ): Promise<Payment | 'not_found' | 'not_awaiting_sca' | 'wrong_code' | 'locked'> {
    const payment = await findPayment(this.#db, id);
    if (!payment || payment.customerId !== customerId) return 'not_found';
    if (payment.status !== 'awaiting_sca' || this.#scaExpired(payment)) return 'not_awaiting_sca';
    const answer = await this.#secondFactor.confirmWithSecondFactor(customerId, code);
    if (answer !== 'confirmed') return answer;
    // A rate is locked for the quote's 30 seconds, not for the hold: confirmed later, the customer would
    // hold a free option on the rate. The payment is refused instead; nothing has moved.
    const quote = await this.#quoteOf(payment);
    if (quote && quote.expiresAt <= this.#now()) {
      return this.#view(await this.#transition(payment, ['awaiting_sca'], 'rejected', 'quote_expired'));
    }
    const released = await transitionPayment(this.#db, id, ['awaiting_sca'], 'received', null, this.#now(), {
      type: 'payment.confirmed',
      payload: { paymentId: id, status: 'received', customerId },
    });
    if (!released) return 'not_awaiting_sca';
    return this.#view(await this.#executeStored(released));
  }

  /** The customer declines a held payment: nothing moves. */
  async cancelHeld(customerId: string, id: string): Promise<Payment | 'not_found' | 'not_awaiting_sca'> {
    const payment = await findPayment(this.#db, id);
    if (!payment || payment.customerId !== customerId) return 'not_found';
    const cancel = (sql: Sql) =>
      transitionPayment(
        sql,
        id,
        ['awaiting_sca'],
        'rejected',
        'cancelled_by_customer',
        this.#now(),
        this.#event(payment, 'rejected', 'cancelled_by_customer'),
      );
    // Its loyalty points never moved: their split is voided with it, in the same transaction.
    const loyalty = this.#loyalty;
    const moved = loyalty
      ? await this.#db.transaction(async (tx) => {
          const cancelled = await cancel(tx);
          if (cancelled) await loyalty.settleDebit(tx, id, false);
          return cancelled;
        })
      : await cancel(this.#db);
    return moved ? this.#view(moved) : 'not_awaiting_sca';
  }

  #scaExpired(payment: StoredPayment): boolean {
    return this.#now().getTime() - payment.updatedAt.getTime() > SCA_WINDOW_MS;
  }

  /** Finishes payments whose process died between a step's record and its money movement. */
  async recover(): Promise<number> {
    const staleBefore = new Date(this.#now().getTime() - STALE_CLAIM_MS);
    // A held payment nobody confirmed in time lapses; nothing moved.
    const scaBefore = new Date(this.#now().getTime() - SCA_WINDOW_MS);
    for (const payment of await listPayments(this.#db, 'awaiting_sca', scaBefore, 100)) {
      await this.#transition(payment, ['awaiting_sca'], 'rejected', 'sca_expired');
    }
    for (const payment of await listPayments(this.#db, 'returning', staleBefore, 100)) {
      // Where it was returned from is the status before `returning` in its history.
      const from = payment.statusHistory.at(-2)?.status === 'settled' ? 'settled' : 'accepted';
      await this.#finishReturn(payment, from);
    }
    const stale = await listPayments(
      this.#db,
      'received',
      new Date(this.#now().getTime() - RECOVER_AFTER_MS),
      100,
    );
    for (const payment of stale) await this.#executeStored(payment);
    return stale.length;
  }

  /** Money arriving from another bank (the sandbox's stand-in for the scheme): settlement -> the account. */
  async receiveIncoming(
    key: string,
    incoming: {
      creditorIban: string;
      amount: ParsedAmount;
      currency: string;
      debtorName: string;
      reference?: string | undefined;
    },
  ): Promise<
    | { ok: true; transferId: string }
    | { ok: false; code: 'not_found' | 'currency_mismatch' | 'account_closed' | string }
  > {
    const account = await this.#accounts.findByIban(normaliseIban(incoming.creditorIban));
    if (!account) return { ok: false, code: 'not_found' };
    if (account.currency !== incoming.currency) return { ok: false, code: 'currency_mismatch' };
    if (account.status === 'closed') return { ok: false, code: 'account_closed' };
    const outcome = await this.#ledger.transfer(`incoming:${key}`, {
      postings: [
        {
          debitAccountId: await this.#bankAccounts.id('settlement', incoming.currency),
          creditAccountId: account.ledgerAccountId,
          amount: incoming.amount,
        },
      ],
      pending: false,
      expiresAt: null,
      metadata: {
        reference: incoming.reference ?? null,
        category: 'transfer',
        counterparty: { name: incoming.debtorName },
      },
    });
    if (!outcome.ok) return { ok: false, code: outcome.code };
    await emit(this.#db, this.#now(), {
      type: 'payment.incoming',
      subjectId: outcome.transfer.id,
      payload: { transferId: outcome.transfer.id, accountId: account.id },
    });
    return { ok: true, transferId: outcome.transfer.id };
  }

  /** Funds confirmation: whether the account can cover the amount now, and nothing more. */
  async fundsAvailable(account: BankAccount, amount: Minor): Promise<boolean> {
    return (await this.#accounts.balances(account)).available >= amount;
  }
}
