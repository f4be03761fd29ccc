// UK Open Banking Read/Write v4.0, Payment Initiation API (`/open-banking/v4.0/pisp`): domestic scheduled
// payments and domestic standing orders over the bank's payment orders (src/payments/orders.ts). Built the
// way pisp.ts builds domestic payments: the consent is a `payment_initiation` consent whose details hold the
// bank's terms (amount, creditor, reference) and, what the bank's consent page shows and its orders are held
// to, the schedule (first date, frequency, last date, count); the OB Initiation is kept beside them, echoed
// and compared exactly. Creating the payment sets up one order of the bank's, which consumes the consent;
// the bank's scheduler then pays each date. Status and payment-details are read from the order and its runs.
//
// JWS as in pisp.ts: responses signed with the bank's key, request signatures verified (jws.ts).
//
// A standing order's frequency is refused unless the bank's calendar (daily, weekly, monthly, yearly from the
// first date, src/payments/schedule.ts) pays on exactly the dates the Open Banking frequency names.
import { isDeepStrictEqual } from 'node:util';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Consents } from '../../consents/service.ts';
import type { Consent } from '../../consents/store.ts';
import type { Db } from '../../db/db.ts';
import type { createGateway } from '../../gateway/gateway.ts';
import { type App, scoped } from '../../http/app.ts';
import { parseAmount } from '../../money.ts';
import {
  type AuthorisedSchedule,
  ORDER_HORIZON_DAYS,
  ORDER_RUNS_MAX,
  type PaymentOrder,
  type PaymentOrders,
} from '../../payments/orders.ts';
import type { OrderRun } from '../../payments/orders-store.ts';
import { type Frequency, formatDate, nthRun } from '../../payments/schedule.ts';
import type { Payment, Payments } from '../../payments/service.ts';
import { parseTimestamp, TIMESTAMP_PATTERN } from '../../time.ts';
import { accessOf, consentMadeHere, managingApp, paymentGrantOf, UUID } from './access.ts';
import { OB_ERROR_CODES, ObError, useObConventions } from './errors.ts';
import { type MessageSigning, signedMessages } from './jws.ts';
import {
  bankTerms,
  CONSENT_STATUS,
  Initiation as DomesticInitiation,
  idempotencyKeyOf,
  type ObInitiation,
  PISP_PREFIX,
  paymentError,
  paymentLifecycle,
  paymentStatus,
  recordPaymentConsent,
  statusDetail,
} from './pisp.ts';

// payment-details lists the payments of an order's latest runs: a standing order may run a thousand times.
export const PAYMENT_DETAILS_RUNS_MAX = 100;
const DAY_MS = 86_400_000;

const Text = (maxLength: number) => Type.String({ minLength: 1, maxLength });
const Timestamp = Type.String({ pattern: TIMESTAMP_PATTERN });
const { InstructedAmount: Amount, CreditorAccount, RemittanceInformation } = DomesticInitiation.properties;
// As in pisp.ts: the fields the bank honours are typed, the specification's others are refused by name.
const ScheduledInitiation = Type.Object(
  {
    InstructionIdentification: Text(35),
    EndToEndIdentification: Type.Optional(Text(35)),
    RequestedExecutionDateTime: Timestamp,
    InstructedAmount: Amount,
    CreditorAccount,
    RemittanceInformation,
  },
  { additionalProperties: true },
);
const StandingOrderInitiation = Type.Object(
  {
    NumberOfPayments: Type.Optional(Text(35)),
    FirstPaymentAmount: Amount,
    RecurringPaymentAmount: Type.Optional(Amount),
    FinalPaymentAmount: Type.Optional(Amount),
    CreditorAccount,
    RemittanceInformation,
    MandateRelatedInformation: Type.Object(
      {
        FirstPaymentDateTime: Type.Optional(Timestamp),
        RecurringPaymentDateTime: Type.Optional(Timestamp),
        FinalPaymentDateTime: Type.Optional(Timestamp),
        Frequency: Type.Object(
          { Type: Text(64), CountPerPeriod: Type.Optional(Type.Integer()) },
          { additionalProperties: true },
        ),
      },
      { additionalProperties: true },
    ),
  },
  { additionalProperties: true },
);
const Risk = Type.Record(Type.String(), Type.Unknown());
const newConsent = <T extends ReturnType<typeof Type.Object>>(initiation: T) =>
  Type.Object({
    Data: Type.Object(
      { Permission: Type.Literal('Create'), Initiation: initiation },
      { additionalProperties: true },
    ),
    Risk,
  });
