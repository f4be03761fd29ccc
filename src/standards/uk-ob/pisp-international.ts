// UK Open Banking Read/Write v4.0, Payment Initiation API: international payment consents and payments over
// the bank's FX quotes and cross-border payments (src/fx/, src/payments/). The contract is the official file
// (specs/uk-open-banking-v4.0/payment-initiation-openapi.yaml), so these routes stay out of /openapi.json.
//
// What the customer authorises is what their account is debited. The bank's consent page offers only
// accounts in the consent's currency, and a quote holds its rate for 30 seconds, far less than an
// authorisation takes. So the consent is in the customer's own currency, the one sold: the Initiation's
// InstructedAmount is the amount that leaves the account, CurrencyOfTransfer the one bought. Creating the
// consent takes an indicative quote for exactly that sale: it proves the pair is quoted and gives the
// bank's fee, which depends only on the amount sold and is disclosed in Charges and kept in the consent
// beside the amount. The payment takes a fresh quote selling exactly the amount authorised, at the rate of
// that moment (RateType Actual; Indicative gives the consent-time rate as indicative only), and is paid
// only if its fee is the one authorised: the debit is the amount plus the fee, exactly as consented. What
// would make the debit unknown when the customer authorises is refused with a 400: an amount fixed in the
// currency of transfer, and an Agreed rate (the bank has no FX contracts outliving a 30-second quote).
import { isDeepStrictEqual } from 'node:util';
import { Type } from 'typebox';
import type { Accounts } from '../../accounts/service.ts';
import type { Consents } from '../../consents/service.ts';
import type { Consent } from '../../consents/store.ts';
import type { Db } from '../../db/db.ts';
import type { Fx, FxProblem } from '../../fx/service.ts';
import type { StoredQuote } from '../../fx/store.ts';
import type { createGateway } from '../../gateway/gateway.ts';
import { type App, scoped } from '../../http/app.ts';
import { currencyExponent, formatAmount, type Minor, parseAmount } from '../../money.ts';
import type { Payment, PaymentProblem, Payments } from '../../payments/service.ts';
import { managingApp } from './access.ts';
import { OB_ERROR_CODES, ObError, useObConventions } from './errors.ts';
import { type MessageSigning, signedMessages } from './jws.ts';
import {
  bankTerms,
  CONSENT_STATUS,
  idempotencyKeyOf,
  type ObInitiation,
  PISP_PREFIX,
  payerContext,
  paymentConsentReads,
  paymentError,
  paymentReads,
  paymentStatus,
  recordPaymentConsent,
} from './pisp.ts';

// The consent's details hold this: a domestic payment consent (`obInitiation`) is not one of these.
const MARKER = 'obInternationalInitiation';
// The bank's fee on a conversion, in the namespace the specification leaves to each bank for its own
// charge types (OBInternalPaymentChargeType1Code is a namespaced enum).
const FX_FEE_CHARGE_TYPE = 'UK.APIBANK.FXFee';

const Text = (maxLength: number) => Type.String({ minLength: 1, maxLength });
const Amount = Type.Object(
  {
    Amount: Type.String({ pattern: '^\\d{1,13}$|^\\d{1,13}\\.\\d{1,5}$' }),
    Currency: Type.String({ pattern: '^[A-Z]{3}$' }),
  },
  { additionalProperties: false },
);
// The fields the bank honours are typed; the specification's others pass the schema and are refused by name.
const Initiation = Type.Object(
  {
    InstructionIdentification: Text(35),
    EndToEndIdentification: Text(35),
    CurrencyOfTransfer: Type.String({ pattern: '^[A-Z]{3}$' }),
    InstructedAmount: Amount,
    ExchangeRateInformation: Type.Optional(
      Type.Object(
        {
          UnitCurrency: Type.String({ pattern: '^[A-Z]{3}$' }),
          RateType: Type.Union([Type.Literal('Actual'), Type.Literal('Agreed'), Type.Literal('Indicative')]),
        },
        { additionalProperties: true },
      ),
    ),
    CreditorAccount: Type.Object(
      { SchemeName: Type.String(), Identification: Text(256), Name: Text(350) },
      { additionalProperties: true },
    ),
    Creditor: Type.Optional(Type.Object({}, { additionalProperties: true })),
    RemittanceInformation: Type.Optional(
      Type.Object({ Unstructured: Type.Optional(Type.Array(Text(140))) }, { additionalProperties: true }),
    ),
  },
  { additionalProperties: true },
);
const Risk = Type.Record(Type.String(), Type.Unknown());
const NewConsent = Type.Object({ Data: Type.Object({ Initiation }, { additionalProperties: true }), Risk });
const NewPayment = Type.Object({
  Data: Type.Object({ ConsentId: Text(128), Initiation }, { additionalProperties: false }),
  Risk,
});
const Hidden = { hide: true } as const;
const IdempotencyHeaders = Type.Object({ 'x-idempotency-key': Type.Optional(Type.String()) });

