// FX over HTTP: quotes for apps (`/v1/fx/quotes`, scope `payments`) and for customers at the bank's pages
// (`/v1/me/fx/quotes`), customers' conversions between their own accounts (`/v1/me/conversions`), and the
// pacs.008 of a cross-border payment for whoever may see the payment: the app that initiated it, the
// customer who paid, and operators. Apps convert a customer's money under a payment_initiation consent to
// the customer's own account in the other currency (POST /v1/payments with a quoteId): the consent names
// the exact amount and account, which is what the customer must authorise.
import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import { type Static, Type } from 'typebox';
import { customerSession } from '../consents/customer-routes.ts';
import type { CustomerAuth } from '../customer-auth/service.ts';
import type { createGateway } from '../gateway/gateway.ts';
import { type App, scoped } from '../http/app.ts';
import { requireBearerToken } from '../http/auth.ts';
import { CURSOR_POSITION } from '../http/cursor.ts';
import { Problem } from '../http/problems.ts';
import { CurrencyCode, DateTime, Decimal, Nullable, StringEnum, Uuid } from '../http/schemas.ts';
import { readIdempotencyKey } from '../idempotency.ts';
import { AMOUNT_PATTERN, currencyExponent, formatAmount, type ParsedAmount, parseAmount } from '../money.ts';
import type { Payments } from '../payments/service.ts';
import type { Conversion, Fx, Quote, QuoteOwner } from './service.ts';
import type { StoredQuote } from './store.ts';

const Id = Type.String({ pattern: CURSOR_POSITION.uuid.source });
const Currency = Type.String({ pattern: '^[A-Z]{3}$' });
const QuoteBody = Type.Object(
  {
    sellCurrency: Currency,
    buyCurrency: Currency,
    // Exactly one: what leaves the customer's account, or what arrives at the other end.
    sellAmount: Type.Optional(Type.String({ pattern: AMOUNT_PATTERN })),
    buyAmount: Type.Optional(Type.String({ pattern: AMOUNT_PATTERN })),
  },
  { additionalProperties: false },
);
const ConversionBody = Type.Object(
  { fromAccountId: Id, toAccountId: Id, quoteId: Id },
  { additionalProperties: false },
);
const XML = 'application/xml; charset=utf-8';

// Response schemas: Fastify serialises every answer through them (src/http/schemas.ts).
const MoneyView = Type.Object({ amount: Decimal, currency: CurrencyCode });
const RateText = Type.String({
  pattern: '^[0-9]+(\\.[0-9]+)?$',
  description: 'decimal: units of the bought currency per unit of the sold one (at most 11 digits)',
});
const QuoteView = Type.Object(
  {
    id: Uuid,
    status: StringEnum(['open', 'used', 'expired']),
    sell: MoneyView,
    buy: MoneyView,
    fee: MoneyView,
    totalDebit: MoneyView,
    fixedSide: StringEnum(['sell', 'buy']),
    midRate: RateText,
    rate: RateText,
    spreadBps: Type.Integer(),
    feeBps: Type.Integer(),
    rateSource: Type.String(),
    ratesAsOf: DateTime,
    expiresAt: DateTime,
    createdAt: DateTime,
  },
  { description: 'An FX quote: the rate, spread and fee, locked until expiresAt' },
);
/** What a payment or conversion at a quote sold, bought, charged and debited. */
export const QuoteTermsView = Type.Object(
  {
    quoteId: Uuid,
    rate: RateText,
    sold: MoneyView,
    bought: MoneyView,
    fee: MoneyView,
    debited: MoneyView,
  },
  { description: 'The terms of the FX quote it converted at' },
);
const ConversionView = Type.Object(
  {
    id: Uuid,
    status: StringEnum(['received', 'completed', 'rejected']),
    fromAccountId: Uuid,
    toAccountId: Uuid,
    ...QuoteTermsView.properties,
    rejectionCode: Nullable(Type.String()),
    createdAt: DateTime,
  },
  { description: "A conversion between two of the customer's accounts" },
);
const MessageResponse = {
  description: 'The ISO 20022 pacs.008.001.08 sent for the payment',
  content: { 'application/xml': { schema: Type.String() } },
};
const FundingView = Type.Object({ transferId: Uuid }, { description: 'The ledger transfer' });

const money = (minor: bigint, currency: string) => ({
  amount: formatAmount(minor, currencyExponent(currency) ?? 2),
  currency,
});

/** A quote's terms as a payment or conversion shows them: what was sold, bought, charged and debited. */
export function quoteTermsJson(quote: StoredQuote) {
  return {
    quoteId: quote.id,
    rate: quote.rate,
    sold: money(quote.sellAmount, quote.sellCurrency),
    bought: money(quote.buyAmount, quote.buyCurrency),
    fee: money(quote.feeAmount, quote.sellCurrency),
    debited: money(quote.sellAmount + quote.feeAmount, quote.sellCurrency),
  };
}

