// The gateway step every external API route takes after the access token: the app's plan must include the
// route's product, and the call must fit the plan's limits, per app and per app-and-customer. Every
// response says where the caller stands (draft-ietf-httpapi-ratelimit-headers: RateLimit-Policy, RateLimit).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { checks } from '../http/openapi.ts';
import { Problem } from '../http/problems.ts';
import type { createResourceServer } from '../oauth/resource-server.ts';
import type { Plan, Plans, Subscription } from './plans.ts';
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

// The limiter's keys of a calling context, built once per context: a token's context is kept between calls.
const limitKeys = new WeakMap<NonNullable<FastifyRequest['access']>, readonly string[]>();
function limitKeysOf(access: NonNullable<FastifyRequest['access']>): readonly string[] {
  let keys = limitKeys.get(access);
  if (!keys) {
    const app = `app:${access.clientId}`;
    keys = access.subject === access.clientId ? [app] : [app, `${app}:customer:${access.subject}`];
    limitKeys.set(access, keys);
  }
  return keys;
}

export function createGateway(options: GatewayOptions) {
  const now = options.now ?? (() => new Date());

  /** Whether the app's plan admits a call to `product`, within its limits: at once when all is at hand. */
  function admit(product: string, request: FastifyRequest, reply: FastifyReply): void | Promise<void> {
    const access = request.access;
    if (!access) throw new Error('the gateway step runs after requireAccess');
    const cached = options.plans.cachedSubscriptionOf(access.clientId);
    if (cached === undefined) {
      return options.plans
        .subscriptionOf(access.clientId)
        .then((subscription) => limit(product, subscription, request, reply));
    }
    return limit(product, cached.subscription, request, reply);
  }

  function limit(
    product: string,
    subscription: Subscription | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void | Promise<void> {
    const access = request.access as NonNullable<FastifyRequest['access']>;
    if (!subscription) throw new Problem('no_subscription');
    if (subscription.status !== 'active') throw new Problem('subscription_pending');
    if (!subscription.plan.productIds.includes(product)) {
      throw new Problem('product_not_in_plan', `plan ${subscription.plan.id} does not include ${product}`);
    }
    request.product = product;
    const limits = limitsOf(subscription.plan);
    const keys = limitKeysOf(access);
    let states: WindowState[] | Promise<WindowState[]>;
    try {
      states = options.limiter.hit(keys, limits.windows, now());
    } catch (error) {
      throw unavailable(error);
    }
    if (states instanceof Promise) {
      return states.then(
        (counted) => report(counted, limits.policyHeader, reply),
        (error: unknown) => {
          throw unavailable(error);
        },
      );
    }
    report(states, limits.policyHeader, reply);
  }

  function report(states: readonly WindowState[], policyHeader: string, reply: FastifyReply): void {
    // The window closest to its limit is the one to report (and, when over, to wait for).
    let tightest = states[0] as WindowState;
    let exceeded = false;
    let wait = 0;
    let daily = false;
    for (const state of states) {
      if (state.window.limit - state.used < tightest.window.limit - tightest.used) tightest = state;
      if (state.used > state.window.limit) {
        exceeded = true;
        wait = Math.max(wait, state.resetS);
        daily ||= state.window.name === 'day';
      }
    }
    reply.header('ratelimit-policy', policyHeader);
    reply.header(
      'ratelimit',
      `"${tightest.window.name}";r=${Math.max(0, tightest.window.limit - tightest.used)};t=${tightest.resetS}`,
    );
    if (exceeded) {
      options.onRejected?.(daily ? 'quota_exceeded' : 'rate_limited');
      const problem = new Problem(daily ? 'quota_exceeded' : 'rate_limited', `retry in ${wait} s`);
      problem.headers = { 'retry-after': String(wait) };
      throw problem;
    }
  }

  /**
   * The onRequest hook of a route in `product` that needs `scopes`: the token first, then the plan and its
   * limits. One callback-style hook that finishes at once when the token, the app and its plan are cached
   * and the limits are counted in memory, as they are on nearly every call.
   */
  return function gateway(product: string, ...scopes: string[]) {
    const requireAccess = options.requireAccess(...scopes);
    const hook = checks(
      'accessToken',
      (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void): void => {
        requireAccess(request, reply, (error?: Error) => {
          if (error) return done(error);
          let admitted: void | Promise<void>;
          try {
            admitted = admit(product, request, reply);
          } catch (problem) {
            return done(problem as Error);
          }
          if (admitted instanceof Promise) admitted.then(() => done(), done);
          else done();
        });
      },
    );
    return [hook];
  };
}

const unavailable = (error: unknown) =>
  error instanceof RateLimiterUnavailable
    ? new Problem('service_unavailable', 'rate limits cannot be checked')
    : error;