type IntlInitiation = ObInitiation & {
  CurrencyOfTransfer: string;
  ExchangeRateInformation?: Record<string, unknown> & { UnitCurrency: string; RateType: string };
  Creditor?: Record<string, unknown>;
};

/** What the consent keeps beside the bank's own terms (instructedAmount, creditor, reference). */
interface IntlTerms {
  obInternationalInitiation: IntlInitiation;
  obRisk: Record<string, unknown>;
  /** The bank's fee for the sale, in the sold currency: authorised with the amount, checked at payment. */
  fxFee: { amount: string; currency: string };
  /** The consent-time quote: its rate is the indicative one. */
  indicativeQuote: { id: string; rate: string; expiresAt: string };
}

export function registerUkObPispInternationalRoutes(
  app: App,
  deps: {
    db: Db;
    consents: Consents;
    payments: Payments;
    accounts: Accounts;
    fx: Fx;
  } & MessageSigning,
  gateway: ReturnType<typeof createGateway>,
): void {
  const { db, consents, payments, accounts, fx, publicUrl } = deps;
  const self = (path: string) => `${publicUrl}${PISP_PREFIX}${path}`;

  scoped(app, (scope) => {
    useObConventions(scope);
    const signed = signedMessages(scope, deps);

    const { grantOf } = paymentConsentReads(scope, gateway, {
      ...deps,
      resource: '/international-payment-consents',
      marker: MARKER,
      what: 'an international payment consent',
      self,
      consentJson,
      // What the payment will debit: the amount authorised and the fee, both in the account's currency.
      debitOf,
    });

    scope.post(
      `${PISP_PREFIX}/international-payment-consents`,
      {
        schema: { ...Hidden, body: NewConsent, headers: IdempotencyHeaders },
        onRequest: gateway('consents'),
        preValidation: signed,
      },
      async (request, reply) => {
        const clientId = managingApp(request, 'payments', 'payment consents');
        const key = idempotencyKeyOf(request.headers['x-idempotency-key']);
        const data = request.body.Data as Record<string, unknown> & { Initiation: IntlInitiation };
        const initiation = data.Initiation;
        refuseUnsupported(data);
        const terms = intlTerms(initiation);
        // The indicative quote for exactly this sale: the pair is quoted, and the fee is known to the customer.
        const quoted = await fx.quote(
          { kind: 'app', clientId, customerId: null },
          {
            sellCurrency: terms.instructedAmount.currency,
            buyCurrency: initiation.CurrencyOfTransfer,
            fixed: { side: 'sell', amount: terms.amount },
          },
        );
        if (!quoted.ok) throw quoteError(quoted.code, quoted.detail);
        const quote = quoted.quote;
        const details: IntlTerms & Record<string, unknown> = {
          instructedAmount: terms.instructedAmount,
          creditor: terms.creditor,
          ...(terms.reference !== undefined && { reference: terms.reference }),
          // What the consent page names besides the amount: the currency bought and the fee.
          buyCurrency: initiation.CurrencyOfTransfer,
          obInternationalInitiation: initiation,
          obRisk: request.body.Risk,
          fxFee: feeOf(quote),
          indicativeQuote: {
            id: quote.id,
            rate: quote.rate,
            expiresAt: quote.expiresAt.toISOString(),
          },
        };
        const outcome = await recordPaymentConsent(
          db,
          consents,
          { scope: 'uk-ob-pisp-international-consent', clientId, key, body: request.body },
          details,
          (consent) => consentJson(consent, self(`/international-payment-consents/${consent.id}`)),
        );
        return reply.code(outcome.statusCode).send(outcome.body);
      },
    );

    scope.post(
      `${PISP_PREFIX}/international-payments`,
      {
        schema: { ...Hidden, body: NewPayment, headers: IdempotencyHeaders },
        onRequest: gateway('payments', 'payments'),
        preValidation: signed,
      },
      async (request, reply) => {
        const key = idempotencyKeyOf(request.headers['x-idempotency-key']);
        const data = request.body.Data;
        const { clientId, customerId, consent } = grantOf(request, data.ConsentId);
        const details = consent.details as unknown as IntlTerms & {
          instructedAmount: { amount: string; currency: string };
          creditor: { name: string; iban: string };
          reference?: string;
        };
        // Dynamic linking, the specification's way: the Initiation is the consent's, field for field.
        if (!isDeepStrictEqual(data.Initiation, details.obInternationalInitiation)) {
          throw ObError.of(
            400,
            OB_ERROR_CODES.fieldInvalid,
            'the Initiation differs from the one in the consent the customer authorised',
            'Data.Initiation',
          );
        }
        const initiator = { kind: 'app', clientId, customerId, consent } as const;
        const instruction = {
          instructedAmount: details.instructedAmount,
          creditor: details.creditor,
          ...(details.reference !== undefined && { reference: details.reference }),
        };
        // A retry under the same key answers with the first payment (made at its own quote) before a new
        // quote is taken; the same key for another payment is the service's refusal.
        const earlier = await payments.madeUnder(initiator, key);
        const quoteId = earlier?.quote?.id ?? (await paymentQuote(consent, customerId, clientId)).id;
        const outcome = await payments.initiate(
          initiator,
          key,
          { ...instruction, quoteId },
          payerContext(request),
        );
        if (!outcome.ok) throw refusedPayment(outcome.code, outcome.detail);
        return reply.code(201).send(paymentJson(outcome.payment, consent, self));
      },
    );

    /** The quote the payment converts at: selling exactly the amount authorised, for the fee authorised. */
    const paymentQuote = async (consent: Consent, customerId: string, clientId: string) => {
      if (consent.status !== 'authorised') throw refusedPayment('consent_not_active', undefined);
      const details = consent.details as unknown as IntlTerms & {
        instructedAmount: { amount: string; currency: string };
      };
      const accountId = consent.accountIds?.[0];
      const account = accountId ? await accounts.findForCustomer(customerId, accountId) : undefined;
      const amount = parseAmount(details.instructedAmount.amount);
      if (!account || !amount) {
        throw ObError.of(400, OB_ERROR_CODES.narrative, 'the consented account no longer exists');
      }
      const quoted = await fx.quote(
        { kind: 'app', clientId, customerId },
        {
          sellCurrency: account.currency,
          buyCurrency: details.obInternationalInitiation.CurrencyOfTransfer,
          fixed: { side: 'sell', amount },
        },
      );
      if (!quoted.ok) throw quoteError(quoted.code, quoted.detail);
      const fee = feeOf(quoted.quote);
      if (!isDeepStrictEqual(fee, details.fxFee)) {
        // Nothing is debited but what the customer saw: a changed fee needs a new authorisation.
        throw ObError.of(
          400,
          OB_ERROR_CODES.narrative,
          `the bank's fee is now ${fee.amount} ${fee.currency}, not the ${details.fxFee.amount} ${details.fxFee.currency} the customer authorised: create a new consent`,
        );
      }
      return quoted.quote;
    };

    paymentReads(scope, gateway, {
      ...deps,
      resource: '/international-payments',
      idParam: 'InternationalPaymentId',
      marker: MARKER,
      what: 'international payment',
      self,
      paymentJson,
    });
  });
}