const newOrder = <T extends ReturnType<typeof Type.Object>>(initiation: T) =>
  Type.Object({
    Data: Type.Object({ ConsentId: Text(128), Initiation: initiation }, { additionalProperties: false }),
    Risk,
  });
const Hidden = { hide: true } as const;
const IdempotencyHeaders = Type.Object({ 'x-idempotency-key': Type.Optional(Type.String()) });

type ObOrderInitiation = Record<string, unknown>;
/** What an Initiation asks of the bank: a payment instruction and its dates. */
interface OrderTerms {
  readonly instructedAmount: { readonly amount: string; readonly currency: string };
  readonly creditor: { readonly name: string; readonly iban: string };
  readonly reference?: string;
  readonly schedule: AuthorisedSchedule;
}

/** One of the two resources: its paths, names, how its Initiation becomes the bank's terms, and its status. */
interface OrderResource {
  readonly kind: PaymentOrder['kind'];
  readonly consents: string;
  readonly orders: string;
  readonly idName: string;
  /** The key of the consent's details holding its OB Initiation: it marks the consents made here. */
  readonly marker: string;
  /** Where the Initiation's first date is, for refusals that concern the dates. */
  readonly datePath: string;
  readonly honoured: ReadonlySet<string>;
  readonly termsOf: (initiation: ObOrderInitiation, today: string) => OrderTerms;
  readonly statusOf: (order: PaymentOrder, payment: Payment | undefined) => OrderState;
}

interface OrderState {
  readonly status: string;
  readonly at: Date;
  readonly reason?: string | null | undefined;
}

const dateOf = (timestamp: string) => timestamp.slice(0, 10);
const dayStart = (date: string) => `${date}T00:00:00+00:00`;

/**
 * The calendar date a date-time names, as written in its own offset (a customer in London paying on 1 June
 * means 1 June there); the bank pays on that date, at no particular time. A past date, or one further ahead
 * than the bank keeps orders, is refused before the customer is asked.
 */
function dateIn(timestamp: string, today: string, path: string): string {
  if (!parseTimestamp(timestamp)) {
    throw ObError.of(400, OB_ERROR_CODES.fieldInvalid, 'is not a date-time that exists', path);
  }
  const date = dateOf(timestamp);
  if (date < today) throw ObError.of(400, OB_ERROR_CODES.fieldInvalid, 'is in the past', path);
  const horizon = formatDate(new Date(Date.parse(`${today}T00:00:00Z`) + ORDER_HORIZON_DAYS * DAY_MS));
  if (date > horizon) {
    throw ObError.of(
      400,
      OB_ERROR_CODES.fieldInvalid,
      `is more than ${ORDER_HORIZON_DAYS} days ahead: the bank takes orders for the coming year`,
      path,
    );
  }
  return date;
}

const INITIATION = 'Data.Initiation';
const MANDATE = `${INITIATION}.MandateRelatedInformation`;
const FREQUENCY_TYPE = `${MANDATE}.Frequency.Type`;

// The ISO 20022 frequency codes the bank's calendar pays exactly: from the first date, on its weekday, its
// day of the month (the month's last day where a month is shorter), its day of the year.
const FREQUENCY_CODES: Readonly<Record<string, Frequency>> = {
  EvryDay: 'daily',
  DAIL: 'daily',
  WEEK: 'weekly',
  MNTH: 'monthly',
  YEAR: 'yearly',
};
const INTERVAL_WEEK_DAY = /^IntrvlWkDay:(\d{2}):(\d{2})$/;
const INTERVAL_MONTH_DAY = /^IntrvlMnthDay:(\d{2}):(-?\d{2})$/;

