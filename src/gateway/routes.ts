import { Type } from 'typebox';
import type { Apps } from '../apps/service.ts';
import { developerOf, requireDeveloper } from '../developers/routes.ts';
import type { Developers } from '../developers/service.ts';
import { type App, scoped } from '../http/app.ts';
import { requireBearerToken } from '../http/auth.ts';
import { Problem } from '../http/problems.ts';
import { DateTime, Nullable, ReadonlyList, StringEnum, Uuid } from '../http/schemas.ts';
import { parseTimestamp, TIMESTAMP_PATTERN } from '../time.ts';
import type { Meter } from './metering.ts';
import type { Plan, Plans, Subscription } from './plans.ts';

const Slug = Type.String({ pattern: '^[a-z][a-z0-9-]{0,39}$' });
const AppId = Type.String({ pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' });
const PlanBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    productIds: Type.Array(Slug, { maxItems: 50, uniqueItems: true }),
    ratePerSecond: Type.Integer({ minimum: 1, maximum: 100_000 }),
    ratePerMinute: Type.Integer({ minimum: 1, maximum: 6_000_000 }),
    dailyQuota: Type.Integer({ minimum: 1, maximum: 1_000_000_000 }),
    requiresApproval: Type.Boolean(),
    isDefault: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const UsageQuery = Type.Object(
  { from: Type.String({ pattern: TIMESTAMP_PATTERN }), to: Type.String({ pattern: TIMESTAMP_PATTERN }) },
  { additionalProperties: false },
);
const USAGE_RANGE_MAX_MS = 31 * 24 * 60 * 60 * 1000;

const ProductView = Type.Object(
  { id: Type.String(), name: Type.String() },
  { description: 'An API product' },
);
const PlanView = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    productIds: ReadonlyList(Type.String()),
    ratePerSecond: Type.Integer(),
    ratePerMinute: Type.Integer(),
    dailyQuota: Type.Integer({ description: 'Calls per UTC day' }),
    requiresApproval: Type.Boolean(),
    isDefault: Type.Boolean(),
  },
  { description: 'A plan' },
);
const PlanList = Type.Object({ plans: Type.Array(PlanView) }, { description: 'The plans' });
const SubscriptionView = Type.Object(
  { appId: Uuid, planId: Type.String(), status: StringEnum(['active', 'pending']) },
  { description: "The app's subscription" },
);
const UsageView = Type.Object(
  {
    appId: Uuid,
    from: DateTime,
    to: DateTime,
    products: Type.Array(
      Type.Object({
        product: Type.String(),
        calls: Type.Integer(),
        errors: Type.Integer(),
        // Upper bounds of latency buckets; null without calls, or past the last bucket.
        latencyMs: Type.Object({
          p50: Nullable(Type.Number()),
          p95: Nullable(Type.Number()),
          p99: Nullable(Type.Number()),
        }),
      }),
    ),
  },
  { description: 'Calls, errors and latency per product' },
);

const planJson = (plan: Plan) => ({ ...plan });
const subscriptionJson = (subscription: Subscription) => ({
  appId: subscription.appId,
  planId: subscription.plan.id,
  status: subscription.status,
});

/** Operators manage products and plans and approve subscriptions; developers choose a plan for their apps. */
export function registerPlanRoutes(
  app: App,
  services: { plans: Plans; apps: Apps; developers: Developers; meter: Meter },
  adminToken: string,
): void {
  const { plans, apps, developers, meter } = services;

  scoped(app, (operator) => {
    operator.addHook('onRequest', requireBearerToken(adminToken));
    operator.get(
      '/v1/admin/products',
      {
        schema: {
          response: {
            200: Type.Object({ products: Type.Array(ProductView) }, { description: 'The products' }),
          },
        },
      },
      async () => ({ products: await plans.listProducts() }),
    );
    operator.put(
      '/v1/admin/products/:id',
      {
        schema: {
          params: Type.Object({ id: Slug }),
          body: Type.Object(
            { name: Type.String({ minLength: 1, maxLength: 100 }) },
            { additionalProperties: false },
          ),
          response: { 200: ProductView },
        },
      },
      async (request) => {
        await plans.upsertProduct(request.params.id, request.body.name);
        return { id: request.params.id, name: request.body.name };
      },
    );
    operator.get('/v1/admin/plans', { schema: { response: { 200: PlanList } } }, async () => ({
      plans: (await plans.listPlans()).map(planJson),
    }));
    operator.put(
      '/v1/admin/plans/:id',
      { schema: { params: Type.Object({ id: Slug }), body: PlanBody, response: { 200: PlanView } } },
      async (request) => {
        const plan = await plans.upsertPlan({ id: request.params.id, ...request.body });
        if (!plan) throw new Problem('unknown_product');
        return planJson(plan);
      },
    );
    operator.post(
      '/v1/admin/apps/:id/subscription/approve',
      { schema: { params: Type.Object({ id: AppId }), response: { 200: SubscriptionView } } },
      async (request) => {
        const subscription = await plans.approve(request.params.id);
        if (!subscription) throw new Problem('not_found', 'the app has no subscription');
        return subscriptionJson(subscription);
      },
    );
  });

  scoped(app, (developer) => {
    developer.addHook('onRequest', requireDeveloper(developers));
    developer.get('/v1/plans', { schema: { response: { 200: PlanList } } }, async () => ({
      plans: (await plans.listPlans()).map(planJson),
    }));
    developer.get(
      '/v1/apps/:id/subscription',
      { schema: { params: Type.Object({ id: AppId }), response: { 200: SubscriptionView } } },
      async (request) => {
        const owned = await apps.get(developerOf(request).id, request.params.id);
        const subscription = owned && (await plans.subscriptionOf(owned.id));
        if (!subscription) throw new Problem('not_found', 'no subscription for this app');
        return subscriptionJson(subscription);
      },
    );
    developer.get(
      '/v1/apps/:id/usage',
      {
        schema: { params: Type.Object({ id: AppId }), querystring: UsageQuery, response: { 200: UsageView } },
      },
      async (request) => {
        const owned = await apps.get(developerOf(request).id, request.params.id);
        if (!owned) throw new Problem('not_found', 'no app with this id');
        const from = parseTimestamp(request.query.from);
        const to = parseTimestamp(request.query.to);
        if (!from || !to || from >= to || to.getTime() - from.getTime() > USAGE_RANGE_MAX_MS) {
          throw new Problem(
            'validation_failed',
            'from and to must be times, from before to, at most 31 days apart',
          );
        }
        await meter.flush(); // this process's latest minutes count too
        return {
          appId: owned.id,
          from: from.toISOString(),
          to: to.toISOString(),
          products: await meter.usage(owned.id, from, to),
        };
      },
    );
    developer.put(
      '/v1/apps/:id/subscription',
      {
        schema: {
          params: Type.Object({ id: AppId }),
          body: Type.Object({ planId: Slug }, { additionalProperties: false }),
          response: { 200: SubscriptionView },
        },
      },
      async (request) => {
        const owned = await apps.get(developerOf(request).id, request.params.id);
        if (!owned) throw new Problem('not_found', 'no app with this id');
        const subscription = await plans.subscribe(owned.id, request.body.planId);
        if (!subscription) throw new Problem('not_found', 'no plan with this id');
        return subscriptionJson(subscription);
      },
    );
  });
}
