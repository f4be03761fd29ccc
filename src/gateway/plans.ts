// Products, plans and subscriptions: which routes an app may call and how often.
import { TtlCache } from '../cache.ts';
import { arrayLiteral, type Db } from '../db/db.ts';

export interface Plan {
  readonly id: string;
  readonly name: string;
  readonly productIds: readonly string[];
  readonly ratePerSecond: number;
  readonly ratePerMinute: number;
  readonly dailyQuota: number;
  readonly requiresApproval: boolean;
  readonly isDefault: boolean;
}

export interface Subscription {
  readonly appId: string;
  readonly plan: Plan;
  readonly status: 'active' | 'pending';
}

interface PlanRow {
  id: string;
  name: string;
  product_ids: string[];
  rate_per_second: number;
  rate_per_minute: number;
  daily_quota: number;
  requires_approval: boolean;
  is_default: boolean;
}

const PLAN_COLUMNS = `p.id, p.name, to_jsonb(p.product_ids) as product_ids, p.rate_per_second, p.rate_per_minute, p.daily_quota,
  p.requires_approval, p.is_default`;

const planFromRow = (row: PlanRow): Plan => ({
  id: row.id,
  name: row.name,
  productIds: row.product_ids,
  ratePerSecond: row.rate_per_second,
  ratePerMinute: row.rate_per_minute,
  dailyQuota: row.daily_quota,
  requiresApproval: row.requires_approval,
  isDefault: row.is_default,
});

// Subscriptions are read on every gateway call: cached briefly, dropped at once when changed here.
const SUBSCRIPTION_CACHE_TTL_MS = 1000;

export class Plans {
  readonly #db: Db;
  readonly #now: () => Date;
  readonly #cache = new TtlCache<Subscription | undefined>({ ttlMs: SUBSCRIPTION_CACHE_TTL_MS, max: 10_000 });

  constructor(options: { db: Db; now?: () => Date }) {
    this.#db = options.db;
    this.#now = options.now ?? (() => new Date());
  }

  async listProducts(): Promise<{ id: string; name: string }[]> {
    return this.#db.query('select id, name from api_products order by id');
  }

  async upsertProduct(id: string, name: string): Promise<void> {
    await this.#db.query(
      'insert into api_products (id, name) values ($1, $2) on conflict (id) do update set name = excluded.name',
      [id, name],
    );
  }

  async listPlans(): Promise<Plan[]> {
    return (await this.#db.query<PlanRow>(`select ${PLAN_COLUMNS} from plans p order by p.id`)).map(
      planFromRow,
    );
  }

  /**
   * Creates or replaces a plan; undefined when it names a product that does not exist. Without `isDefault`,
   * a plan keeps whether it is the default (a new one is not): changing the default plan's limits must not
   * leave new apps with no plan.
   */
  async upsertPlan(
    plan: Omit<Plan, 'isDefault'> & { readonly isDefault?: boolean },
  ): Promise<Plan | undefined> {
    const known = await this.#db.query<{ id: string }>(
      'select id from api_products where id = any($1::text::text[])',
      [arrayLiteral(plan.productIds)],
    );
    if (known.length !== new Set(plan.productIds).size) return undefined;
    const [stored] = await this.#db.transaction(async (tx) => {
      if (plan.isDefault)
        await tx.query('update plans set is_default = false where is_default and id <> $1', [plan.id]);
      return tx.query<PlanRow>(
        `insert into plans as p (id, name, product_ids, rate_per_second, rate_per_minute, daily_quota, requires_approval, is_default)
         values ($1, $2, $3::text::text[], $4, $5, $6, $7, coalesce($8::boolean, false))
         on conflict (id) do update set name = excluded.name, product_ids = excluded.product_ids,
           rate_per_second = excluded.rate_per_second, rate_per_minute = excluded.rate_per_minute,
           daily_quota = excluded.daily_quota, requires_approval = excluded.requires_approval,
           is_default = coalesce($8::boolean, p.is_default)
         returning ${PLAN_COLUMNS}`,
        [
          plan.id,
          plan.name,
          arrayLiteral(plan.productIds),
          plan.ratePerSecond,
          plan.ratePerMinute,
          plan.dailyQuota,
          plan.requiresApproval,
          plan.isDefault ?? null,
        ],
      );
    });
    this.#cache.clear();
    return stored && planFromRow(stored);
  }

  /** Subscribes an app; pending when the plan needs an operator's approval. Undefined: no such plan. */
  async subscribe(appId: string, planId: string): Promise<Subscription | undefined> {
    const now = this.#now();
    const rows = await this.#db.query(
      `insert into subscriptions (app_id, plan_id, status, created_at, updated_at)
       select $1, p.id, case when p.requires_approval then 'pending' else 'active' end, $3, $3 from plans p where p.id = $2
       on conflict (app_id) do update set plan_id = excluded.plan_id, status = excluded.status, updated_at = excluded.updated_at
       returning 1`,
      [appId, planId, now],
    );
    this.#cache.delete(appId);
    return rows.length === 1 ? this.#load(appId) : undefined;
  }

  async subscribeToDefault(appId: string): Promise<void> {
    const [plan] = await this.#db.query<{ id: string }>('select id from plans where is_default');
    if (plan) await this.subscribe(appId, plan.id);
  }

  async approve(appId: string): Promise<Subscription | undefined> {
    await this.#db.query(`update subscriptions set status = 'active', updated_at = $2 where app_id = $1`, [
      appId,
      this.#now(),
    ]);
    this.#cache.delete(appId);
    return this.#load(appId);
  }

  subscriptionOf(appId: string): Promise<Subscription | undefined> {
    return this.#cache.get(appId, () => this.#load(appId));
  }

  /** `subscriptionOf`'s answer when it is cached and fresh, without waiting; undefined when it must be read. */
  cachedSubscriptionOf(appId: string): { readonly subscription: Subscription | undefined } | undefined {
    const peeked = this.#cache.peek(appId);
    return peeked && { subscription: peeked.value };
  }

  async #load(appId: string): Promise<Subscription | undefined> {
    const [row] = await this.#db.query<PlanRow & { status: 'active' | 'pending' }>(
      `select ${PLAN_COLUMNS}, s.status from subscriptions s join plans p on p.id = s.plan_id where s.app_id = $1`,
      [appId],
    );
    return row && { appId, plan: planFromRow(row), status: row.status };
  }
}
