// Scheduled payments and standing orders. Setting one up checks it as a payment (consent terms, accounts,
// IBAN) and consumes an app's consent; the scheduler then works in two steps, each safe in any number of
// processes at once:
//   1. due orders are locked with FOR UPDATE SKIP LOCKED, each due occurrence (missed ones too, when the
//      server was down) becomes a `pending` run keyed by (order, date), and the order moves to its next date;
//   2. pending runs become payments keyed by the order and the date, so a run two processes pick up pays once.
// A run refused on the day (insufficient funds) is recorded as failed and not retried: the next occurrence
// is a new payment.
import { isDeepStrictEqual } from 'node:util';
import { v7 as uuidv7 } from 'uuid';
import type { Consents } from '../consents/service.ts';
import type { Consent } from '../consents/store.ts';
import type { Db } from '../db/db.ts';
import { emit } from '../events/outbox.ts';
import { requestHash } from '../idempotency.ts';
import { currencyExponent, formatAmount, type Minor } from '../money.ts';
import { fieldContext, type Pii } from '../pii/pii.ts';
import {
  advanceOrder,
  cancelOrder,
  findOrder,
  findOrderByKey,
  finishRun,
  insertOrder,
  insertRun,
  listOrders,
  lockDueOrders,
  type OrderRun,
  pendingRuns,
  runsOf,
  type StoredOrder,
} from './orders-store.ts';
import { type Frequency, formatDate, nthRun, parseDate, type Schedule } from './schedule.ts';
import {
  ConsentNoLongerActive,
  type Initiator,
  idempotencyScopeOf,
  type PaymentInstruction,
  type PaymentProblem,
  type Payments,
} from './service.ts';

export const ORDERS_PAGE_MAX = 100;
// Bounds on what one order may ask and one scheduler pass may do.
export const ORDER_HORIZON_DAYS = 366;
export const ORDER_RUNS_MAX = 1000;
const DUE_ORDERS_PER_PASS = 200;
const CATCH_UP_RUNS_MAX = 62;
const PENDING_RUNS_PER_PASS = 500;

export interface OrderInstruction extends PaymentInstruction {
  readonly schedule: {
    readonly firstDate: string;
    readonly frequency?: Frequency | undefined;
    readonly lastDate?: string | undefined;
    readonly count?: number | undefined;
  };
}

export interface PaymentOrder {
  readonly id: string;
  readonly kind: 'scheduled' | 'standing';
  readonly clientId: string | null;
  readonly customerId: string;
  /** The app's consent it was set up under (null: the customer's own). */
  readonly consentId: string | null;
  readonly debtorAccountId: string;
  readonly creditor: { readonly name: string; readonly iban: string };
  readonly instructedAmount: { readonly amount: string; readonly currency: string };
  readonly reference: string | null;
  readonly schedule: Schedule;
  readonly nextRunOn: string | null;
  readonly status: StoredOrder['status'];
  readonly runs: readonly OrderRun[];
  readonly createdAt: Date;
  /** When its status or next date last changed. */
  readonly updatedAt: Date;
}

export type OrderProblem = PaymentProblem | 'invalid_schedule';
export type CreateOrderOutcome =
  | { ok: true; order: PaymentOrder; replayed: boolean }
  | { ok: false; code: OrderProblem | 'consent_not_active'; detail?: string };

/** The schedule a payment consent's customer authorised, when the consent names one (consents/routes.ts). */
export interface AuthorisedSchedule {
  readonly firstDate: string;
  readonly frequency: Frequency | null;
  readonly lastDate: string | null;
  readonly count: number | null;
}

/**
 * Dynamic linking of the dates (PSD2 RTS Art. 5): an order under a consent that names a schedule follows it
 * exactly; one under a consent without (its page said "once") pays once.
 */