// The payment statuses of OBWriteInternationalResponse5, which has no RCVD: a payment just received is
// pending.
function statusOf(status: Payment['status'], type: Payment['type']): string {
  const ob = paymentStatus(status, type);
  return ob === 'RCVD' ? 'PDNG' : ob;
}

/**
 * The payment service's refusals in the statuses CreateInternationalPayments declares, which has no 409: a
 * consent used up is U009 (Resource.InvalidConsentStatus), a key reused for another payment U006.
 */
function refusedPayment(code: PaymentProblem, detail: string | undefined): ObError {
  if (code === 'consent_not_active') {
    return ObError.of(
      400,
      OB_ERROR_CODES.resourceInvalidConsentStatus,
      'the consent was already used, revoked or has lapsed',
      'Data.ConsentId',
    );
  }
  if (code === 'idempotency_key_reused') {
    return ObError.of(
      400,
      OB_ERROR_CODES.headerInvalid,
      'this x-idempotency-key was used for another request',
    );
  }
  return paymentError(code, detail);
}

const refusal = (message: string, path: string) =>
  ObError.of(400, OB_ERROR_CODES.fieldInvalid, message, path);

// The Initiation's fields the bank carries into the payment (or checks), and those of its creditor's.
const HONOURED = new Set([
  'InstructionIdentification',
  'EndToEndIdentification',
  'CurrencyOfTransfer',
  'InstructedAmount',
  'ExchangeRateInformation',
  'CreditorAccount',
  'Creditor',
  'RemittanceInformation',
  'ChargeBearer',
  'DestinationCountryCode',
]);