/**
 * The bank's frequency for an Open Banking one (Frequency_1 grammar, or an OBFrequency6Code), when the bank's
 * calendar pays exactly the dates it names from `first`; otherwise a 400 saying what the bank can do. Every
 * working day, intervals of several days, weeks or months, a week of the month and the quarter days are
 * refused: the bank's orders repeat every day, week, month or year only, and know no working days.
 */
function bankFrequency(type: string, first: string): Frequency {
  const refuse = (why: string) => {
    throw ObError.of(400, OB_ERROR_CODES.fieldInvalid, `${type}: ${why}`, FREQUENCY_TYPE);
  };
  const code = FREQUENCY_CODES[type];
  if (code) return code;
  const date = new Date(`${first}T00:00:00Z`);
  const weekly = INTERVAL_WEEK_DAY.exec(type);
  if (weekly) {
    if (weekly[1] !== '01') refuse('this bank repeats an order every week, not every few weeks');
    // ISO 8601 numbers the days of the week from Monday (01) to Sunday (07).
    const weekday = ((date.getUTCDay() + 6) % 7) + 1;
    if (Number(weekly[2]) !== weekday) refuse(`the first payment falls on day 0${weekday} of the week`);
    return 'weekly';
  }
  const monthly = INTERVAL_MONTH_DAY.exec(type);
  if (monthly) {
    if (monthly[1] !== '01' && monthly[1] !== '12') {
      refuse('this bank repeats an order every month or every year (12), not every few months');
    }
    const day = Number(monthly[2]);
    // From a 31st the bank pays every month's last day; from any other day, that day (or the last, if shorter).
    const matches = day === -1 ? date.getUTCDate() === 31 : day === date.getUTCDate();
    if (!matches) {
      refuse(
        day < 0
          ? 'the bank pays on the last day of the month only when the first payment is on a 31st, and on no other day counted from the end'
          : `the first payment falls on day ${String(date.getUTCDate()).padStart(2, '0')} of the month`,
      );
    }
    return monthly[1] === '12' ? 'yearly' : 'monthly';
  }
  return refuse(
    'not a frequency this bank can pay: every day (EvryDay, DAIL), every week (WEEK, IntrvlWkDay:01), every month (MNTH, IntrvlMnthDay:01) or every year (YEAR, IntrvlMnthDay:12), from the first payment date',
  );
}

const SCHEDULED: OrderResource = {
  kind: 'scheduled',
  consents: '/domestic-scheduled-payment-consents',
  orders: '/domestic-scheduled-payments',
  idName: 'DomesticScheduledPaymentId',
  marker: 'obScheduledInitiation',
  datePath: `${INITIATION}.RequestedExecutionDateTime`,
  honoured: new Set([
    'InstructionIdentification',
    'EndToEndIdentification',
    'RequestedExecutionDateTime',
    'InstructedAmount',
    'CreditorAccount',
    'RemittanceInformation',
  ]),
  termsOf(initiation, today) {
    const firstDate = dateIn(String(initiation.RequestedExecutionDateTime), today, this.datePath);
    return {
      ...bankTerms(initiation as ObInitiation),
      schedule: { firstDate, frequency: null, lastDate: null, count: null },
    };
  },
  // Accepted until its date (the bank checked the consent, the account and the creditor); then its payment's
  // own status. This resource has no ACCC: a payment credited here is settled (ACSC).
  statusOf(order, payment) {
    const run = order.runs[0];
    if (payment) {
      const status = paymentStatus(payment.status, payment.type);
      return {
        status: status === 'ACCC' ? 'ACSC' : status,
        at: new Date(payment.statusHistory.at(-1)?.at ?? payment.createdAt),
        reason: payment.rejectionCode,
      };
    }
    if (run?.status === 'failed') {
      return run.outcome === 'order_cancelled'
        ? { status: 'CANC', at: order.updatedAt }
        : { status: 'RJCT', at: run.updatedAt, reason: run.outcome };
    }
    if (order.status === 'cancelled') return { status: 'CANC', at: order.updatedAt };
    return run ? { status: 'PDNG', at: run.updatedAt } : { status: 'ACCP', at: order.createdAt };
  },
};

