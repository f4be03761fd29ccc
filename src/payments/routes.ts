// Payments over HTTP: an app initiates under the customer's payment consent (`/v1/payments`), the
// customer pays at the bank's pages (`/v1/me/payments`), an app asks whether funds suffice under a
// funds-confirmation consent, and operators run settlement cycles; the sandbox simulates the scheme.
import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import { type Static, Type } from 'typebox';
import type { Accounts } from '../accounts/service.ts';
import { customerSession } from '../consents/customer-routes.ts';
import type { CustomerAuth } from '../customer-auth/service.ts';
import { QuoteTermsView, quoteTermsJson } from '../fx/routes.ts';
import type { createGateway } from '../gateway/gateway.ts';
import { type App, scoped } from '../http/app.ts';
import { requireBearerToken } from '../http/auth.ts';
import { CURSOR_POSITION } from '../http/cursor.ts';
import { Problem } from '../http/problems.ts';
import {
  CurrencyCode,
  DateOnly,
  DateTime,
  Decimal,
  Nullable,
  NullableStringEnum,
  ReadonlyList,
  StringEnum,
  Uuid,
} from '../http/schemas.ts';
import { readIdempotencyKey } from '../idempotency.ts';
import {
  MERCHANT_CATEGORY_FIELDS,
  PAYMENT_POINTS_FIELDS,
  PaymentPointsView,
  paymentPointsJson,
} from '../loyalty/routes.ts';
import { AMOUNT_PATTERN, currencyExponent, formatAmount, type ParsedAmount, parseAmount } from '../money.ts';
import {
  type CreateOrderOutcome,
  ORDER_RUNS_MAX,
  ORDERS_PAGE_MAX,
  type PaymentOrder,
  type PaymentOrders,
} from './orders.ts';
import type { Frequency } from './schedule.ts';
import type { InitiateOutcome, Initiator, Payment, Payments } from './service.ts';

const Id = Type.String({ pattern: CURSOR_POSITION.uuid.source });
const InstructedAmount = Type.Object(
  { amount: Type.String({ pattern: AMOUNT_PATTERN }), currency: Type.String({ pattern: '^[A-Z]{3}$' }) },
  { additionalProperties: false },
);
const PaymentBody = Type.Object(
  {
    instructedAmount: InstructedAmount,
    creditor: Type.Object(
      {
        name: Type.String({ minLength: 1, maxLength: 140 }),
        iban: Type.String({ minLength: 15, maxLength: 42, pattern: '^[A-Za-z0-9 ]+$' }),
      },
      { additionalProperties: false },
    ),
    reference: Type.Optional(Type.String({ minLength: 1, maxLength: 140 })),
    debtorAccountId: Type.Optional(Id),
  },
  { additionalProperties: false },
);