/** The specification's fields this bank does not honour, refused by name before anything exists. */
function refuseUnsupported(data: Record<string, unknown> & { Initiation: IntlInitiation }): void {
  const initiation = data.Initiation;
  const refused = [
    ...Object.keys(data)
      .filter((name) => name !== 'Initiation' && !(name === 'ReadRefundAccount' && data[name] === 'No'))
      .map((name) => `Data.${name}`),
    ...Object.keys(initiation)
      .filter((name) => !HONOURED.has(name))
      .map((name) => `Data.Initiation.${name}`),
    ...Object.keys(initiation.CreditorAccount)
      .filter((name) => !['SchemeName', 'Identification', 'Name'].includes(name))
      .map((name) => `Data.Initiation.CreditorAccount.${name}`),
    ...Object.keys(initiation.Creditor ?? {})
      .filter((name) => name !== 'Name')
      .map((name) => `Data.Initiation.Creditor.${name}`),
    ...Object.keys(initiation.RemittanceInformation ?? {})
      .filter((name) => name !== 'Unstructured')
      .map((name) => `Data.Initiation.RemittanceInformation.${name}`),
  ];
  if (refused.length > 0) {
    // The creditor's bank is the one its IBAN names; the pacs.008 names no agent, so none is taken here.
    const why = refused[0] === 'Data.Initiation.CreditorAgent' ? ' (the IBAN names the creditor’s bank)' : '';
    throw refusal(`not offered by this bank: ${refused.join(', ')}${why}`, refused[0] as string);
  }
}

/**
 * The Initiation in the bank's terms: the amount sold from the customer's account, the currency bought, the
 * creditor and reference (pisp.ts bankTerms), and the exchange rate terms the bank can honour exactly.
 */
function intlTerms(initiation: IntlInitiation) {
  const terms = bankTerms(initiation);
  const sold = terms.instructedAmount.currency;
  const bought = initiation.CurrencyOfTransfer;
  if (currencyExponent(bought) === undefined) {
    return refuseWith(`${bought} is not a currency this bank pays in`, 'Data.Initiation.CurrencyOfTransfer');
  }
  if (bought === sold) {
    return refuseWith(
      'InstructedAmount is the amount taken from the customer’s account, in its currency, which must differ from CurrencyOfTransfer: an amount fixed in the currency of transfer would leave the amount debited unknown when the customer authorises',
      'Data.Initiation.InstructedAmount.Currency',
    );
  }
  const rate = initiation.ExchangeRateInformation;
  if (rate) {
    if (rate.RateType === 'Agreed') {
      return refuseWith(
        'no Agreed rates: the bank holds a rate for 30 seconds, less than an authorisation takes; ask for Actual or Indicative',
        'Data.Initiation.ExchangeRateInformation.RateType',
      );
    }
    for (const name of ['ExchangeRate', 'ContractIdentification']) {
      if (rate[name] !== undefined) {
        throw ObError.of(
          400,
          OB_ERROR_CODES.fieldUnexpected,
          `${name} is not given with an ${rate.RateType} rate: the bank sets the rate`,
          `Data.Initiation.ExchangeRateInformation.${name}`,
        );
      }
    }
    if (rate.UnitCurrency !== sold) {
      return refuseWith(
        `rates are quoted per unit of the currency sold, ${sold}`,
        'Data.Initiation.ExchangeRateInformation.UnitCurrency',
      );
    }
  }
  const creditorName = initiation.Creditor?.Name;
  if (creditorName !== undefined && creditorName !== terms.creditor.name) {
    return refuseWith(
      'the creditor is named once here: Creditor.Name, when given, is CreditorAccount.Name',
      'Data.Initiation.Creditor.Name',
    );
  }
  // The bank's fee is the debtor's; the creditor receives the whole amount bought (pacs.008 ChrgBr DEBT).
  if (initiation.ChargeBearer !== undefined && initiation.ChargeBearer !== 'BorneByDebtor') {
    return refuseWith('the debtor bears the charges here (BorneByDebtor)', 'Data.Initiation.ChargeBearer');
  }
  const country = initiation.DestinationCountryCode;
  const ibanCountry = terms.creditor.iban.replace(/\s/g, '').slice(0, 2).toUpperCase();
  if (country !== undefined && country !== ibanCountry) {
    return refuseWith(
      `the creditor's IBAN is domiciled in ${ibanCountry}`,
      'Data.Initiation.DestinationCountryCode',
    );
  }
  const amount = parseAmount(terms.instructedAmount.amount);
  if (!amount) throw new Error('bankTerms passed an amount it cannot parse');
  return { ...terms, amount };
}

