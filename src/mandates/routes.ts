// Mandates over HTTP. The merchant app (its own access token, scope `payments`) proposes a mandate, charges it
// and refunds charges (`/v1/mandates`); the customer, signed in at the bank, sees and revokes their mandates
// (`/v1/me/mandates`). Another app's or another customer's mandate does not exist for the caller (404).
import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import { Type } from 'typebox';
import { customerSession } from '../consents/customer-routes.ts';
import type { CustomerAuth } from '../customer-auth/service.ts';
import type { createGateway } from '../gateway/gateway.ts';
import { type App, scoped } from '../http/app.ts';
import { CURSOR_POSITION, decodeCursor, encodeCursor, PageLimit, pageLimit } from '../http/cursor.ts';
import { Problem } from '../http/problems.ts';
import {
  CurrencyCode,
  DateTime,
  Decimal,
  NextCursor,
  NoContent,
  Nullable,
  StringEnum,
  Uuid,
} from '../http/schemas.ts';
import { readIdempotencyKey } from '../idempotency.ts';
import { PAYMENT_POINTS_FIELDS } from '../loyalty/routes.ts';
import { AMOUNT_PATTERN, currencyExponent, formatAmount } from '../money.ts';
import { parseTimestamp, TIMESTAMP_PATTERN } from '../time.ts';
import { PERIODS } from './periods.ts';
import {
  CHARGES_PAGE_MAX,
  type Charge,
  MANDATES_PAGE_MAX,
  type Mandate,
  type Mandates,
  type PeriodUsage,
  type Reader,
  type Refund,
  type Refusal,
} from './service.ts';

const Id = Type.String({ pattern: CURSOR_POSITION.uuid.source });
const MandateParams = Type.Object({ id: Id });
const ChargeParams = Type.Object({ id: Id, chargeId: Id });
const Currency = Type.String({ pattern: '^[A-Z]{3}$' });
const Amount = Type.String({ pattern: AMOUNT_PATTERN });
const InstructedAmount = Type.Object({ amount: Amount, currency: Currency }, { additionalProperties: false });
const PageQuery = Type.Object(
  { limit: Type.Optional(PageLimit), cursor: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: false },
);

const MandateBody = Type.Object(
  {
    currency: Currency,
    maxPerCharge: Amount,
    periodicLimits: Type.Array(
      Type.Object(
        { period: Type.Union(PERIODS.map((period) => Type.Literal(period))), maxAmount: Amount },
        { additionalProperties: false },
      ),
      {
        minItems: 1,
        maxItems: PERIODS.length,
        description: 'At most one per period: day, week, month (UTC)',
      },
    ),
    creditor: Type.Object(
      {
        // No control characters: the name is shown on the consent page, and NUL is what PostgreSQL's jsonb
        // (the consent's details) refuses.
        name: Type.String({ minLength: 1, maxLength: 140, pattern: '^[^\\u0000-\\u001f\\u007f]+$' }),
        iban: Type.String({ minLength: 15, maxLength: 42, pattern: '^[A-Za-z0-9 ]+$' }),
      },
      { additionalProperties: false },
    ),
    expiresAt: Type.String({ pattern: TIMESTAMP_PATTERN }),
  },
  { additionalProperties: false },
);
const ChargeBody = Type.Object(
  {
    instructedAmount: InstructedAmount,
    reference: Type.Optional(Type.String({ minLength: 1, maxLength: 140 })),
    // As on a payment: the mandate's limits still count the whole amount.
    ...PAYMENT_POINTS_FIELDS,
  },
  { additionalProperties: false },
);
const RefundBody = Type.Object({ instructedAmount: InstructedAmount }, { additionalProperties: false });