function scheduleMismatch(consent: Consent, schedule: OrderInstruction['schedule']): string | undefined {
  const authorised = consent.details.schedule as AuthorisedSchedule | undefined;
  if (authorised === undefined) {
    return schedule.frequency ? 'the customer authorised one payment, not a standing order' : undefined;
  }
  const asked: AuthorisedSchedule = {
    firstDate: schedule.firstDate,
    frequency: schedule.frequency ?? null,
    lastDate: schedule.lastDate ?? null,
    count: schedule.count ?? null,
  };
  return isDeepStrictEqual(asked, authorised)
    ? undefined
    : 'the schedule differs from the one the customer authorised';
}

export class PaymentOrders {
  readonly #db: Db;
  readonly #payments: Payments;
  readonly #consents: Consents;
  readonly #pii: Pii;
  readonly #now: () => Date;

  constructor(options: { db: Db; payments: Payments; consents: Consents; pii: Pii; now?: () => Date }) {
    this.#db = options.db;
    this.#payments = options.payments;
    this.#consents = options.consents;
    this.#pii = options.pii;
    this.#now = options.now ?? (() => new Date());
  }

  #scheduleProblem(input: OrderInstruction['schedule'], today: string): string | undefined {
    const first = parseDate(input.firstDate);
    if (!first) return 'firstDate is not a date that exists';
    if (input.firstDate < today) return 'firstDate is in the past';
    const horizon = formatDate(new Date(Date.parse(`${today}T00:00:00Z`) + ORDER_HORIZON_DAYS * 86_400_000));
    if (input.firstDate > horizon) return `firstDate is more than ${ORDER_HORIZON_DAYS} days ahead`;
    if (!input.frequency) {
      if (input.lastDate !== undefined || input.count !== undefined)
        return 'a payment without a frequency happens once';
      return undefined;
    }
    if (input.lastDate !== undefined) {
      if (!parseDate(input.lastDate)) return 'lastDate is not a date that exists';
      if (input.lastDate < input.firstDate) return 'lastDate is before firstDate';
    }
    if (
      input.count !== undefined &&
      (!Number.isSafeInteger(input.count) || input.count < 1 || input.count > ORDER_RUNS_MAX)
    ) {
      return `count must be 1 to ${ORDER_RUNS_MAX}`;
    }
    return undefined;
  }

  async create(
    initiator: Initiator,
    key: string,
    instruction: OrderInstruction,
  ): Promise<CreateOrderOutcome> {
    if (initiator.kind === 'order') throw new Error('orders are not created by orders');
    const scope = idempotencyScopeOf(initiator);
    const hash = requestHash(instruction);
    const existing = await findOrderByKey(this.#db, scope, key);
    if (existing) {
      return existing.requestHash === hash
        ? { ok: true, order: await this.#view(existing), replayed: true }
        : { ok: false, code: 'idempotency_key_reused' };
    }
    const now = this.#now();
    const problem = this.#scheduleProblem(instruction.schedule, formatDate(now));
    if (problem) return { ok: false, code: 'invalid_schedule', detail: problem };
    const unlike = initiator.kind === 'app' && scheduleMismatch(initiator.consent, instruction.schedule);
    if (unlike) return { ok: false, code: 'consent_mismatch', detail: unlike };
    const checked = await this.#payments.check(initiator, instruction);
    if (!checked.ok) return checked;
    const id = uuidv7();
    const frequency = instruction.schedule.frequency ?? null;
    const order: StoredOrder = {
      id,
      kind: frequency ? 'standing' : 'scheduled',
      clientId: initiator.kind === 'app' ? initiator.clientId : null,
      customerId: initiator.customerId,
      consentId: initiator.kind === 'app' ? initiator.consent.id : null,
      idempotencyScope: scope,
      idempotencyKey: key,
      requestHash: hash,
      debtorAccountId: checked.debtor.id,
      creditorNameEnc: this.#pii.encrypt(
        instruction.creditor.name,
        fieldContext('payment_orders', 'creditor_name_enc', id),
      ),
      creditorIban: checked.creditorIban,
      currency: instruction.instructedAmount.currency,
      amount: checked.amount.minor,
      reference: instruction.reference ?? null,
      frequency,
      firstDate: instruction.schedule.firstDate,
      lastDate: instruction.schedule.lastDate ?? null,
      runCountMax: instruction.schedule.count ?? null,
      nextRunOn: instruction.schedule.firstDate,
      runsCreated: 0,
      status: 'active',
      createdAt: now,
      updatedAt: now,
    };
    try {
      const inserted = await this.#db.transaction(async (tx) => {
        if (!(await insertOrder(tx, order))) return false;
        if (initiator.kind === 'app' && !(await this.#consents.consume(initiator.consent, tx))) {
          throw new ConsentNoLongerActive();
        }
        await emit(tx, now, this.#event(order, 'created'));
        return true;
      });
      if (!inserted) {
        const twin = await findOrderByKey(this.#db, scope, key);
        if (!twin) throw new Error('order key conflict without an order');
        return twin.requestHash === hash
          ? { ok: true, order: await this.#view(twin), replayed: true }
          : { ok: false, code: 'idempotency_key_reused' };
      }
    } catch (error) {
      if (error instanceof ConsentNoLongerActive) return { ok: false, code: 'consent_not_active' };
      throw error;
    }
    return { ok: true, order: await this.#view(order), replayed: false };
  }

  #event(order: StoredOrder, what: string, extra: Record<string, unknown> = {}) {
    return {
      type: `payment_order.${what}`,
      subjectId: order.id,
      payload: { orderId: order.id, clientId: order.clientId, customerId: order.customerId, ...extra },
    };
  }

  async #view(order: StoredOrder): Promise<PaymentOrder> {
    return {
      id: order.id,
      kind: order.kind,
      clientId: order.clientId,
      customerId: order.customerId,
      consentId: order.consentId,
      debtorAccountId: order.debtorAccountId,
      creditor: {
        name: await this.#pii.decrypt(
          order.creditorNameEnc,
          fieldContext('payment_orders', 'creditor_name_enc', order.id),
        ),
        iban: order.creditorIban,
      },
      instructedAmount: {
        amount: formatAmount(order.amount as Minor, currencyExponent(order.currency) ?? 2),
        currency: order.currency,
      },
      reference: order.reference,
      schedule: {
        first: order.firstDate,
        frequency: order.frequency,
        last: order.lastDate,
        countMax: order.runCountMax,
      },
      nextRunOn: order.nextRunOn,
      status: order.status,
      runs: await runsOf(this.#db, order.id),
      createdAt: order.createdAt,
      updatedAt: order.updatedAt,
    };
  }

  /** The order, if `who` may see it: the app that set it up, or its customer. */
  async get(
    who: { clientId: string } | { customerId: string },
    id: string,
  ): Promise<PaymentOrder | undefined> {
    const order = await findOrder(this.#db, id);
    if (!order) return undefined;
    const visible = 'clientId' in who ? order.clientId === who.clientId : order.customerId === who.customerId;
    return visible ? this.#view(order) : undefined;
  }

  async list(customerId: string, afterId: string | undefined, limit: number): Promise<PaymentOrder[]> {
    const orders = await listOrders(this.#db, customerId, afterId, Math.min(limit, ORDERS_PAGE_MAX + 1));
    return Promise.all(orders.map((order) => this.#view(order)));
  }

  /** Customers cancel any of theirs; apps only those they set up. Undefined: not theirs, or not active. */
  async cancel(
    who: { clientId: string } | { customerId: string },
    id: string,
  ): Promise<PaymentOrder | 'not_found' | 'not_active'> {
    const order = await findOrder(this.#db, id);
    const visible =
      order && ('clientId' in who ? order.clientId === who.clientId : order.customerId === who.customerId);
    if (!order || !visible) return 'not_found';
    const now = this.#now();
    const cancelled = await this.#db.transaction(async (tx) => {
      const done = await cancelOrder(tx, id, now);
      if (done) await emit(tx, now, this.#event(done, 'cancelled'));
      return done;
    });
    return cancelled ? this.#view(cancelled) : 'not_active';
  }

  /** One scheduler pass: due occurrences become runs, then pending runs become payments. */
  async runDue(): Promise<{ runsCreated: number; paid: number; failed: number }> {
    const runsCreated = await this.#createDueRuns(formatDate(this.#now()));
    const { paid, failed } = await this.#payPendingRuns();
    return { runsCreated, paid, failed };
  }

  async #createDueRuns(today: string): Promise<number> {
    const now = this.#now();
    return this.#db.transaction(async (tx) => {
      let created = 0;
      for (const order of await lockDueOrders(tx, today, DUE_ORDERS_PER_PASS)) {
        const schedule: Schedule = {
          first: order.firstDate,
          frequency: order.frequency,
          last: order.lastDate,
          countMax: order.runCountMax,
        };
        let n = order.runsCreated;
        let next = nthRun(schedule, n);
        // Every occurrence due by today, missed ones included, bounded per pass (the next pass continues).
        for (
          let caughtUp = 0;
          next !== undefined && next <= today && caughtUp < CATCH_UP_RUNS_MAX;
          caughtUp++
        ) {
          await insertRun(tx, order.id, next, now);
          created++;
          n++;
          next = nthRun(schedule, n);
        }
        await advanceOrder(tx, order.id, {
          nextRunOn: next ?? null,
          runsCreated: n,
          status: next === undefined ? 'completed' : 'active',
          at: now,
        });
      }
      return created;
    });
  }

  async #payPendingRuns(): Promise<{ paid: number; failed: number }> {
    let paid = 0;
    let failed = 0;
    for (const run of await pendingRuns(this.#db, PENDING_RUNS_PER_PASS)) {
      const order = await findOrder(this.#db, run.orderId);
      if (!order) throw new Error(`run of a missing order ${run.orderId}`);
      const now = this.#now();
      if (order.status === 'cancelled') {
        await finishRun(this.#db, {
          ...run,
          status: 'failed',
          paymentId: null,
          outcome: 'order_cancelled',
          at: now,
        });
        failed++;
        continue;
      }
      const outcome = await this.#payments.initiate(
        { kind: 'order', orderId: order.id, clientId: order.clientId, customerId: order.customerId },
        run.runOn,
        {
          instructedAmount: {
            amount: formatAmount(order.amount as Minor, currencyExponent(order.currency) ?? 2),
            currency: order.currency,
          },
          creditor: {
            name: await this.#pii.decrypt(
              order.creditorNameEnc,
              fieldContext('payment_orders', 'creditor_name_enc', order.id),
            ),
            iban: order.creditorIban,
          },
          ...(order.reference === null ? {} : { reference: order.reference }),
          debtorAccountId: order.debtorAccountId,
        },
      );
      const ok = outcome.ok && outcome.payment.status !== 'rejected';
      const code = outcome.ok ? outcome.payment.rejectionCode : outcome.code;
      const finished = await this.#db.transaction(async (tx) => {
        const done = await finishRun(tx, {
          ...run,
          status: ok ? 'paid' : 'failed',
          paymentId: outcome.ok ? outcome.payment.id : null,
          outcome: ok ? null : code,
          at: now,
        });
        if (done) {
          await emit(
            tx,
            now,
            this.#event(order, ok ? 'run_paid' : 'run_failed', {
              runOn: run.runOn,
              ...(outcome.ok ? { paymentId: outcome.payment.id } : {}),
              ...(ok ? {} : { code }),
            }),
          );
        }
        return done;
      });
      if (finished && ok) paid++;
      else if (finished) failed++;
    }
    return { paid, failed };
  }
}
