// The gateway step every external API route takes after the access token: the app's plan must include the
// route's product, and the call must fit the plan's limits, per app and per app-and-customer. Every
// response says where the caller stands (draft-ietf-httpapi-ratelimit-headers: RateLimit-Policy, RateLimit).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Problem } from '../http/problems.ts';
import type { createResourceServer } from '../oauth/resource-server.ts';
import type { Plan, Plans } from './plans.ts';
import { type RateLimiter, RateLimiterUnavailable, type Window, type WindowState } from './rate-limit.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The API product of the route, once the gateway admitted the call. */
    product?: string;
  }
}

export interface GatewayOptions {
  readonly requireAccess: ReturnType<typeof createResourceServer>;
  readonly plans: Plans;
  readonly limiter: RateLimiter;
  readonly now?: () => Date;
  /** Counts rejections for metrics. */
  readonly onRejected?: (reason: 'rate_limited' | 'quota_exceeded') => void;
}

// A plan's windows and policy header, built once per plan object rather than on every call.
const limitsByPlan = new WeakMap<Plan, { windows: Window[]; policyHeader: string }>();
function limitsOf(plan: Plan): { windows: Window[]; policyHeader: string } {
  let limits = limitsByPlan.get(plan);
  if (!limits) {
    const windows: Window[] = [
      { name: 'second', limit: plan.ratePerSecond, seconds: 1 },
      { name: 'minute', limit: plan.ratePerMinute, seconds: 60 },
      { name: 'day', limit: plan.dailyQuota, seconds: 86_400 },
    ];
    limits = {
      windows,
      policyHeader: windows.map((w) => `"${w.name}";q=${w.limit};w=${w.seconds}`).join(', '),
    };
    limitsByPlan.set(plan, limits);
  }
  return limits;
}

export function createGateway(options: GatewayOptions) {
  const now = options.now ?? (() => new Date());

  async function admit(product: string, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const access = request.access;
    if (!access) throw new Error('the gateway step runs after requireAccess');
    const subscription = await options.plans.subscriptionOf(access.clientId);
    if (!subscription) throw new Problem('no_subscription');
    if (subscription.status !== 'active') throw new Problem('subscription_pending');
    if (!subscription.plan.productIds.includes(product)) {
      throw new Problem('product_not_in_plan', `plan ${subscription.plan.id} does not include ${product}`);
    }
    request.product = product;
    const { windows, policyHeader } = limitsOf(subscription.plan);
    const at = now();
    let states: WindowState[];
    try {
      const keys = [`app:${access.clientId}`];
      if (access.subject !== access.clientId) keys.push(`app:${access.clientId}:customer:${access.subject}`);
      states = (await Promise.all(keys.map((key) => options.limiter.hit(key, windows, at)))).flat();
    } catch (error) {
      if (error instanceof RateLimiterUnavailable)
        throw new Problem('service_unavailable', 'rate limits cannot be checked');
      throw error;
    }
    // The window closest to its limit is the one to report (and, when over, to wait for).
    const tightest = states.reduce((a, b) => (b.window.limit - b.used < a.window.limit - a.used ? b : a));
    reply.header('ratelimit-policy', policyHeader);
    reply.header(
      'ratelimit',
      `"${tightest.window.name}";r=${Math.max(0, tightest.window.limit - tightest.used)};t=${tightest.resetS}`,
    );
    const exceeded = states.filter((state) => state.used > state.window.limit);
    if (exceeded.length > 0) {
      const wait = Math.max(...exceeded.map((state) => state.resetS));
      const daily = exceeded.some((state) => state.window.name === 'day');
      options.onRejected?.(daily ? 'quota_exceeded' : 'rate_limited');
      const problem = new Problem(daily ? 'quota_exceeded' : 'rate_limited', `retry in ${wait} s`);
      problem.headers = { 'retry-after': String(wait) };
      throw problem;
    }
  }

  /** The onRequest hooks of a route in `product` that needs `scopes`: token first, then plan and limits. */
  return function gateway(product: string, ...scopes: string[]) {
    return [
      options.requireAccess(...scopes),
      (request: FastifyRequest, reply: FastifyReply) => admit(product, request, reply),
    ];
  };
}