const STANDING_ORDER: OrderResource = {
  kind: 'standing',
  consents: '/domestic-standing-order-consents',
  orders: '/domestic-standing-orders',
  idName: 'DomesticStandingOrderId',
  marker: 'obStandingOrderInitiation',
  datePath: `${MANDATE}.FirstPaymentDateTime`,
  honoured: new Set([
    'NumberOfPayments',
    'FirstPaymentAmount',
    'RecurringPaymentAmount',
    'FinalPaymentAmount',
    'CreditorAccount',
    'RemittanceInformation',
    'MandateRelatedInformation',
  ]),
  termsOf(initiation, today) {
    const mandate = initiation.MandateRelatedInformation as {
      FirstPaymentDateTime?: string;
      RecurringPaymentDateTime?: string;
      FinalPaymentDateTime?: string;
      Frequency: { Type: string; CountPerPeriod?: number };
    } & Record<string, unknown>;
    const refusedFields = [
      ...Object.keys(mandate)
        .filter(
          (name) =>
            ![
              'FirstPaymentDateTime',
              'RecurringPaymentDateTime',
              'FinalPaymentDateTime',
              'Frequency',
            ].includes(name),
        )
        .map((name) => `${MANDATE}.${name}`),
      ...Object.keys(mandate.Frequency)
        .filter(
          (name) => name !== 'Type' && !(name === 'CountPerPeriod' && mandate.Frequency.CountPerPeriod === 1),
        )
        .map((name) => `${MANDATE}.Frequency.${name}`),
    ];
    if (refusedFields.length > 0) {
      throw ObError.of(
        400,
        OB_ERROR_CODES.fieldInvalid,
        `not offered by this bank: ${refusedFields.join(', ')}`,
        refusedFields[0],
      );
    }
    if (mandate.FirstPaymentDateTime === undefined) {
      throw ObError.of(
        400,
        OB_ERROR_CODES.fieldMissing,
        'the bank needs the date of the first payment',
        this.datePath,
      );
    }
    const firstDate = dateIn(mandate.FirstPaymentDateTime, today, this.datePath);
    const frequency = bankFrequency(mandate.Frequency.Type, firstDate);
    const lastDate =
      mandate.FinalPaymentDateTime === undefined
        ? null
        : dateIn(mandate.FinalPaymentDateTime, today, `${MANDATE}.FinalPaymentDateTime`);
    if (lastDate !== null && lastDate < firstDate) {
      throw ObError.of(
        400,
        OB_ERROR_CODES.fieldInvalid,
        'is before the first payment',
        `${MANDATE}.FinalPaymentDateTime`,
      );
    }
    const number = initiation.NumberOfPayments;
    const count = number === undefined ? null : Number(number);
    if (count !== null && (!/^\d{1,4}$/.test(String(number)) || count < 1 || count > ORDER_RUNS_MAX)) {
      throw ObError.of(
        400,
        OB_ERROR_CODES.fieldInvalid,
        `a whole number from 1 to ${ORDER_RUNS_MAX}`,
        `${INITIATION}.NumberOfPayments`,
      );
    }
    const schedule: AuthorisedSchedule = { firstDate, frequency, lastDate, count };
    // The bank's second payment falls where the frequency puts it: a different first recurring date is not
    // something its orders can do.
    const recurring = mandate.RecurringPaymentDateTime;
    const second = nthRun({ first: firstDate, frequency, last: lastDate, countMax: count }, 1);
    if (recurring !== undefined && dateOf(recurring) !== second) {
      throw ObError.of(
        400,
        OB_ERROR_CODES.fieldInvalid,
        `the bank pays the second payment ${second ?? 'never'}, by the frequency from the first`,
        `${MANDATE}.RecurringPaymentDateTime`,
      );
    }
    // Every payment of a bank order is the same amount.
    const first = initiation.FirstPaymentAmount as { Amount: string; Currency: string };
    for (const name of ['RecurringPaymentAmount', 'FinalPaymentAmount']) {
      const other = initiation[name] as { Amount: string; Currency: string } | undefined;
      const same = (a: { Amount: string; Currency: string }, b: typeof a) =>
        a.Currency === b.Currency && parseAmount(a.Amount)?.minor === parseAmount(b.Amount)?.minor;
      if (other && !same(first, other)) {
        throw ObError.of(
          400,
          OB_ERROR_CODES.fieldInvalid,
          'every payment of a standing order here is the first one’s amount',
          `${INITIATION}.${name}`,
        );
      }
    }
    const terms = withPath(
      () =>
        bankTerms({
          InstructedAmount: first,
          CreditorAccount: initiation.CreditorAccount,
          ...(initiation.RemittanceInformation !== undefined && {
            RemittanceInformation: initiation.RemittanceInformation,
          }),
        } as ObInitiation),
      'InstructedAmount',
      'FirstPaymentAmount',
    );
    return { ...terms, schedule };
  },
  // Set up (INCO, initiation completed) until cancelled; each payment's own status is in payment-details.
  statusOf(order) {
    return order.status === 'cancelled'
      ? { status: 'CANC', at: order.updatedAt }
      : { status: 'INCO', at: order.createdAt };
  },
};