// What the routes answer: every property the JSON builders below return, and nothing else.
const MoneyView = Type.Object({ amount: Decimal, currency: CurrencyCode });
const MandateView = Type.Object(
  {
    id: Uuid,
    clientId: Uuid,
    status: StringEnum(['awaiting_authorisation', 'authorised', 'rejected', 'revoked', 'expired'], {
      description: "the mandate's consent's status",
    }),
    currency: CurrencyCode,
    maxPerCharge: Decimal,
    periodicLimits: Type.Array(
      Type.Object({
        period: StringEnum(PERIODS, { description: 'calendar day, ISO week or calendar month, in UTC' }),
        maxAmount: Decimal,
        periodStart: Type.Optional(DateTime),
        periodEnd: Type.Optional(DateTime),
        charged: Type.Optional(Decimal),
        remaining: Type.Optional(Decimal),
      }),
    ),
    creditor: Type.Object({ name: Type.String(), iban: Type.String() }),
    debtorAccountId: Nullable(Uuid),
    expiresAt: DateTime,
    createdAt: DateTime,
    statusUpdatedAt: DateTime,
  },
  { description: 'A mandate; periodicLimits show the current period when one mandate is read' },
);
const ChargeView = Type.Object(
  {
    id: Uuid,
    mandateId: Uuid,
    paymentId: Uuid,
    status: StringEnum(['pending', 'succeeded', 'failed']),
    failureCode: Nullable(Type.String()),
    instructedAmount: MoneyView,
    refunded: Decimal,
    reference: Nullable(Type.String()),
    createdAt: DateTime,
    updatedAt: DateTime,
  },
  { description: 'A charge under a mandate' },
);
const RefundView = Type.Object(
  {
    id: Uuid,
    chargeId: Uuid,
    mandateId: Uuid,
    status: StringEnum(['pending', 'succeeded', 'failed']),
    failureCode: Nullable(Type.String()),
    instructedAmount: MoneyView,
    createdAt: DateTime,
    updatedAt: DateTime,
  },
  { description: 'A refund of a charge' },
);
const ChargeWithRefunds = Type.Object({ ...ChargeView.properties, refunds: Type.Array(RefundView) });
const ChargePage = Type.Object({ charges: Type.Array(ChargeView), nextCursor: NextCursor });
const MandatePage = Type.Object({ mandates: Type.Array(MandateView), nextCursor: NextCursor });
const CustomerMandateView = Type.Object({
  ...MandateView.properties,
  charges: Type.Array(ChargeView, { description: 'the latest charges, newest first' }),
  chargesNextCursor: NextCursor,
});

const MANDATES_CURSOR = 'md';
const CHARGES_CURSOR = 'mc';
// The customer's view of one mandate shows its latest charges; older ones page through /charges.
const CHARGES_IN_MANDATE_VIEW = 20;

const money = (minor: bigint, currency: string) => formatAmount(minor, currencyExponent(currency) ?? 2);

export function mandateJson(mandate: Mandate, usage: readonly PeriodUsage[] = []) {
  return {
    id: mandate.id,
    clientId: mandate.clientId,
    status: mandate.status,
    currency: mandate.currency,
    maxPerCharge: money(mandate.maxPerCharge, mandate.currency),
    periodicLimits: mandate.periodicLimits.map(({ period, max }) => {
      const now = usage.find((used) => used.period === period);
      return {
        period,
        maxAmount: money(max, mandate.currency),
        // Where the current calendar period (UTC) stands, in the views of one mandate.
        ...(now && {
          periodStart: now.start.toISOString(),
          periodEnd: now.end.toISOString(),
          charged: money(now.charged, mandate.currency),
          remaining: money(max - now.charged, mandate.currency),
        }),
      };
    }),
    creditor: mandate.creditor,
    debtorAccountId: mandate.debtorAccountId,
    expiresAt: mandate.expiresAt.toISOString(),
    createdAt: mandate.createdAt.toISOString(),
    statusUpdatedAt: mandate.statusUpdatedAt.toISOString(),
  };
}

export function chargeJson(charge: Charge) {
  return {
    id: charge.id,
    mandateId: charge.mandateId,
    paymentId: charge.paymentId,
    status: charge.status,
    failureCode: charge.failureCode,
    instructedAmount: { amount: money(charge.amount, charge.currency), currency: charge.currency },
    refunded: money(charge.refunded, charge.currency),
    reference: charge.reference,
    createdAt: charge.createdAt.toISOString(),
    updatedAt: charge.updatedAt.toISOString(),
  };
}

