// Loyalty points over HTTP: an account's points and their history, for a third-party app under the customer's
// account-information consent (the balances permission) at /v1/accounts/{id}/points and for the customer at
// /v1/me/accounts/{id}/points; the operators' earn rules and redemption rates; and the payment fields that
// spend points and name the merchant category (used by src/payments/routes.ts).
import type { FastifyRequest, onRequestHookHandler } from 'fastify';
import { Type } from 'typebox';
import type { AccountScope } from '../accounts/routes.ts';
import type { Accounts } from '../accounts/service.ts';
import { type App, scoped } from '../http/app.ts';
import { requireBearerToken } from '../http/auth.ts';
import { CURSOR_POSITION, decodeCursor, PageQuery, pageLimit, pageOf } from '../http/cursor.ts';
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
import { POINTS_CURRENCY } from '../ledger/bank-accounts.ts';
import { AMOUNT_PATTERN, currencyExponent, formatAmount } from '../money.ts';
import { DEFAULT_CATEGORY, pointsPerMinorOf } from './rules.ts';
import {
  EARN_RULES_PAGE_MAX,
  HISTORY_PAGE_MAX,
  type Loyalty,
  type LoyaltyDebit,
  type OperatorOutcome,
  type PointsMovement,
} from './service.ts';
import type { StoredEarnRule, StoredRedemptionRate } from './store.ts';

const Id = Type.String({ pattern: CURSOR_POSITION.uuid.source });
const Currency = Type.String({ pattern: '^[A-Z]{3}$' });
const Category = Type.String({
  pattern: `^([0-9]{4}|${DEFAULT_CATEGORY})$`,
  description: `ISO 18245 merchant category code, or \`${DEFAULT_CATEGORY}\``,
});
const WholePoints = Type.String({ pattern: '^[1-9][0-9]{0,17}$', description: 'whole points, as digits' });
const Operator = Type.String({ minLength: 1, maxLength: 80 });
const Points = Type.String({ pattern: '^[0-9]+$', description: 'whole points, as digits' });

/** What `POST /v1/payments` and `/v1/me/payments` add to a payment: points paying part of it. */
export const PAYMENT_POINTS_FIELDS = {
  points: Type.Optional(
    Type.String({
      pattern: '^[1-9][0-9]{0,17}$',
      description:
        'Loyalty points paying part of the amount, at the redemption rate; the account pays the rest in money',
    }),
  ),
};
/**
 * What only a merchant's app adds: the merchant category (ISO 18245) the points earned depend on. The payer
 * at the bank's pages cannot name one: a payer's own word would let any transfer earn purchase points.
 */
export const MERCHANT_CATEGORY_FIELDS = {
  merchantCategory: Type.Optional(
    Type.String({ pattern: '^[0-9]{4}$', description: 'ISO 18245 merchant category code' }),
  ),
};

export const PaymentPointsView = Type.Object(
  {
    redeemed: Points,
    value: Decimal,
    money: Decimal,
    earned: Points,
  },
  {
    description:
      'Points spent and what they paid (value), what the account paid in money, and the points the money part earns',
  },
);

/** A payment's points, in its JSON (src/payments/routes.ts). */
export function paymentPointsJson(debit: LoyaltyDebit) {
  const exponent = currencyExponent(debit.currency) ?? 2;
  return {
    redeemed: debit.points.toString(),
    value: formatAmount(debit.pointsValue, exponent),
    money: formatAmount(debit.amount - debit.pointsValue, exponent),
    earned: debit.pointsEarned.toString(),
  };
}

const MovementView = Type.Object({
  id: Type.String({ description: 'transfer id and entry sequence' }),
  transferId: Uuid,
  bookedAt: DateTime,
  kind: StringEnum(['earned', 'redeemed', 'refunded', 'reversed'], {
    description:
      'earned on a payment; redeemed to pay one; refunded with a refund or return; reversed: earned points taken back by a refund',
  }),
  points: Points,
  balanceAfter: Points,
  paymentId: Nullable(Uuid),
  refundId: Nullable(Uuid),
});