/** pisp.ts's refusals name the domestic Initiation's fields: here one of them has another name. */
function withPath<T>(work: () => T, from: string, to: string): T {
  try {
    return work();
  } catch (error) {
    if (!(error instanceof ObError)) throw error;
    throw new ObError(
      error.status,
      error.errors.map((item) => ({ ...item, ...(item.Path && { Path: item.Path.replace(from, to) }) })),
    );
  }
}

export function registerUkObPispOrderRoutes(
  app: App,
  deps: {
    db: Db;
    consents: Consents;
    orders: PaymentOrders;
    payments: Payments;
  } & MessageSigning,
  gateway: ReturnType<typeof createGateway>,
): void {
  const { db, consents, orders, payments, publicUrl } = deps;
  const self = (path: string) => `${publicUrl}${PISP_PREFIX}${path}`;

  scoped(app, (scope) => {
    useObConventions(scope);
    // Every POST is signed by the app (jws.ts, as pisp.ts): refused before anything is created otherwise.
    const signed = signedMessages(scope, deps);

    /** The customer's token under the consent `consentId` of `resource` the customer authorised. */
    const grantOf = (request: FastifyRequest, resource: OrderResource, consentId: string) =>
      paymentGrantOf(request, consentId, resource.marker, `a consent at ${resource.consents}`);

    /** The order the app set up through this resource (another app's, or the bank's own API's, does not exist). */
    const orderOf = async (request: FastifyRequest, resource: OrderResource, id: string) => {
      const clientId = accessOf(request).clientId;
      const order = UUID.test(id) ? await orders.get({ clientId }, id) : undefined;
      const consent =
        order?.kind === resource.kind && order.consentId
          ? await consents.getForClient(clientId, order.consentId)
          : undefined;
      if (!order || !consent || !(resource.marker in consent.details)) {
        throw ObError.of(
          400,
          OB_ERROR_CODES.resourceNotFound,
          `no ${resource.orders.slice(1)} resource with this ${resource.idName}`,
          resource.idName,
        );
      }
      return { order, consent };
    };
    /** The payment of each of the order's latest runs that made one. */
    const paymentsOf = async (clientId: string, runs: readonly OrderRun[]) => {
      const made = new Map<string, Payment>();
      for (const run of runs) {
        const payment = run.paymentId ? await payments.get({ clientId }, run.paymentId) : undefined;
        if (payment) made.set(payment.id, payment);
      }
      return made;
    };

    /** A scheduled payment's one payment, once its date came (a standing order's status is its own). */
    const paymentOfLatestRun = async (order: PaymentOrder) => {
      const paymentId = order.kind === 'scheduled' ? order.runs.at(-1)?.paymentId : undefined;
      return paymentId && order.clientId ? payments.get({ clientId: order.clientId }, paymentId) : undefined;
    };

    for (const resource of [SCHEDULED, STANDING_ORDER]) {
      const ConsentBody = newConsent(resource === SCHEDULED ? ScheduledInitiation : StandingOrderInitiation);
      scope.post(
        `${PISP_PREFIX}${resource.consents}`,
        {
          schema: { ...Hidden, body: ConsentBody, headers: IdempotencyHeaders },
          onRequest: gateway('consents'),
          preValidation: signed,
        },
        async (request, reply) => {
          const clientId = managingApp(request, 'payments', 'payment consents');
          const key = idempotencyKeyOf(request.headers['x-idempotency-key']);
          const data = request.body.Data as Record<string, unknown> & { Initiation: ObOrderInitiation };
          const unsupported = [
            ...Object.keys(data)
              .filter((name) => name !== 'Initiation' && name !== 'Permission')
              .map((name) => `Data.${name}`),
            ...unsupportedIn(resource, data.Initiation),
          ];
          if (unsupported.length > 0) {
            throw ObError.of(
              400,
              OB_ERROR_CODES.fieldInvalid,
              `not offered by this bank: ${unsupported.join(', ')}`,
              unsupported[0],
            );
          }
          const terms = resource.termsOf(data.Initiation, formatDate(new Date()));
          const outcome = await recordPaymentConsent(
            db,
            consents,
            { scope: `uk-ob-pisp-${resource.kind}-consent`, clientId, key, body: request.body },
            { ...terms, [resource.marker]: data.Initiation, obRisk: request.body.Risk },
            (consent) => consentJson(resource, consent, self(`${resource.consents}/${consent.id}`)),
          );
          return reply.code(outcome.statusCode).send(outcome.body);
        },
      );

      scope.get(
        `${PISP_PREFIX}${resource.consents}/:ConsentId`,
        {
          schema: { ...Hidden, params: Type.Object({ ConsentId: Type.String() }) },
          onRequest: gateway('consents'),
        },
        async (request) => {
          const id = request.params.ConsentId;
          const consent = await consentMadeHere(
            consents,
            accessOf(request).clientId,
            id,
            'payment_initiation',
            resource.marker,
          );
          return consentJson(resource, consent, self(`${resource.consents}/${consent.id}`));
        },
      );

      const OrderBody = newOrder(resource === SCHEDULED ? ScheduledInitiation : StandingOrderInitiation);
      scope.post(
        `${PISP_PREFIX}${resource.orders}`,
        {
          schema: { ...Hidden, body: OrderBody, headers: IdempotencyHeaders },
          onRequest: gateway('payments', 'payments'),
          preValidation: signed,
        },
        async (request, reply) => {
          const key = idempotencyKeyOf(request.headers['x-idempotency-key']);
          const data = request.body.Data;
          const { clientId, customerId, consent } = grantOf(request, resource, data.ConsentId);
          // Dynamic linking, the specification's way: the Initiation is the consent's, field for field.
          if (!isDeepStrictEqual(data.Initiation, consent.details[resource.marker])) {
            throw ObError.of(
              400,
              OB_ERROR_CODES.fieldInvalid,
              'the Initiation differs from the one in the consent the customer authorised',
              INITIATION,
            );
          }
          const terms = consent.details as unknown as OrderTerms;
          const { schedule } = terms;
          const outcome = await orders.create({ kind: 'app', clientId, customerId, consent }, key, {
            instructedAmount: terms.instructedAmount,
            creditor: terms.creditor,
            ...(terms.reference !== undefined && { reference: terms.reference }),
            schedule: {
              firstDate: schedule.firstDate,
              ...(schedule.frequency !== null && { frequency: schedule.frequency }),
              ...(schedule.lastDate !== null && { lastDate: schedule.lastDate }),
              ...(schedule.count !== null && { count: schedule.count }),
            },
          });
          if (!outcome.ok) {
            // Authorised for a date that has passed since: the consent cannot be used any more.
            if (outcome.code === 'invalid_schedule') {
              throw ObError.of(
                400,
                OB_ERROR_CODES.fieldInvalid,
                outcome.detail ?? 'the dates cannot be set up',
                resource.datePath,
              );
            }
            throw paymentError(outcome.code, outcome.detail);
          }
          const payment = await paymentOfLatestRun(outcome.order);
          return reply.code(201).send(orderJson(resource, outcome.order, consent, payment, self));
        },
      );

      const OrderParams = { ...Hidden, params: Type.Object({ id: Type.String() }) };

      scope.get(
        `${PISP_PREFIX}${resource.orders}/:id`,
        { schema: OrderParams, onRequest: gateway('payments', 'payments') },
        async (request) => {
          const { order, consent } = await orderOf(request, resource, request.params.id);
          return orderJson(resource, order, consent, await paymentOfLatestRun(order), self);
        },
      );

      scope.get(
        `${PISP_PREFIX}${resource.orders}/:id/payment-details`,
        { schema: OrderParams, onRequest: gateway('payments', 'payments') },
        async (request) => {
          const { order } = await orderOf(request, resource, request.params.id);
          const runs = order.runs.slice(-PAYMENT_DETAILS_RUNS_MAX);
          const made = await paymentsOf(accessOf(request).clientId, runs);
          return {
            Data: {
              PaymentStatus: runs.flatMap((run) =>
                runDetails(order, run, run.paymentId ? made.get(run.paymentId) : undefined),
              ),
            },
            Links: { Self: self(`${resource.orders}/${order.id}/payment-details`) },
            Meta: {},
          };
        },
      );
    }
  });
}