export function refundJson(refund: Refund, currency: string) {
  return {
    id: refund.id,
    chargeId: refund.chargeId,
    mandateId: refund.mandateId,
    status: refund.status,
    failureCode: refund.failureCode,
    instructedAmount: { amount: money(refund.amount, currency), currency },
    createdAt: refund.createdAt.toISOString(),
    updatedAt: refund.updatedAt.toISOString(),
  };
}

function problemOf(refusal: Refusal): Problem {
  if (refusal.code === 'validation_failed') {
    return new Problem('validation_failed', refusal.detail, {
      errors: [{ field: refusal.field ?? '/body', message: refusal.detail ?? 'is not valid' }],
    });
  }
  if (refusal.code === 'mandate_limit_exceeded') {
    return new Problem('mandate_limit_exceeded', refusal.detail, { limit: refusal.limit });
  }
  return new Problem(refusal.code, refusal.detail);
}

const notFound = () => new Problem('not_found', 'no mandate with this id');

function clientOf(request: FastifyRequest): { clientId: string } {
  if (!request.access) throw new Error('route registered without requireAccess');
  return { clientId: request.access.clientId };
}

/** A page of charges, newest first, for whoever may read the mandate. */
async function chargesPage(
  mandates: Mandates,
  reader: Reader,
  mandateId: string,
  query: { limit?: string | undefined; cursor?: string | undefined },
  fallback: number,
) {
  const limit = pageLimit(query.limit, fallback, CHARGES_PAGE_MAX);
  const beforeId =
    query.cursor === undefined ? undefined : decodeCursor(query.cursor, CHARGES_CURSOR, CURSOR_POSITION.uuid);
  const charges = await mandates.charges(reader, mandateId, beforeId, limit + 1);
  if (!charges) throw notFound();
  const page = charges.slice(0, limit);
  const last = page.at(-1);
  return {
    charges: page.map(chargeJson),
    nextCursor: charges.length > limit && last ? encodeCursor(CHARGES_CURSOR, last.id) : null,
  };
}

async function chargeWithRefundsJson(
  mandates: Mandates,
  reader: Reader,
  mandateId: string,
  chargeId: string,
) {
  const found = await mandates.chargeWithRefunds(reader, mandateId, chargeId);
  if (!found) throw new Problem('not_found', 'no charge with this id under this mandate');
  return {
    ...chargeJson(found.charge),
    refunds: found.refunds.map((refund) => refundJson(refund, found.charge.currency)),
  };
}