export function quoteJson(quote: Quote) {
  return {
    id: quote.id,
    status: quote.state,
    sell: money(quote.sellAmount, quote.sellCurrency),
    buy: money(quote.buyAmount, quote.buyCurrency),
    fee: money(quote.feeAmount, quote.sellCurrency),
    totalDebit: money(quote.sellAmount + quote.feeAmount, quote.sellCurrency),
    fixedSide: quote.fixedSide,
    midRate: quote.midRate,
    rate: quote.rate,
    spreadBps: quote.spreadBps,
    feeBps: quote.feeBps,
    rateSource: quote.rateSource,
    ratesAsOf: quote.ratesAsOf.toISOString(),
    expiresAt: quote.expiresAt.toISOString(),
    createdAt: quote.createdAt.toISOString(),
  };
}

export function conversionJson(conversion: Conversion) {
  return {
    id: conversion.id,
    status: conversion.status,
    fromAccountId: conversion.fromAccountId,
    toAccountId: conversion.toAccountId,
    ...quoteTermsJson(conversion.quote),
    rejectionCode: conversion.rejectionCode,
    createdAt: conversion.createdAt.toISOString(),
  };
}

// The schema's pattern admits "0.00" and amounts past what a balance can hold; the ledger's rule, once.
const POSITIVE_AMOUNT = 'must be greater than zero and fit in 63 bits';

/** The one amount the asker fixed, parsed; a 400 naming the field otherwise. */
function fixedAmount(body: { sellAmount?: string; buyAmount?: string }): {
  side: 'sell' | 'buy';
  amount: ParsedAmount;
} {
  if ((body.sellAmount === undefined) === (body.buyAmount === undefined)) {
    const message = 'give exactly one of sellAmount and buyAmount';
    throw new Problem('validation_failed', message, {
      errors: [{ field: '/body/sellAmount', message }],
    });
  }
  const side = body.sellAmount !== undefined ? 'sell' : 'buy';
  const amount = parseAmount(body.sellAmount ?? body.buyAmount ?? '');
  if (!amount) {
    const field = `/body/${side}Amount`;
    throw new Problem('validation_failed', `${field} ${POSITIVE_AMOUNT}`, {
      errors: [{ field, message: POSITIVE_AMOUNT }],
    });
  }
  return { side, amount };
}

function appOwner(request: FastifyRequest): QuoteOwner {
  const access = request.access;
  if (!access) throw new Error('route registered without requireAccess');
  // A token acting for a customer asks for that customer; a client-credentials token for the app itself.
  const customerId = access.subject === access.clientId ? null : access.subject;
  return { kind: 'app', clientId: access.clientId, customerId };
}

async function newQuote(fx: Fx, owner: QuoteOwner, body: Static<typeof QuoteBody>) {
  const outcome = await fx.quote(owner, {
    sellCurrency: body.sellCurrency,
    buyCurrency: body.buyCurrency,
    fixed: fixedAmount(body),
  });
  if (!outcome.ok) throw new Problem(outcome.code, outcome.detail);
  return quoteJson(outcome.quote);
}

async function quoteFound(fx: Fx, owner: QuoteOwner, id: string) {
  const quote = await fx.getQuote(owner, id);
  if (!quote) throw new Problem('not_found', 'no quote with this id');
  return quoteJson(quote);
}

async function messageFound(fx: Fx, visible: boolean, id: string): Promise<string> {
  const xml = visible ? await fx.message(id) : undefined;
  if (!xml) throw new Problem('not_found', 'no cross-border payment with this id has a pacs.008');
  return xml;
}

