// FX: quotes, customers' conversions between their own accounts, and what payments in another currency need
// (a quote's postings, the pacs.008 of a cross-border payment). A quote locks the customer's rate (the mid
// rate from the configured source, less the bank's spread) and a fee for QUOTE_LOCK_MS; it is used once.
//
// Money converts through the bank's FX position account in each currency, so every posting stays within one
// currency and `ledger verify` balances per currency:
//
//   customer (sold currency)  -> bank:fx-position-<sold>   the sold amount
//   customer (sold currency)  -> bank:fx-income-<sold>     the fee
//   bank:fx-position-<bought> -> customer, or clearing     the bought amount
//
// all in one ledger transfer, so a conversion moves entirely or not at all. A position account's balance is
// the bank's open position in that currency (credit: it took in more than it paid out); it may go negative
// (short), which is what a position is. The spread is not booked apart: it stays in the positions.
import { randomUUID } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import type { Accounts } from '../accounts/service.ts';
import type { BankAccount } from '../accounts/store.ts';
import type { Customers } from '../customers/service.ts';
import type { Db, Sql } from '../db/db.ts';
import { emit } from '../events/outbox.ts';
import { requestHash } from '../idempotency.ts';
import { buildPacs008, NOT_PROVIDED } from '../iso20022/pacs008.ts';
import type { BankLedgerAccounts } from '../ledger/bank-accounts.ts';
import type { PostingRequest } from '../ledger/model.ts';
import type { Ledger, TransferOutcome } from '../ledger/service.ts';
import { currencyExponent, type Minor, type ParsedAmount } from '../money.ts';
import { fieldContext, type Pii } from '../pii/pii.ts';
import type { RateSource } from './rate-source.ts';
import { convert, formatRate, lessSpread, truncateRate } from './rates.ts';
import {
  type ConversionStatus,
  findConversion,
  findConversionByKey,
  findMessage,
  findQuote,
  findQuotes,
  finishConversion,
  insertConversion,
  insertMessage,
  insertQuote,
  pruneQuotes,
  type StoredConversion,
  type StoredQuote,
  staleConversions,
  useQuote,
} from './store.ts';

/** How long a quote's rate and fee hold. */
export const QUOTE_LOCK_MS = 30_000;
/** The bank's margin on the mid rate and its fee on the sold amount, in basis points. */
export interface FxPricing {
  readonly spreadBps: number;
  readonly feeBps: number;
}
export const DEFAULT_PRICING: FxPricing = { spreadBps: 50, feeBps: 10 };
// A conversion still `received` this long after it was recorded lost its process between the two steps.
const RECOVER_AFTER_MS = 30_000;
const RECOVER_BATCH_MAX = 100;
// Quotes nobody used are kept a day (an app may still ask why its payment was refused), then deleted.
const UNUSED_QUOTES_KEPT_MS = 24 * 60 * 60 * 1000;
const PRUNE_BATCH_MAX = 10_000;

/** Who asked for a quote, and so who may use it: an app (for one customer, or for itself), or a customer. */
export type QuoteOwner =
  | { readonly kind: 'app'; readonly clientId: string; readonly customerId: string | null }
  | { readonly kind: 'customer'; readonly customerId: string };

export interface QuoteRequest {
  readonly sellCurrency: string;
  readonly buyCurrency: string;
  /** The amount the asker fixes: what leaves the customer's account, or what arrives at the other end. */
  readonly fixed: { readonly side: 'sell' | 'buy'; readonly amount: ParsedAmount };
}

export type QuoteState = 'open' | 'used' | 'expired';
export interface Quote extends StoredQuote {
  readonly state: QuoteState;
}

export type FxProblem =
  | 'not_found'
  | 'unsupported_currency'
  | 'amount_scale_mismatch'
  | 'currency_pair_not_quoted'
  | 'quote_amount_out_of_range'
  | 'quote_mismatch'
  | 'quote_expired'
  | 'quote_already_used'
  | 'same_account'
  | 'idempotency_key_reused';