const OrderBody = Type.Object(
  {
    ...PaymentBody.properties,
    schedule: Type.Object(
      {
        firstDate: Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' }),
        frequency: Type.Optional(
          Type.Union(['daily', 'weekly', 'monthly', 'yearly'].map((f) => Type.Literal(f as Frequency))),
        ),
        lastDate: Type.Optional(Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' })),
        count: Type.Optional(Type.Integer({ minimum: 1, maximum: ORDER_RUNS_MAX })),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

// A payment made now (not an order: a quote holds for seconds) may convert at an FX quote (src/fx/).
const PaymentNowBody = Type.Object(
  { ...PaymentBody.properties, quoteId: Type.Optional(Id), ...PAYMENT_POINTS_FIELDS },
  { additionalProperties: false },
);
// A merchant's app also names its merchant category, which decides the points the payment earns (src/loyalty/).
const AppPaymentBody = Type.Object(
  { ...PaymentNowBody.properties, ...MERCHANT_CATEGORY_FIELDS },
  { additionalProperties: false },
);

const CreditorView = Type.Object({ name: Type.String(), iban: Type.String() });
const AmountView = Type.Object({ amount: Decimal, currency: CurrencyCode });
const OrderView = Type.Object(
  {
    id: Uuid,
    kind: StringEnum(['scheduled', 'standing']),
    status: StringEnum(['active', 'completed', 'cancelled']),
    debtorAccountId: Uuid,
    creditor: CreditorView,
    instructedAmount: AmountView,
    reference: Nullable(Type.String()),
    schedule: Type.Object({
      firstDate: DateOnly,
      frequency: NullableStringEnum(['daily', 'weekly', 'monthly', 'yearly']),
      lastDate: Nullable(DateOnly),
      count: Nullable(Type.Integer()),
    }),
    nextRunOn: Nullable(DateOnly),
    runs: Type.Array(
      Type.Object({
        date: DateOnly,
        status: StringEnum(['pending', 'paid', 'failed']),
        paymentId: Nullable(Uuid),
        outcome: Nullable(Type.String()),
      }),
    ),
    createdAt: DateTime,
  },
  { description: 'A scheduled payment or standing order, with its runs' },
);

export function orderJson(order: PaymentOrder) {
  return {
    id: order.id,
    kind: order.kind,
    status: order.status,
    debtorAccountId: order.debtorAccountId,
    creditor: order.creditor,
    instructedAmount: order.instructedAmount,
    reference: order.reference,
    schedule: {
      firstDate: order.schedule.first,
      frequency: order.schedule.frequency,
      lastDate: order.schedule.last,
      count: order.schedule.countMax,
    },
    nextRunOn: order.nextRunOn,
    runs: order.runs.map((run) => ({
      date: run.runOn,
      status: run.status,
      paymentId: run.paymentId,
      outcome: run.outcome,
    })),
    createdAt: order.createdAt.toISOString(),
  };
}

function orderAnswer(outcome: CreateOrderOutcome) {
  if (!outcome.ok) throw new Problem(outcome.code, outcome.detail);
  return outcome;
}

function cancelled(outcome: PaymentOrder | 'not_found' | 'not_active') {
  if (outcome === 'not_found') throw new Problem('not_found', 'no order with this id');
  if (outcome === 'not_active') throw new Problem('order_not_active');
  return orderJson(outcome);
}

const PAYMENT_STATUSES = [
  'received',
  'awaiting_sca',
  'accepted',
  'settling',
  'settled',
  'returning',
  'rejected',
  'returned',
] as const;
const PaymentView = Type.Object(
  {
    id: Uuid,
    status: StringEnum(PAYMENT_STATUSES),
    type: StringEnum(['internal', 'domestic', 'cross_border']),
    debtorAccountId: Uuid,
    creditor: CreditorView,
    instructedAmount: AmountView,
    reference: Nullable(Type.String()),
    rejectionCode: Nullable(Type.String()),
    consentId: Nullable(Uuid),
    statusHistory: ReadonlyList(
      Type.Object({ status: StringEnum(PAYMENT_STATUSES), at: DateTime, code: Type.Optional(Type.String()) }),
    ),
    createdAt: DateTime,
    fx: Type.Optional(QuoteTermsView),
    points: Type.Optional(PaymentPointsView),
  },
  { description: 'A payment and every change of its status' },
);

export function paymentJson(payment: Payment) {
  const exponent = currencyExponent(payment.currency) ?? 2;
  return {
    id: payment.id,
    status: payment.status,
    type: payment.type,
    debtorAccountId: payment.debtorAccountId,
    creditor: payment.creditor,
    instructedAmount: { amount: formatAmount(payment.amount, exponent), currency: payment.currency },
    reference: payment.reference,
    rejectionCode: payment.rejectionCode,
    consentId: payment.consentId,
    statusHistory: payment.statusHistory,
    createdAt: payment.createdAt.toISOString(),
    ...(payment.quote && { fx: quoteTermsJson(payment.quote) }),
    ...(payment.points && { points: paymentPointsJson(payment.points) }),
  };
}

// The schema's pattern admits "0.00" and amounts past what a balance can hold; the ledger's rule, once.
const POSITIVE_AMOUNT = 'must be greater than zero and fit in 63 bits';

/** The amount's currency and size, before any rule that needs the database. */
function checkAmount({ amount, currency }: { amount: string; currency: string }): ParsedAmount {
  if (currencyExponent(currency) === undefined) {
    throw new Problem('unsupported_currency', `${currency} is not an active ISO 4217 currency`);
  }
  const parsed = parseAmount(amount);
  if (!parsed) {
    throw new Problem('validation_failed', `/body/instructedAmount/amount ${POSITIVE_AMOUNT}`, {
      errors: [{ field: '/body/instructedAmount/amount', message: POSITIVE_AMOUNT }],
    });
  }
  return parsed;
}

/** Amounts carry exactly the currency's ISO 4217 decimals ("10.50" EUR, "1050" JPY). */
function checkScale(amount: ParsedAmount, currency: string): void {
  const exponent = currencyExponent(currency);
  if (amount.scale !== exponent) {
    throw new Problem('amount_scale_mismatch', `${currency} amounts have ${exponent} decimals`);
  }
}

const header = (request: FastifyRequest, name: string) => {
  const value = request.headers[name];
  return typeof value === 'string' && value.length <= 512 ? value : undefined;
};

/**
 * Where the payer is, for fraud screening: the customer's own connection at the bank's pages; from an app,
 * what the app reports of its user (FAPI's x-fapi-customer-ip-address, and the customer's user agent).
 */
function payerContext(request: FastifyRequest, initiator: Initiator) {
  const app = initiator.kind === 'app';
  const ip = app ? header(request, 'x-fapi-customer-ip-address') : request.ip;
  const userAgent = header(request, app ? 'x-customer-user-agent' : 'user-agent');
  const deviceId = header(request, 'x-device-id');
  return { ...(ip && { ip }), ...(userAgent && { userAgent }), ...(deviceId && { deviceId }) };
}

function answer(outcome: InitiateOutcome) {
  if (!outcome.ok) throw new Problem(outcome.code, outcome.detail);
  return outcome;
}

/** The app's payment consent among the token's consents; the payments scope alone pays nothing. */
function appInitiator(request: FastifyRequest): Initiator {
  const access = request.access;
  if (!access) throw new Error('route registered without requireAccess');
  const consent = access.consents.find((c) => c.type === 'payment_initiation');
  if (!consent || access.subject === access.clientId) {
    throw new Problem(
      'insufficient_scope',
      "a payment needs a token carrying the customer's payment_initiation consent",
    );
  }
  return { kind: 'app', clientId: access.clientId, customerId: access.subject, consent };
}

export function registerPaymentRoutes(
  app: App,
  services: { payments: Payments; orders: PaymentOrders; accounts: Accounts; auth: CustomerAuth },
  gateway: ReturnType<typeof createGateway>,
): void {
  const { payments, orders, accounts, auth } = services;
  const appOf = (request: FastifyRequest) => {
    if (!request.access) throw new Error('route registered without requireAccess');
    return { clientId: request.access.clientId };
  };

  app.post(
    '/v1/payment-orders',
    { schema: { body: OrderBody, response: { 201: OrderView } }, onRequest: gateway('payments', 'payments') },
    async (request, reply) => {
      const key = readIdempotencyKey(request.headers['idempotency-key'], true);
      checkAmount(request.body.instructedAmount);
      const { order, replayed } = orderAnswer(await orders.create(appInitiator(request), key, request.body));
      if (replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(201).send(orderJson(order));
    },
  );
  app.get(
    '/v1/payment-orders/:id',
    {
      schema: { params: Type.Object({ id: Id }), response: { 200: OrderView } },
      onRequest: gateway('payments', 'payments'),
    },
    async (request) => {
      const order = await orders.get(appOf(request), request.params.id);
      if (!order) throw new Problem('not_found', 'no order with this id');
      return orderJson(order);
    },
  );
  app.delete(
    '/v1/payment-orders/:id',
    {
      schema: { params: Type.Object({ id: Id }), response: { 200: OrderView } },
      onRequest: gateway('payments', 'payments'),
    },
    async (request) => cancelled(await orders.cancel(appOf(request), request.params.id)),
  );
  const initiate = async (
    request: FastifyRequest,
    initiator: Initiator,
    key: string,
    body: Static<typeof AppPaymentBody>,
  ) => {
    checkAmount(body.instructedAmount);
    return answer(await payments.initiate(initiator, key, body, payerContext(request, initiator)));
  };

  app.post(
    '/v1/payments',
    {
      schema: { body: AppPaymentBody, response: { 201: PaymentView } },
      onRequest: gateway('payments', 'payments'),
    },
    async (request, reply) => {
      const key = readIdempotencyKey(request.headers['idempotency-key'], true);
      const { payment, replayed } = await initiate(request, appInitiator(request), key, request.body);
      if (replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(201).send(paymentJson(payment));
    },
  );

  app.get(
    '/v1/payments/:id',
    {
      schema: { params: Type.Object({ id: Id }), response: { 200: PaymentView } },
      onRequest: gateway('payments', 'payments'),
    },
    async (request) => {
      const access = request.access;
      if (!access) throw new Error('route registered without requireAccess');
      const payment = await payments.get({ clientId: access.clientId }, request.params.id);
      if (!payment) throw new Problem('not_found', 'no payment with this id');
      return paymentJson(payment);
    },
  );

  app.post(
    '/v1/funds-confirmations',
    {
      schema: {
        body: Type.Object({ instructedAmount: InstructedAmount }, { additionalProperties: false }),
        response: {
          200: Type.Object(
            { fundsAvailable: Type.Boolean() },
            { description: 'Whether the consented account could pay the amount now' },
          ),
        },
      },
      onRequest: gateway('funds-confirmation', 'funds_confirmation'),
    },
    async (request) => {
      const access = request.access;
      if (!access) throw new Error('route registered without requireAccess');
      const consent = access.consents.find((c) => c.type === 'funds_confirmation');
      const accountId = consent?.accountIds?.[0];
      if (!accountId) {
        throw new Problem(
          'insufficient_scope',
          "funds confirmation needs the customer's funds_confirmation consent",
        );
      }
      const account = await accounts.findForCustomer(access.subject, accountId);
      if (!account) throw new Problem('not_found', 'the consented account no longer exists');
      const { currency } = request.body.instructedAmount;
      const parsed = checkAmount(request.body.instructedAmount);
      if (currency !== account.currency)
        throw new Problem('currency_mismatch', `the account is in ${account.currency}`);
      checkScale(parsed, currency);
      return { fundsAvailable: await payments.fundsAvailable(account, parsed.minor) };
    },
  );

  scoped(app, (customer) => {
    const signedIn: onRequestHookHandler[] = [customerSession(auth)];
    customer.post(
      '/v1/me/payments',
      { schema: { body: PaymentNowBody, response: { 201: PaymentView } }, onRequest: signedIn },
      async (request, reply) => {
        const key = readIdempotencyKey(request.headers['idempotency-key'], true);
        if (!request.body.debtorAccountId) {
          throw new Problem('validation_failed', '/body/debtorAccountId is required at the bank', {
            errors: [{ field: '/body/debtorAccountId', message: 'is required' }],
          });
        }
        const initiator: Initiator = { kind: 'customer', customerId: request.customerId as string };
        const { payment, replayed } = await initiate(request, initiator, key, request.body);
        if (replayed) reply.header('idempotent-replayed', 'true');
        return reply.code(201).send(paymentJson(payment));
      },
    );
    customer.post(
      '/v1/me/payment-orders',
      { schema: { body: OrderBody, response: { 201: OrderView } }, onRequest: signedIn },
      async (request, reply) => {
        const key = readIdempotencyKey(request.headers['idempotency-key'], true);
        const initiator: Initiator = { kind: 'customer', customerId: request.customerId as string };
        checkAmount(request.body.instructedAmount);
        const { order, replayed } = orderAnswer(await orders.create(initiator, key, request.body));
        if (replayed) reply.header('idempotent-replayed', 'true');
        return reply.code(201).send(orderJson(order));
      },
    );
    const OrderList = Type.Object(
      { orders: Type.Array(OrderView) },
      { description: "The customer's orders" },
    );
    customer.get(
      '/v1/me/payment-orders',
      { schema: { response: { 200: OrderList } }, onRequest: signedIn },
      async (request) => ({
        orders: (await orders.list(request.customerId as string, undefined, ORDERS_PAGE_MAX)).map(orderJson),
      }),
    );
    customer.get(
      '/v1/me/payment-orders/:id',
      { schema: { params: Type.Object({ id: Id }), response: { 200: OrderView } }, onRequest: signedIn },
      async (request) => {
        const order = await orders.get({ customerId: request.customerId as string }, request.params.id);
        if (!order) throw new Problem('not_found', 'no order with this id');
        return orderJson(order);
      },
    );
    customer.delete(
      '/v1/me/payment-orders/:id',
      { schema: { params: Type.Object({ id: Id }), response: { 200: OrderView } }, onRequest: signedIn },
      async (request) =>
        cancelled(await orders.cancel({ customerId: request.customerId as string }, request.params.id)),
    );
    customer.post(
      '/v1/me/payments/:id/confirm',
      {
        schema: {
          params: Type.Object({ id: Id }),
          body: Type.Object(
            { code: Type.String({ pattern: '^[0-9]{6}$' }) },
            { additionalProperties: false },
          ),
          response: { 200: PaymentView },
        },
        onRequest: signedIn,
      },
      async (request) => {
        const outcome = await payments.confirm(
          request.customerId as string,
          request.params.id,
          request.body.code,
        );
        if (outcome === 'not_found') throw new Problem('not_found', 'no payment with this id');
        if (outcome === 'not_awaiting_sca') throw new Problem('payment_not_awaiting_sca');
        if (outcome === 'wrong_code') throw new Problem('one_time_code_invalid');
        if (outcome === 'locked') throw new Problem('one_time_code_locked');
        return paymentJson(outcome);
      },
    );
    customer.post(
      '/v1/me/payments/:id/cancel',
      { schema: { params: Type.Object({ id: Id }), response: { 200: PaymentView } }, onRequest: signedIn },
      async (request) => {
        const outcome = await payments.cancelHeld(request.customerId as string, request.params.id);
        if (outcome === 'not_found') throw new Problem('not_found', 'no payment with this id');
        if (outcome === 'not_awaiting_sca') throw new Problem('payment_not_awaiting_sca');
        return paymentJson(outcome);
      },
    );
    customer.get(
      '/v1/me/payments/:id',
      { schema: { params: Type.Object({ id: Id }), response: { 200: PaymentView } }, onRequest: signedIn },
      async (request) => {
        const payment = await payments.get({ customerId: request.customerId as string }, request.params.id);
        if (!payment) throw new Problem('not_found', 'no payment with this id');
        return paymentJson(payment);
      },
    );
  });
}

/** Operators run a settlement cycle now; the sandbox also plays the other banks (incoming money, returns). */
export function registerPaymentOperatorRoutes(
  app: App,
  payments: Payments,
  options: { adminToken: string; sandbox: boolean },
): void {
  scoped(app, (operator) => {
    operator.addHook('onRequest', requireBearerToken(options.adminToken));
    // { settled, deferred, deferredFor }: deferred payments wait for the next cycle, counted by the ledger's
    // reason (a nostro short of funds, say).
    operator.post(
      '/v1/admin/payments/settlement-cycles',
      {
        schema: {
          response: {
            200: Type.Object(
              {
                settled: Type.Integer(),
                deferred: Type.Integer(),
                deferredFor: Type.Record(Type.String(), Type.Integer()),
              },
              { description: 'Payments settled, and payments left for the next cycle by reason' },
            ),
          },
        },
      },
      async () => payments.settleCycle(),
    );
    if (!options.sandbox) return;

    operator.post(
      '/v1/sandbox/incoming-payments',
      {
        schema: {
          body: Type.Object(
            {
              creditorIban: Type.String({ minLength: 15, maxLength: 42 }),
              instructedAmount: InstructedAmount,
              debtor: Type.Object(
                { name: Type.String({ minLength: 1, maxLength: 140 }) },
                { additionalProperties: false },
              ),
              reference: Type.Optional(Type.String({ minLength: 1, maxLength: 140 })),
            },
            { additionalProperties: false },
          ),
          response: {
            201: Type.Object(
              { transferId: Uuid },
              { description: 'The ledger transfer that credited the account' },
            ),
          },
        },
      },
      async (request, reply) => {
        const key = readIdempotencyKey(request.headers['idempotency-key'], true);
        const { currency } = request.body.instructedAmount;
        const parsed = checkAmount(request.body.instructedAmount);
        checkScale(parsed, currency);
        const outcome = await payments.receiveIncoming(key, {
          creditorIban: request.body.creditorIban,
          amount: parsed,
          currency,
          debtorName: request.body.debtor.name,
          reference: request.body.reference,
        });
        if (!outcome.ok) {
          if (outcome.code === 'not_found')
            throw new Problem('not_found', 'no account of this bank has that IBAN');
          // The sandbox's Idempotency-Key is the ledger transfer's: its refusals are the caller's to see.
          if (
            outcome.code === 'currency_mismatch' ||
            outcome.code === 'account_closed' ||
            outcome.code === 'idempotency_key_reused' ||
            outcome.code === 'idempotency_key_in_flight'
          )
            throw new Problem(outcome.code);
          throw new Problem('validation_failed', outcome.code);
        }
        return reply.code(201).send({ transferId: outcome.transferId });
      },
    );

    operator.post(
      '/v1/sandbox/payments/:id/return',
      {
        schema: {
          params: Type.Object({ id: Id }),
          body: Type.Object(
            { reasonCode: Type.String({ pattern: '^[A-Z0-9]{2,4}$' }) },
            { additionalProperties: false },
          ),
          response: { 200: PaymentView },
        },
      },
      async (request) => {
        const returned = await payments.returnPayment(request.params.id, request.body.reasonCode);
        if (returned === 'not_found') throw new Problem('not_found', 'no payment with this id');
        if (returned === 'not_returnable') throw new Problem('payment_not_returnable');
        return paymentJson(returned);
      },
    );
  });
}