function refuseWith(message: string, path: string): never {
  throw refusal(message, path);
}

/** FX's refusals of a quote, at consent or at payment, in the facade's 400s. */
function quoteError(code: FxProblem, detail: string | undefined): ObError {
  const message = detail ? `${code}: ${detail}` : code;
  if (code === 'quote_amount_out_of_range' || code === 'amount_scale_mismatch') {
    return refusal(message, 'Data.Initiation.InstructedAmount.Amount');
  }
  return refusal(message, 'Data.Initiation.CurrencyOfTransfer');
}

function feeOf(quote: StoredQuote): { amount: string; currency: string } {
  return {
    amount: formatAmount(quote.feeAmount, currencyExponent(quote.sellCurrency) ?? 2),
    currency: quote.sellCurrency,
  };
}

/** What the payment will debit: the amount authorised and the fee authorised, in the sold currency. */
function debitOf(consent: Consent): { currency: string; minor: Minor } | undefined {
  const details = consent.details as unknown as IntlTerms & {
    instructedAmount: { amount: string; currency: string };
  };
  const amount = parseAmount(details.instructedAmount.amount);
  const fee = parseAmount(details.fxFee.amount);
  if (!amount || !fee || details.fxFee.currency !== details.instructedAmount.currency) return undefined;
  return { currency: details.instructedAmount.currency, minor: (amount.minor + fee.minor) as Minor };
}

function chargesOf(fee: { amount: string; currency: string }) {
  return [
    {
      ChargeBearer: 'BorneByDebtor',
      Type: FX_FEE_CHARGE_TYPE,
      Amount: { Amount: fee.amount, Currency: fee.currency },
    },
  ];
}

function consentJson(consent: Consent, selfUrl: string) {
  const terms = consent.details as unknown as IntlTerms;
  const initiation = terms.obInternationalInitiation;
  const indicative = initiation.ExchangeRateInformation?.RateType === 'Indicative';
  return {
    Data: {
      ConsentId: consent.id,
      CreationDateTime: consent.createdAt.toISOString(),
      Status: CONSENT_STATUS[consent.status],
      StatusUpdateDateTime: consent.statusUpdatedAt.toISOString(),
      Charges: chargesOf(terms.fxFee),
      // An Actual rate is the one of the moment of payment: there is none to give yet.
      ...(indicative && {
        ExchangeRateInformation: {
          UnitCurrency: initiation.InstructedAmount.Currency,
          ExchangeRate: Number(terms.indicativeQuote.rate),
          RateType: 'Indicative',
        },
      }),
      Initiation: initiation,
    },
    Risk: terms.obRisk ?? {},
    Links: { Self: selfUrl },
    Meta: {},
  };
}

function paymentJson(payment: Payment, consent: Consent, self: (path: string) => string) {
  const terms = consent.details as unknown as IntlTerms;
  const updated = payment.statusHistory.at(-1)?.at ?? payment.createdAt.toISOString();
  const quote = payment.quote;
  return {
    Data: {
      InternationalPaymentId: payment.id,
      ConsentId: consent.id,
      CreationDateTime: payment.createdAt.toISOString(),
      Status: statusOf(payment.status, payment.type),
      StatusUpdateDateTime: new Date(updated).toISOString(),
      ...(payment.rejectionCode && {
        StatusReason: [
          { StatusReasonCode: 'NARR', StatusReasonDescription: payment.rejectionCode.slice(0, 500) },
        ],
      }),
      ...(quote && {
        Charges: chargesOf(feeOf(quote)),
        // The rate the payment converted at: units of the currency bought per unit sold.
        ExchangeRateInformation: {
          UnitCurrency: quote.sellCurrency,
          ExchangeRate: Number(quote.rate),
          RateType: 'Actual',
        },
      }),
      Initiation: terms.obInternationalInitiation,
    },
    Links: { Self: self(`/international-payments/${payment.id}`) },
    Meta: {},
  };
}