export type Refusal = { readonly ok: false; readonly code: FxProblem; readonly detail?: string };
/** Why a quote cannot be used for a payment or conversion. */
export type QuoteRefusal = {
  readonly ok: false;
  readonly code: 'not_found' | 'quote_mismatch' | 'quote_already_used' | 'quote_expired';
  readonly detail?: string;
};

export interface Conversion {
  readonly id: string;
  readonly status: ConversionStatus;
  readonly fromAccountId: string;
  readonly toAccountId: string;
  readonly quote: StoredQuote;
  readonly rejectionCode: string | null;
  readonly createdAt: Date;
}

/** An outbound cross-border payment as its pacs.008 needs it (payments/service.ts gives it). */
export interface OutboundPayment {
  readonly paymentId: string;
  readonly clientId: string | null;
  readonly customerId: string;
  readonly debtorAccountId: string;
  readonly creditor: { readonly name: string; readonly iban: string };
  readonly reference: string | null;
  readonly instructed: { readonly currency: string; readonly minor: bigint };
  readonly quoteId: string;
  readonly acceptedAt: Date;
}

/** A pacs.008 built and sealed, to be recorded in the transaction that accepts its payment. */
export interface PreparedMessage {
  readonly paymentId: string;
  readonly messageId: string;
  readonly uetr: string;
  readonly xmlEnc: string;
  readonly createdAt: Date;
  readonly event: { readonly clientId: string | null; readonly customerId: string };
}

/** Thrown inside a recording transaction to roll it back when its quote was used or expired meanwhile. */
export class QuoteNoLongerOpen extends Error {
  readonly code: 'quote_expired' | 'quote_already_used';
  constructor(code: 'quote_expired' | 'quote_already_used') {
    super(code);
    this.code = code;
  }
}

const exponentOf = (currency: string): number => {
  const exponent = currencyExponent(currency);
  if (exponent === undefined) throw new Error(`no ISO 4217 exponent for ${currency}`);
  return exponent;
};
const inMinor = (minor: bigint, currency: string): ParsedAmount => ({
  minor: minor as Minor,
  scale: exponentOf(currency),
});
// Identifiers in ISO 20022 messages are Max35Text: a UUID without its dashes (32 characters).
const isoId = (uuid: string) => uuid.replaceAll('-', '');

export class Fx {
  readonly #db: Db;
  readonly #ledger: Ledger;
  readonly #bankAccounts: BankLedgerAccounts;
  readonly #accounts: Accounts;
  readonly #customers: Customers;
  readonly #pii: Pii;
  readonly #rates: RateSource;
  readonly #pricing: FxPricing;
  readonly #quoteLockMs: number;
  readonly #now: () => Date;

  constructor(options: {
    db: Db;
    ledger: Ledger;
    bankAccounts: BankLedgerAccounts;
    accounts: Accounts;
    customers: Customers;
    pii: Pii;
    rates: RateSource;
    pricing?: FxPricing;
    quoteLockMs?: number;
    now?: () => Date;
  }) {
    this.#db = options.db;
    this.#ledger = options.ledger;
    this.#bankAccounts = options.bankAccounts;
    this.#accounts = options.accounts;
    this.#customers = options.customers;
    this.#pii = options.pii;
    this.#rates = options.rates;
    this.#pricing = options.pricing ?? DEFAULT_PRICING;
    this.#quoteLockMs = options.quoteLockMs ?? QUOTE_LOCK_MS;
    this.#now = options.now ?? (() => new Date());
  }

  // ---- quotes ---------------------------------------------------------------------------------------------