const PointsView = Type.Object(
  {
    accountId: Uuid,
    currency: Type.Literal(POINTS_CURRENCY),
    balance: Points,
    worth: Nullable(Type.Object({ amount: Decimal, currency: CurrencyCode })),
    history: Type.Array(MovementView),
    nextCursor: NextCursor,
  },
  {
    description:
      "The account's points, what they would pay today in its currency (null where the bank takes no points), and their movements, newest first",
  },
);

function movementJson(movement: PointsMovement) {
  return {
    id: `${movement.transferId}:${movement.seq}`,
    transferId: movement.transferId,
    bookedAt: movement.bookedAt.toISOString(),
    kind: movement.kind,
    points: movement.points.toString(),
    balanceAfter: movement.balanceAfter.toString(),
    paymentId: movement.debitId,
    refundId: movement.refundId,
  };
}

/** `GET {prefix}/:id/points`, as the account routes decide who sees what (src/accounts/routes.ts). */
export function registerPointsRoutes(
  app: App,
  services: { loyalty: Loyalty; accounts: Accounts },
  options: {
    prefix: string;
    onRequest: onRequestHookHandler | onRequestHookHandler[];
    scopeOf: (request: FastifyRequest) => AccountScope;
  },
): void {
  const { loyalty, accounts } = services;
  app.get(
    `${options.prefix}/:id/points`,
    {
      onRequest: options.onRequest,
      schema: {
        params: Type.Object({ id: Id }),
        querystring: PageQuery,
        response: { 200: PointsView },
      },
    },
    async (request) => {
      const scope = options.scopeOf(request);
      const account = await accounts.findForCustomer(scope.customerId, request.params.id);
      // Another customer's account, or one the consent does not cover, is simply not there.
      if (!account || (scope.accountIds && !scope.accountIds.has(account.id))) {
        throw new Problem('not_found', 'no account with this id');
      }
      if (!scope.permissions.has('balances')) {
        throw new Problem('permission_not_granted', 'the consent does not include balances');
      }
      const limit = pageLimit(request.query.limit, 50, HISTORY_PAGE_MAX);
      const before =
        request.query.cursor && BigInt(decodeCursor(request.query.cursor, 'pts', CURSOR_POSITION.seq));
      const balance = await loyalty.balance(account.id);
      const worth = await loyalty.worth(account.currency, balance);
      const page = await loyalty.history(account.id, before || undefined, limit + 1);
      const { rows, nextCursor } = pageOf(page, limit, 'pts', (last) => last.seq.toString());
      return {
        accountId: account.id,
        currency: POINTS_CURRENCY as typeof POINTS_CURRENCY,
        balance: balance.toString(),
        worth:
          worth === undefined
            ? null
            : {
                amount: formatAmount(worth, currencyExponent(account.currency) ?? 2),
                currency: account.currency,
              },
        history: rows.map(movementJson),
        nextCursor,
      };
    },
  );
}

// ------------------------------------------------------------------------------------------------ operators

const EarnRuleView = Type.Object(
  {
    currency: CurrencyCode,
    merchantCategory: Type.String(),
    points: Points,
    per: Decimal,
    version: Type.Integer(),
    updatedBy: Type.String(),
    updatedAt: DateTime,
  },
  { description: '`points` points for every `per` spent in money, for purchases in this merchant category' },
);

const RateView = Type.Object(
  {
    currency: CurrencyCode,
    points: Points,
    amount: Decimal,
    pointsPerMinorUnit: Points,
    version: Type.Integer(),
    updatedBy: Type.String(),
    updatedAt: DateTime,
  },
  { description: '`points` points pay `amount` of the currency' },
);

function earnRuleJson(rule: StoredEarnRule) {
  return {
    currency: rule.currency,
    merchantCategory: rule.merchantCategory,
    points: rule.points.toString(),
    per: formatAmount(rule.perMinor, currencyExponent(rule.currency) ?? 2),
    version: rule.version,
    updatedBy: rule.updatedBy,
    updatedAt: rule.updatedAt.toISOString(),
  };
}

function rateJson(rate: StoredRedemptionRate) {
  return {
    currency: rate.currency,
    points: rate.points.toString(),
    amount: formatAmount(rate.amountMinor, currencyExponent(rate.currency) ?? 2),
    pointsPerMinorUnit: pointsPerMinorOf(rate).toString(),
    version: rate.version,
    updatedBy: rate.updatedBy,
    updatedAt: rate.updatedAt.toISOString(),
  };
}