/** The specification's fields in an Initiation (or its CreditorAccount, its remittance) the bank does not honour. */
function unsupportedIn(resource: OrderResource, initiation: ObOrderInitiation): string[] {
  const refused = Object.keys(initiation)
    .filter((name) => !resource.honoured.has(name))
    .map((name) => `${INITIATION}.${name}`);
  for (const name of Object.keys(initiation.CreditorAccount as object)) {
    if (!['SchemeName', 'Identification', 'Name'].includes(name))
      refused.push(`${INITIATION}.CreditorAccount.${name}`);
  }
  for (const name of Object.keys((initiation.RemittanceInformation as object | undefined) ?? {})) {
    if (name !== 'Unstructured') refused.push(`${INITIATION}.RemittanceInformation.${name}`);
  }
  return refused;
}

/** One run's entries in payment-details: its payment's whole lifecycle, or the run's own state. */
function runDetails(order: PaymentOrder, run: OrderRun, payment: Payment | undefined) {
  if (payment) return paymentLifecycle(payment);
  // No payment: still to be made (pending), or refused before one existed (a cancelled order's run).
  const status = run.status === 'failed' ? 'RJCT' : 'PDNG';
  return [
    {
      PaymentTransactionId: `${order.id}:${run.runOn}`,
      Status: status,
      StatusUpdateDateTime: run.updatedAt.toISOString(),
      ...statusDetail(status, run.outcome),
    },
  ];
}