  async quote(owner: QuoteOwner, request: QuoteRequest): Promise<{ ok: true; quote: Quote } | Refusal> {
    const { sellCurrency, buyCurrency, fixed } = request;
    const sellExponent = currencyExponent(sellCurrency);
    const buyExponent = currencyExponent(buyCurrency);
    if (sellExponent === undefined || buyExponent === undefined) {
      return {
        ok: false,
        code: 'unsupported_currency',
        detail: 'both currencies must be active ISO 4217 codes',
      };
    }
    const fixedCurrency = fixed.side === 'sell' ? sellCurrency : buyCurrency;
    const fixedExponent = fixed.side === 'sell' ? sellExponent : buyExponent;
    if (fixed.amount.scale !== fixedExponent) {
      return {
        ok: false,
        code: 'amount_scale_mismatch',
        detail: `${fixedCurrency} amounts have ${fixedExponent} decimals`,
      };
    }
    if (sellCurrency === buyCurrency) {
      return { ok: false, code: 'currency_pair_not_quoted', detail: 'the two currencies must differ' };
    }
    const mid = await this.#rates.midRate(sellCurrency, buyCurrency);
    const midRate = mid && truncateRate(mid.ratio);
    const rate = mid && truncateRate(lessSpread(mid.ratio, this.#pricing.spreadBps));
    if (!mid || !midRate || !rate) {
      return {
        ok: false,
        code: 'currency_pair_not_quoted',
        detail: `no ${sellCurrency}/${buyCurrency} rate from the ${this.#rates.name} rate source`,
      };
    }
    const amounts = convert(
      { side: fixed.side, minor: fixed.amount.minor },
      rate,
      { sell: sellExponent, buy: buyExponent },
      this.#pricing.feeBps,
    );
    if (!amounts) {
      return {
        ok: false,
        code: 'quote_amount_out_of_range',
        detail: 'the other side comes to less than one minor unit, or more than an account can hold',
      };
    }
    const now = this.#now();
    const quote: StoredQuote = {
      id: uuidv7(),
      clientId: owner.kind === 'app' ? owner.clientId : null,
      customerId: owner.customerId,
      sellCurrency,
      buyCurrency,
      sellAmount: amounts.sellMinor,
      buyAmount: amounts.buyMinor,
      feeAmount: amounts.feeMinor,
      fixedSide: fixed.side,
      midRate: formatRate(midRate),
      rate: formatRate(rate),
      spreadBps: this.#pricing.spreadBps,
      feeBps: this.#pricing.feeBps,
      rateSource: mid.source,
      ratesAsOf: mid.asOf,
      status: 'open',
      usedBy: null,
      expiresAt: new Date(now.getTime() + this.#quoteLockMs),
      createdAt: now,
      usedAt: null,
    };
    await insertQuote(this.#db, quote, {
      type: 'fx.quote.created',
      subjectId: quote.id,
      payload: {
        quoteId: quote.id,
        clientId: quote.clientId,
        customerId: quote.customerId,
        sellCurrency,
        buyCurrency,
        expiresAt: quote.expiresAt.toISOString(),
      },
    });
    return { ok: true, quote: this.#stated(quote, now) };
  }

  /** The quote, if `owner` may see it: another app's or customer's quote does not exist for them. */
  async getQuote(owner: QuoteOwner, id: string): Promise<Quote | undefined> {
    const quote = await findQuote(this.#db, id);
    return quote && mayUse(quote, owner) ? this.#stated(quote, this.#now()) : undefined;
  }

  #stated(quote: StoredQuote, now: Date): Quote {
    const state = quote.status === 'used' ? 'used' : quote.expiresAt <= now ? 'expired' : 'open';
    return { ...quote, state };
  }

  /**
   * Whether `owner` may use the quote for a movement selling `sellCurrency` (the account it leaves) and
   * buying `buyCurrency` (when known: an account of this bank), and for exactly `instructed` when given (a
   * payment instructs one side of the quote: what leaves the debtor, or what reaches the creditor). The
   * checks run in order of what a retry could change: none for a wrong quote, a new quote for a spent one.
   */
  async quoteFor(
    owner: QuoteOwner | undefined,
    id: string,
    terms: {
      readonly sellCurrency: string;
      readonly buyCurrency?: string | undefined;
      readonly instructed?: { readonly currency: string; readonly minor: bigint } | undefined;
    },
  ): Promise<{ ok: true; quote: StoredQuote } | QuoteRefusal> {
    const quote = await findQuote(this.#db, id);
    if (!quote || !owner || !mayUse(quote, owner))
      return { ok: false, code: 'not_found', detail: 'no quote with this id' };
    if (quote.sellCurrency !== terms.sellCurrency) {
      return {
        ok: false,
        code: 'quote_mismatch',
        detail: `the quote sells ${quote.sellCurrency}; the account paid from is in ${terms.sellCurrency}`,
      };
    }
    if (terms.buyCurrency !== undefined && quote.buyCurrency !== terms.buyCurrency) {
      return {
        ok: false,
        code: 'quote_mismatch',
        detail: `the quote buys ${quote.buyCurrency}; the account paid to is in ${terms.buyCurrency}`,
      };
    }
    const { instructed } = terms;
    if (
      instructed &&
      !(instructed.currency === quote.sellCurrency && instructed.minor === quote.sellAmount) &&
      !(instructed.currency === quote.buyCurrency && instructed.minor === quote.buyAmount)
    ) {
      return {
        ok: false,
        code: 'quote_mismatch',
        detail: "the instructed amount is neither the quote's sold nor its bought amount",
      };
    }
    if (quote.status === 'used') return { ok: false, code: 'quote_already_used' };
    if (quote.expiresAt <= this.#now()) return { ok: false, code: 'quote_expired' };
    return { ok: true, quote };
  }

  /**
   * Uses the quote for `usedBy` inside the caller's transaction; throws QuoteNoLongerOpen (rolling it back)
   * when it was used or expired since it was checked.
   */
  async useIn(tx: Sql, quote: StoredQuote, usedBy: string, at: Date): Promise<void> {
    const used = await useQuote(tx, quote.id, usedBy, at, {
      type: 'fx.quote.used',
      payload: { quoteId: quote.id, usedBy, clientId: quote.clientId, customerId: quote.customerId },
    });
    if (used) return;
    const now = await findQuote(tx, quote.id);
    throw new QuoteNoLongerOpen(now?.status === 'used' ? 'quote_already_used' : 'quote_expired');
  }

  quoteOf(id: string): Promise<StoredQuote | undefined> {
    return findQuote(this.#db, id);
  }

  async quotesOf(ids: readonly string[]): Promise<Map<string, StoredQuote>> {
    return new Map((await findQuotes(this.#db, ids)).map((quote) => [quote.id, quote]));
  }

  // ---- postings -------------------------------------------------------------------------------------------

  /** The postings of a movement at `quote`: the sold amount and fee from `from`, the bought one to `to`. */
  async conversionPostings(quote: StoredQuote, from: string, to: string): Promise<PostingRequest[]> {
    const { sellCurrency: sell, buyCurrency: buy } = quote;
    const postings: PostingRequest[] = [
      {
        debitAccountId: from,
        creditAccountId: await this.#bankAccounts.id('fx-position', sell),
        amount: inMinor(quote.sellAmount, sell),
      },
      {
        debitAccountId: await this.#bankAccounts.id('fx-position', buy),
        creditAccountId: to,
        amount: inMinor(quote.buyAmount, buy),
      },
    ];
    if (quote.feeAmount > 0n) {
      postings.push({
        debitAccountId: from,
        creditAccountId: await this.#bankAccounts.id('fx-income', sell),
        amount: inMinor(quote.feeAmount, sell),
      });
    }
    return postings;
  }

  /**
   * The postings that undo a movement at `quote` (a returned payment): the bought amount back from `source`
   * into the position, the sold amount and the fee back to `to`, at the quote's own rate. The customer gets
   * back exactly what they were debited; the bank's position carries any move in the market since.
   */
  async reversalPostings(quote: StoredQuote, source: string, to: string): Promise<PostingRequest[]> {
    const { sellCurrency: sell, buyCurrency: buy } = quote;
    const postings: PostingRequest[] = [
      {
        debitAccountId: source,
        creditAccountId: await this.#bankAccounts.id('fx-position', buy),
        amount: inMinor(quote.buyAmount, buy),
      },
      {
        debitAccountId: await this.#bankAccounts.id('fx-position', sell),
        creditAccountId: to,
        amount: inMinor(quote.sellAmount, sell),
      },
    ];
    if (quote.feeAmount > 0n) {
      postings.push({
        debitAccountId: await this.#bankAccounts.id('fx-income', sell),
        creditAccountId: to,
        amount: inMinor(quote.feeAmount, sell),
      });
    }
    return postings;
  }

  // ---- cross-border payments: pacs.008 --------------------------------------------------------------------

  /** Builds and seals the payment's pacs.008 (before the transaction that accepts the payment records it). */
  async prepareMessage(payment: OutboundPayment): Promise<PreparedMessage> {
    const quote = await findQuote(this.#db, payment.quoteId);
    const debtor = await this.#accounts.find(payment.debtorAccountId);
    if (!quote || !debtor) throw new Error(`payment ${payment.paymentId} names a missing quote or account`);
    const debtorName = (await this.#customers.holderName(payment.customerId)) ?? NOT_PROVIDED;
    const bank = this.#accounts.bank;
    const messageId = uuidv7();
    const uetr = randomUUID();
    const instructedIn = payment.instructed.currency;
    const xml = buildPacs008({
      messageId: isoId(messageId),
      instructionId: isoId(payment.paymentId),
      endToEndId: isoId(payment.paymentId),
      transactionId: isoId(payment.paymentId),
      uetr,
      createdAt: payment.acceptedAt,
      settlementDate: payment.acceptedAt.toISOString().slice(0, 10),
      settlementAmount: {
        currency: quote.buyCurrency,
        minor: quote.buyAmount,
        exponent: exponentOf(quote.buyCurrency),
      },
      instructedAmount: {
        currency: instructedIn,
        minor: payment.instructed.minor,
        exponent: exponentOf(instructedIn),
      },
      // Units of the settlement currency per unit instructed: the quote's rate, when the debtor instructed
      // in the currency they pay in (a payment instructed in the creditor's currency needs no rate here).
      ...(instructedIn !== quote.buyCurrency && { exchangeRate: quote.rate }),
      chargeBearer: 'DEBT',
      ...(quote.feeAmount > 0n && {
        debtorAgentCharge: {
          currency: quote.sellCurrency,
          minor: quote.feeAmount,
          exponent: exponentOf(quote.sellCurrency),
        },
      }),
      debtor: { name: debtorName, iban: debtor.iban },
      debtorAgent: { name: bank.name, otherId: bank.bankCode },
      creditor: payment.creditor,
      creditorAgent: { otherId: NOT_PROVIDED },
      remittance: payment.reference,
    });
    return {
      paymentId: payment.paymentId,
      messageId: isoId(messageId),
      uetr,
      xmlEnc: this.#pii.encrypt(xml, fieldContext('fx_payment_messages', 'xml_enc', payment.paymentId)),
      createdAt: payment.acceptedAt,
      event: { clientId: payment.clientId, customerId: payment.customerId },
    };
  }

  /** Records a prepared message in the caller's transaction, with its event. */
  recordMessage(tx: Sql, message: PreparedMessage): Promise<void> {
    return insertMessage(
      tx,
      {
        id: message.paymentId,
        messageId: message.messageId,
        uetr: message.uetr,
        xmlEnc: message.xmlEnc,
        createdAt: message.createdAt,
      },
      {
        type: 'fx.pacs008.created',
        subjectId: message.paymentId,
        payload: {
          paymentId: message.paymentId,
          messageId: message.messageId,
          uetr: message.uetr,
          clientId: message.event.clientId,
          customerId: message.event.customerId,
        },
      },
    );
  }

  /** The payment's pacs.008 as sent. Callers check first that whoever asks may see the payment. */
  async message(paymentId: string): Promise<string | undefined> {
    const stored = await findMessage(this.#db, paymentId);
    return (
      stored && this.#pii.decrypt(stored.xmlEnc, fieldContext('fx_payment_messages', 'xml_enc', paymentId))
    );
  }

  // ---- conversions between a customer's own accounts ------------------------------------------------------

  async convert(
    customerId: string,
    key: string,
    request: { readonly fromAccountId: string; readonly toAccountId: string; readonly quoteId: string },
  ): Promise<{ ok: true; conversion: Conversion; replayed: boolean } | Refusal> {
    const scope = `customer:${customerId}`;
    const hash = requestHash(request);
    const existing = await findConversionByKey(this.#db, scope, key);
    if (existing) return this.#replay(existing, hash);

    const from = await this.#accounts.findForCustomer(customerId, request.fromAccountId);
    const to = await this.#accounts.findForCustomer(customerId, request.toAccountId);
    if (!from) return { ok: false, code: 'not_found', detail: 'no account with the fromAccountId' };
    if (!to) return { ok: false, code: 'not_found', detail: 'no account with the toAccountId' };
    if (from.id === to.id) return { ok: false, code: 'same_account' };
    const checked = await this.quoteFor({ kind: 'customer', customerId }, request.quoteId, {
      sellCurrency: from.currency,
      buyCurrency: to.currency,
    });
    if (!checked.ok) return checked;

    const now = this.#now();
    const recorded: StoredConversion = {
      id: uuidv7(),
      customerId,
      idempotencyScope: scope,
      idempotencyKey: key,
      requestHash: hash,
      fromAccountId: from.id,
      toAccountId: to.id,
      quoteId: checked.quote.id,
      status: 'received',
      rejectionCode: null,
      createdAt: now,
      updatedAt: now,
    };
    try {
      // The conversion and its quote's use commit together: of two conversions racing for a quote, one wins.
      // The quote goes first (its id is unique among conversions): the loser waits for it, and finds it used.
      await this.#db.transaction(async (tx) => {
        await this.useIn(tx, checked.quote, `conversion:${recorded.id}`, now);
        // A twin under the same key recorded first: undo the quote's use, and answer as its replay.
        if (!(await insertConversion(tx, recorded, conversionEvent(recorded, 'received', null))))
          throw new QuoteNoLongerOpen('quote_already_used');
      });
    } catch (error) {
      if (!(error instanceof QuoteNoLongerOpen)) throw error;
      // Used by a twin under the same key, which then answers; otherwise by another conversion.
      const first = await findConversionByKey(this.#db, scope, key);
      return first ? this.#replay(first, hash) : { ok: false, code: error.code };
    }
    return {
      ok: true,
      conversion: await this.#view(await this.#execute(recorded, from, to)),
      replayed: false,
    };
  }

  async getConversion(customerId: string, id: string): Promise<Conversion | undefined> {
    const conversion = await findConversion(this.#db, id);
    return conversion?.customerId === customerId ? this.#view(conversion) : undefined;
  }

  async #replay(
    existing: StoredConversion,
    hash: string,
  ): Promise<{ ok: true; conversion: Conversion; replayed: boolean } | Refusal> {
    if (existing.requestHash !== hash) return { ok: false, code: 'idempotency_key_reused' };
    // Recorded but not finished (its process died, or a twin runs it now): executing is idempotent.
    const conversion = existing.status === 'received' ? await this.#executeStored(existing) : existing;
    return { ok: true, conversion: await this.#view(conversion), replayed: true };
  }

  async #executeStored(conversion: StoredConversion): Promise<StoredConversion> {
    const from = await this.#accounts.find(conversion.fromAccountId);
    const to = await this.#accounts.find(conversion.toAccountId);
    if (!from || !to) throw new Error(`conversion ${conversion.id} names a missing account`);
    return this.#execute(conversion, from, to);
  }

  /** Moves the money once, under a key derived from the conversion, and records the outcome. */
  async #execute(
    conversion: StoredConversion,
    from: BankAccount,
    to: BankAccount,
  ): Promise<StoredConversion> {
    const quote = await findQuote(this.#db, conversion.quoteId);
    if (!quote) throw new Error(`conversion ${conversion.id} names a missing quote`);
    let rejection: string | null = null;
    if (from.status !== 'active') rejection = 'debtor_account_not_active';
    else if (to.status !== 'active') rejection = 'creditor_account_not_active';
    if (rejection === null) {
      const outcome = await this.#ledger.transfer(`conversion:${conversion.id}`, {
        postings: await this.conversionPostings(quote, from.ledgerAccountId, to.ledgerAccountId),
        pending: false,
        expiresAt: null,
        metadata: {
          conversionId: conversion.id,
          quoteId: quote.id,
          reference: `Conversion ${quote.sellCurrency} to ${quote.buyCurrency} at ${quote.rate}`,
          category: 'transfer',
        },
      });
      if (!outcome.ok) {
        // A twin is moving this conversion's money now: recording the outcome is its job.
        if (outcome.code === 'idempotency_key_in_flight') {
          return (await findConversion(this.#db, conversion.id)) ?? conversion;
        }
        rejection = outcome.code;
      }
    }
    const status = rejection ? 'rejected' : 'completed';
    const moved = await finishConversion(
      this.#db,
      conversion.id,
      status,
      rejection,
      this.#now(),
      conversionEvent(conversion, status, rejection),
    );
    return moved ?? ((await findConversion(this.#db, conversion.id)) as StoredConversion);
  }

  async #view(conversion: StoredConversion): Promise<Conversion> {
    const quote = await findQuote(this.#db, conversion.quoteId);
    if (!quote) throw new Error(`conversion ${conversion.id} names a missing quote`);
    return {
      id: conversion.id,
      status: conversion.status,
      fromAccountId: conversion.fromAccountId,
      toAccountId: conversion.toAccountId,
      quote,
      rejectionCode: conversion.rejectionCode,
      createdAt: conversion.createdAt,
    };
  }

  /** Finishes conversions whose process died between recording and moving the money. */
  async recover(): Promise<number> {
    const stale = await staleConversions(
      this.#db,
      new Date(this.#now().getTime() - RECOVER_AFTER_MS),
      RECOVER_BATCH_MAX,
    );
    for (const conversion of stale) await this.#executeStored(conversion);
    return stale.length;
  }

  /** Deletes quotes nobody used, a day after they expired. */
  prune(): Promise<number> {
    return pruneQuotes(this.#db, new Date(this.#now().getTime() - UNUSED_QUOTES_KEPT_MS), PRUNE_BATCH_MAX);
  }

  // ---- the sandbox's treasury -----------------------------------------------------------------------------

  /**
   * The sandbox's stand-in for the treasury's cover deal: the correspondent credits the bank's nostro account
   * in `currency` against the FX position (the deal's other leg is outside the sandbox). Without it a nostro
   * holds nothing, and cross-border payments wait in clearing (deferred by each settlement cycle).
   */
  async fundNostro(key: string, currency: string, amount: ParsedAmount): Promise<TransferOutcome> {
    const outcome = await this.#ledger.transfer(`nostro-funding:${key}`, {
      postings: [
        {
          debitAccountId: await this.#bankAccounts.id('nostro', currency),
          creditAccountId: await this.#bankAccounts.id('fx-position', currency),
          amount,
        },
      ],
      pending: false,
      expiresAt: null,
      metadata: { purpose: 'nostro-funding' },
    });
    if (outcome.ok && !outcome.replayed) {
      await emit(this.#db, this.#now(), {
        type: 'fx.nostro.funded',
        subjectId: outcome.transfer.id,
        payload: { transferId: outcome.transfer.id, currency },
      });
    }
    return outcome;
  }
}

function mayUse(quote: StoredQuote, owner: QuoteOwner): boolean {
  if (owner.kind === 'customer') return quote.clientId === null && quote.customerId === owner.customerId;
  return (
    quote.clientId === owner.clientId && (quote.customerId === null || quote.customerId === owner.customerId)
  );
}

/** Ids and codes only: no amounts a webhook need not carry, no personal data. */
function conversionEvent(conversion: StoredConversion, status: ConversionStatus, code: string | null) {
  return {
    type: `fx.conversion.${status}`,
    subjectId: conversion.id,
    payload: {
      conversionId: conversion.id,
      customerId: conversion.customerId,
      quoteId: conversion.quoteId,
      status,
      ...(code === null ? {} : { code }),
    },
  };
}