export function registerFxRoutes(
  app: App,
  services: { fx: Fx; payments: Payments; auth: CustomerAuth },
  gateway: ReturnType<typeof createGateway>,
): void {
  const { fx, payments, auth } = services;
  // FX is part of the payments product: a quote is only ever used to pay.
  const appAccess = gateway('payments', 'payments');

  app.post(
    '/v1/fx/quotes',
    { schema: { body: QuoteBody, response: { 201: QuoteView } }, onRequest: appAccess },
    async (request, reply) => reply.code(201).send(await newQuote(fx, appOwner(request), request.body)),
  );
  app.get(
    '/v1/fx/quotes/:id',
    { schema: { params: Type.Object({ id: Id }), response: { 200: QuoteView } }, onRequest: appAccess },
    async (request) => quoteFound(fx, appOwner(request), request.params.id),
  );
  app.get(
    '/v1/payments/:id/pacs008',
    { schema: { params: Type.Object({ id: Id }), response: { 200: MessageResponse } }, onRequest: appAccess },
    async (request, reply) => {
      const { clientId } = appOwner(request) as { clientId: string };
      const payment = await payments.get({ clientId }, request.params.id);
      return reply.type(XML).send(await messageFound(fx, payment !== undefined, request.params.id));
    },
  );

  scoped(app, (customer) => {
    const signedIn: onRequestHookHandler[] = [customerSession(auth)];
    const ownerOf = (request: FastifyRequest): QuoteOwner => ({
      kind: 'customer',
      customerId: request.customerId as string,
    });
    customer.post(
      '/v1/me/fx/quotes',
      { schema: { body: QuoteBody, response: { 201: QuoteView } }, onRequest: signedIn },
      async (request, reply) => reply.code(201).send(await newQuote(fx, ownerOf(request), request.body)),
    );
    customer.get(
      '/v1/me/fx/quotes/:id',
      { schema: { params: Type.Object({ id: Id }), response: { 200: QuoteView } }, onRequest: signedIn },
      async (request) => quoteFound(fx, ownerOf(request), request.params.id),
    );
    customer.post(
      '/v1/me/conversions',
      { schema: { body: ConversionBody, response: { 201: ConversionView } }, onRequest: signedIn },
      async (request, reply) => {
        const key = readIdempotencyKey(request.headers['idempotency-key'], true);
        const outcome = await fx.convert(request.customerId as string, key, request.body);
        if (!outcome.ok) throw new Problem(outcome.code, outcome.detail);
        if (outcome.replayed) reply.header('idempotent-replayed', 'true');
        return reply.code(201).send(conversionJson(outcome.conversion));
      },
    );
    customer.get(
      '/v1/me/conversions/:id',
      { schema: { params: Type.Object({ id: Id }), response: { 200: ConversionView } }, onRequest: signedIn },
      async (request) => {
        const conversion = await fx.getConversion(request.customerId as string, request.params.id);
        if (!conversion) throw new Problem('not_found', 'no conversion with this id');
        return conversionJson(conversion);
      },
    );
    customer.get(
      '/v1/me/payments/:id/pacs008',
      {
        schema: { params: Type.Object({ id: Id }), response: { 200: MessageResponse } },
        onRequest: signedIn,
      },
      async (request, reply) => {
        const payment = await payments.get({ customerId: request.customerId as string }, request.params.id);
        return reply.type(XML).send(await messageFound(fx, payment !== undefined, request.params.id));
      },
    );
  });
}

/** Operators read any payment's pacs.008; the sandbox also plays the treasury funding the nostro accounts. */
export function registerFxOperatorRoutes(
  app: App,
  fx: Fx,
  options: { adminToken: string; sandbox: boolean },
): void {
  scoped(app, (operator) => {
    operator.addHook('onRequest', requireBearerToken(options.adminToken));
    operator.get(
      '/v1/admin/payments/:id/pacs008',
      { schema: { params: Type.Object({ id: Id }), response: { 200: MessageResponse } } },
      async (request, reply) => reply.type(XML).send(await messageFound(fx, true, request.params.id)),
    );
    if (!options.sandbox) return;

    operator.post(
      '/v1/sandbox/nostro-funding',
      {
        schema: {
          body: Type.Object(
            {
              instructedAmount: Type.Object(
                { amount: Type.String({ pattern: AMOUNT_PATTERN }), currency: Currency },
                { additionalProperties: false },
              ),
            },
            { additionalProperties: false },
          ),
          response: { 201: FundingView },
        },
      },
      async (request, reply) => {
        const key = readIdempotencyKey(request.headers['idempotency-key'], true);
        const { amount: text, currency } = request.body.instructedAmount;
        const exponent = currencyExponent(currency);
        if (exponent === undefined) {
          throw new Problem('unsupported_currency', `${currency} is not an active ISO 4217 currency`);
        }
        const amount = parseAmount(text);
        if (!amount) {
          throw new Problem('validation_failed', `/body/instructedAmount/amount ${POSITIVE_AMOUNT}`, {
            errors: [{ field: '/body/instructedAmount/amount', message: POSITIVE_AMOUNT }],
          });
        }
        if (amount.scale !== exponent) {
          throw new Problem('amount_scale_mismatch', `${currency} amounts have ${exponent} decimals`);
        }
        const outcome = await fx.fundNostro(key, currency, amount);
        // The key is the ledger transfer's: a reuse or a twin in flight is the caller's to see.
        if (!outcome.ok) throw new Problem(outcome.code);
        if (outcome.replayed) reply.header('idempotent-replayed', 'true');
        return reply.code(201).send({ transferId: outcome.transfer.id });
      },
    );
  });
}