function saved<T>(outcome: OperatorOutcome<T>): { value: T; created: boolean } {
  if (outcome.ok) return outcome;
  throw new Problem(outcome.code, outcome.detail, outcome.errors ? { errors: outcome.errors } : {});
}

const RULE_CURSOR = /^[A-Z]{3}:([0-9]{4}|default)$/;

/** Earn rules and redemption rates: data operators change without a restart; every change is an event. */
export function registerLoyaltyOperatorRoutes(app: App, loyalty: Loyalty, adminToken: string): void {
  scoped(app, (operator) => {
    operator.addHook('onRequest', requireBearerToken(adminToken));

    operator.get(
      '/v1/admin/loyalty/earn-rules',
      {
        schema: {
          querystring: PageQuery,
          response: { 200: Type.Object({ rules: Type.Array(EarnRuleView), nextCursor: NextCursor }) },
        },
      },
      async (request) => {
        const limit = pageLimit(request.query.limit, 100, EARN_RULES_PAGE_MAX);
        const position = request.query.cursor && decodeCursor(request.query.cursor, 'ler', RULE_CURSOR);
        const [currency = '', merchantCategory = ''] = position ? position.split(':') : [];
        const page = await loyalty.earnRules(
          position ? { currency, merchantCategory } : undefined,
          limit + 1,
        );
        const { rows, nextCursor } = pageOf(
          page,
          limit,
          'ler',
          (last) => `${last.currency}:${last.merchantCategory}`,
        );
        return {
          rules: rows.map(earnRuleJson),
          nextCursor,
        };
      },
    );

    const RuleParams = Type.Object({ currency: Currency, category: Category });
    operator.put(
      '/v1/admin/loyalty/earn-rules/:currency/:category',
      {
        schema: {
          params: RuleParams,
          body: Type.Object(
            {
              points: WholePoints,
              per: Type.String({ pattern: AMOUNT_PATTERN, description: "in the currency's decimals" }),
              changedBy: Operator,
            },
            { additionalProperties: false },
          ),
          response: { 200: EarnRuleView, 201: EarnRuleView },
        },
      },
      async (request, reply) => {
        const { value, created } = saved(
          await loyalty.putEarnRule({
            currency: request.params.currency,
            merchantCategory: request.params.category,
            ...request.body,
          }),
        );
        return reply.code(created ? 201 : 200).send(earnRuleJson(value));
      },
    );

    operator.delete(
      '/v1/admin/loyalty/earn-rules/:currency/:category',
      { schema: { params: RuleParams, response: { 204: NoContent } } },
      async (request, reply) => {
        if (!(await loyalty.deleteEarnRule(request.params.currency, request.params.category))) {
          throw new Problem('not_found', 'no earn rule for this currency and category');
        }
        return reply.code(204).send();
      },
    );

    operator.get(
      '/v1/admin/loyalty/redemption-rates',
      { schema: { response: { 200: Type.Object({ rates: Type.Array(RateView) }) } } },
      // One rate per ISO 4217 currency at most: a short list, never paged.
      async () => ({ rates: (await loyalty.redemptionRates()).map(rateJson) }),
    );

    const RateParams = Type.Object({ currency: Currency });
    operator.put(
      '/v1/admin/loyalty/redemption-rates/:currency',
      {
        schema: {
          params: RateParams,
          body: Type.Object(
            {
              points: WholePoints,
              amount: Type.String({ pattern: AMOUNT_PATTERN, description: "in the currency's decimals" }),
              changedBy: Operator,
            },
            { additionalProperties: false },
          ),
          response: { 200: RateView, 201: RateView },
        },
      },
      async (request, reply) => {
        const { value, created } = saved(
          await loyalty.putRedemptionRate({ currency: request.params.currency, ...request.body }),
        );
        return reply.code(created ? 201 : 200).send(rateJson(value));
      },
    );

    operator.delete(
      '/v1/admin/loyalty/redemption-rates/:currency',
      { schema: { params: RateParams, response: { 204: NoContent } } },
      async (request, reply) => {
        if (!(await loyalty.deleteRedemptionRate(request.params.currency))) {
          throw new Problem('not_found', 'no redemption rate for this currency');
        }
        return reply.code(204).send();
      },
    );
  });
}