export function registerMandateRoutes(
  app: App,
  services: { mandates: Mandates; auth: CustomerAuth },
  gateway: ReturnType<typeof createGateway>,
): void {
  const { mandates, auth } = services;
  const merchant = gateway('payments', 'payments');

  app.post(
    '/v1/mandates',
    {
      schema: { body: MandateBody, response: { 201: MandateView } },
      onRequest: merchant,
      config: { idempotent: true },
    },
    async (request, reply) => {
      const { expiresAt: expiresText, ...terms } = request.body;
      const expiresAt = parseTimestamp(expiresText);
      if (!expiresAt) {
        throw new Problem('validation_failed', '/body/expiresAt is not a date and time that exists', {
          errors: [{ field: '/body/expiresAt', message: 'is not a date and time that exists' }],
        });
      }
      const outcome = await mandates.create(clientOf(request).clientId, { ...terms, expiresAt });
      if (!outcome.ok) throw problemOf(outcome);
      return reply.code(201).send(mandateJson(outcome.mandate));
    },
  );

  app.get(
    '/v1/mandates/:id',
    { schema: { params: MandateParams, response: { 200: MandateView } }, onRequest: merchant },
    async (request) => {
      const mandate = await mandates.get(clientOf(request), request.params.id);
      if (!mandate) throw notFound();
      return mandateJson(mandate, await mandates.usage(mandate));
    },
  );

  app.post(
    '/v1/mandates/:id/charges',
    {
      schema: { params: MandateParams, body: ChargeBody, response: { 201: ChargeView } },
      onRequest: merchant,
    },
    async (request, reply) => {
      const key = readIdempotencyKey(request.headers['idempotency-key'], true);
      const outcome = await mandates.charge(clientOf(request).clientId, request.params.id, key, request.body);
      if (!outcome.ok) throw problemOf(outcome);
      if (outcome.replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(201).send(chargeJson(outcome.charge));
    },
  );

  app.get(
    '/v1/mandates/:id/charges',
    {
      schema: { params: MandateParams, querystring: PageQuery, response: { 200: ChargePage } },
      onRequest: merchant,
    },
    async (request) => chargesPage(mandates, clientOf(request), request.params.id, request.query, 50),
  );

  app.get(
    '/v1/mandates/:id/charges/:chargeId',
    { schema: { params: ChargeParams, response: { 200: ChargeWithRefunds } }, onRequest: merchant },
    async (request) =>
      chargeWithRefundsJson(mandates, clientOf(request), request.params.id, request.params.chargeId),
  );

  app.post(
    '/v1/mandates/:id/charges/:chargeId/refunds',
    {
      schema: { params: ChargeParams, body: RefundBody, response: { 201: RefundView } },
      onRequest: merchant,
    },
    async (request, reply) => {
      const key = readIdempotencyKey(request.headers['idempotency-key'], true);
      const outcome = await mandates.refund(
        clientOf(request).clientId,
        request.params.id,
        request.params.chargeId,
        key,
        request.body,
      );
      if (!outcome.ok) throw problemOf(outcome);
      if (outcome.replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(201).send(refundJson(outcome.refund, request.body.instructedAmount.currency));
    },
  );

  scoped(app, (customer) => {
    const signedIn: onRequestHookHandler[] = [customerSession(auth)];
    const customerOf = (request: FastifyRequest) => ({ customerId: request.customerId as string });

    customer.get(
      '/v1/me/mandates',
      { schema: { querystring: PageQuery, response: { 200: MandatePage } }, onRequest: signedIn },
      async (request) => {
        const limit = pageLimit(request.query.limit, MANDATES_PAGE_MAX, MANDATES_PAGE_MAX);
        const afterId =
          request.query.cursor === undefined
            ? undefined
            : decodeCursor(request.query.cursor, MANDATES_CURSOR, CURSOR_POSITION.uuid);
        const list = await mandates.listForCustomer(customerOf(request).customerId, afterId, limit + 1);
        const page = list.slice(0, limit);
        const last = page.at(-1);
        return {
          mandates: page.map((mandate) => mandateJson(mandate)),
          nextCursor: list.length > limit && last ? encodeCursor(MANDATES_CURSOR, last.id) : null,
        };
      },
    );

    customer.get(
      '/v1/me/mandates/:id',
      { schema: { params: MandateParams, response: { 200: CustomerMandateView } }, onRequest: signedIn },
      async (request) => {
        const reader = customerOf(request);
        const mandate = await mandates.get(reader, request.params.id);
        if (!mandate) throw notFound();
        const charges = await chargesPage(mandates, reader, mandate.id, {}, CHARGES_IN_MANDATE_VIEW);
        return {
          ...mandateJson(mandate, await mandates.usage(mandate)),
          charges: charges.charges,
          chargesNextCursor: charges.nextCursor,
        };
      },
    );

    customer.get(
      '/v1/me/mandates/:id/charges',
      {
        schema: { params: MandateParams, querystring: PageQuery, response: { 200: ChargePage } },
        onRequest: signedIn,
      },
      async (request) => chargesPage(mandates, customerOf(request), request.params.id, request.query, 50),
    );

    customer.get(
      '/v1/me/mandates/:id/charges/:chargeId',
      { schema: { params: ChargeParams, response: { 200: ChargeWithRefunds } }, onRequest: signedIn },
      async (request) =>
        chargeWithRefundsJson(mandates, customerOf(request), request.params.id, request.params.chargeId),
    );

    // Revoking the mandate revokes its consent: the next charge is refused, every token under it stops.
    customer.delete(
      '/v1/me/mandates/:id',
      { schema: { params: MandateParams, response: { 204: NoContent } }, onRequest: signedIn },
      async (request, reply) => {
        const outcome = await mandates.revoke(customerOf(request).customerId, request.params.id);
        if (outcome === 'not_found') throw notFound();
        if (outcome === 'not_active')
          throw new Problem('mandate_not_active', 'the mandate has ended already');
        return reply.code(204).send();
      },
    );
  });
}