function consentJson(resource: OrderResource, consent: Consent, selfUrl: string) {
  return {
    Data: {
      ConsentId: consent.id,
      CreationDateTime: consent.createdAt.toISOString(),
      Status: CONSENT_STATUS[consent.status],
      StatusUpdateDateTime: consent.statusUpdatedAt.toISOString(),
      Permission: 'Create',
      Initiation: consent.details[resource.marker],
    },
    Risk: consent.details.obRisk ?? {},
    Links: { Self: selfUrl },
    Meta: {},
  };
}

function orderJson(
  resource: OrderResource,
  order: PaymentOrder,
  consent: Consent,
  payment: Payment | undefined,
  self: (path: string) => string,
) {
  const state = resource.statusOf(order, payment);
  const waiting = resource.kind === 'scheduled' && order.runs.length === 0 && order.status === 'active';
  return {
    Data: {
      [resource.idName]: order.id,
      ConsentId: consent.id,
      CreationDateTime: order.createdAt.toISOString(),
      Status: state.status,
      StatusUpdateDateTime: state.at.toISOString(),
      ...(state.reason && {
        StatusReason: [{ StatusReasonCode: 'NARR', StatusReasonDescription: state.reason.slice(0, 500) }],
      }),
      // The bank pays a scheduled payment on its date, at the scheduler's first pass of the day.
      ...(waiting && { ExpectedExecutionDateTime: dayStart(order.schedule.first) }),
      Initiation: consent.details[resource.marker],
    },
    Links: { Self: self(`${resource.orders}/${order.id}`) },
    Meta: {},
  };
}
