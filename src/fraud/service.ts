// Fraud screening of outgoing payments: every payment passes the rules before money moves; blocked and
// step-up payments open a case operators work. Rules are data (fraud_rules): the service caches them and
// notices a change on the next screening, through the rule set's version read with the history.
//
// One screening is one read (the rule set's version, the payment's earlier screening and the customer's
// history, src/fraud/store.ts) and one write (the screening, and its case when there is one), with the
// rules evaluated in memory between. The verdict does not wait for the write: the payment's next statements
// follow it on the connection, so the record costs the payment no round trip of its own.

import { createHash } from 'node:crypto';
import { isValidIBAN } from 'ibantools';
import { v7 as uuidv7 } from 'uuid';
import { normaliseIban } from '../accounts/iban.ts';
import type { Db, Sql } from '../db/db.ts';
import { alone, type Jointly } from '../db/group-commit.ts';
import type { FieldError } from '../http/problems.ts';
import {
  compileRule,
  evaluate,
  type HistoryPlan,
  planHistory,
  type Reason,
  type Rule,
  type RuleAction,
  type ScreeningInput,
  type StoredRule,
  samePlan,
  type Verdict,
} from './rules.ts';
import {
  addToBlocklist,
  type BlocklistEntry,
  type CaseOutcome,
  type CaseStatus,
  claimCase,
  findCase,
  findRule,
  listBlocklist,
  listCases,
  loadRules,
  lockCustomerHistories,
  readHistories,
  recordScreenings,
  removeFromBlocklist,
  resolveCase,
  type StoredCase,
  type StoredScreening,
  updateRule,
} from './store.ts';

export type { ScreeningInput } from './rules.ts';

export const CASES_PAGE_MAX = 100;
export const BLOCKLIST_PAGE_MAX = 200;
// A claim not acted on within this time may be taken over by another operator.
export const CASE_CLAIM_MS = 30 * 60 * 1000;

export interface ScreeningResult {
  readonly verdict: Verdict;
  readonly reasons: readonly Reason[];
  readonly screeningId: string;
  /** Settles when the verdict is written (at once for one screened before); rejects if it could not be. */
  readonly recorded: Promise<void>;
}

export type CaseProblem =
  | 'not_found'
  | 'fraud_case_resolved'
  | 'fraud_case_not_claimed'
  | 'fraud_case_claimed_by_another';

export type CaseOutcomeResult = { ok: true; case: StoredCase } | { ok: false; code: CaseProblem };

export type RuleChangeResult =
  | { ok: true; rule: StoredRule }
  | { ok: false; code: 'not_found' }
  | { ok: false; code: 'invalid_parameters'; errors: FieldError[] };

interface CachedRules {
  readonly version: bigint;
  readonly rules: readonly Rule[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The device a payment came from, as a hash: the app's device id when it sent one, else the browser's user
 * agent. Hashed so neither is kept as sent; a user agent alone is a weak signal, and the rule says so.
 */
export function deviceKeyOf(context: ScreeningInput['context']): string | null {
  const device = context.deviceId
    ? `id:${context.deviceId}`
    : context.userAgent
      ? `ua:${context.userAgent}`
      : null;
  return device === null ? null : createHash('sha256').update(device).digest('base64url');
}

/** Programmer errors: the payment path checked all of this before asking. */
function assertInput(input: ScreeningInput): void {
  for (const [name, id] of [
    ['paymentId', input.paymentId],
    ['customerId', input.customerId],
    ['debtorAccountId', input.debtorAccountId],
  ] as const) {
    if (!UUID.test(id)) throw new Error(`screen: ${name} is not a UUID`);
  }
  if (typeof input.amountMinor !== 'bigint' || input.amountMinor <= 0n)
    throw new Error('screen: amountMinor must be a positive bigint');
  if (!/^[A-Z]{3}$/.test(input.currency)) throw new Error('screen: currency must be an ISO 4217 code');
  if (Number.isNaN(input.at.getTime())) throw new Error('screen: at is not a valid date');
}

/** A payment screened before answers with its first verdict, if it is still the same payment. */
function firstVerdict(first: StoredScreening, input: ScreeningInput): ScreeningResult {
  if (
    first.customerId !== input.customerId ||
    first.amountMinor !== input.amountMinor ||
    first.currency !== input.currency
  ) {
    throw new Error(`payment ${input.paymentId} was screened before with other details`);
  }
  return {
    verdict: first.verdict,
    reasons: first.reasons,
    screeningId: first.id,
    recorded: Promise.resolve(),
  };
}

function compileAll(rules: readonly StoredRule[]): Rule[] {
  return rules.map((stored) => {
    const compiled = compileRule(stored);
    // The operator API validates every change; a rule that fails here was edited around it. Refusing to
    // screen (and so to pay) is safer than screening with a rule silently dropped.
    if (!compiled.ok) {
      const why = compiled.errors.map((error) => `${error.field} ${error.message}`).join('; ');
      throw new Error(`fraud rule ${stored.id} has invalid parameters: ${why}`);
    }
    return compiled.rule;
  });
}

export class FraudScreening {
  readonly #db: Db;
  readonly #now: () => Date;
  #cached: CachedRules | undefined;

  constructor(options: { db: Db; now?: () => Date }) {
    this.#db = options.db;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * Screens one outgoing payment before its money moves, records the verdict and, for block or step_up,
   * opens a case. Screening a payment again returns its first verdict, and records nothing.
   *
   * Without `sql`, in a transaction of its own, recorded when it returns. With `sql`, in the caller's
   * transaction (and only there: on PGlite a query through the Db would wait for that transaction forever),
   * and the customer's next screening waits for its commit; with `jointly` too, the read and the record each
   * go in one statement with the other screenings of the caller's group (src/db/group-commit.ts). The
   * verdict comes back as soon as it is known: its record is on its way behind it, and `recorded` settles
   * when it is written. The caller sends its next statements meanwhile (they follow the record on the
   * connection) and awaits `recorded` before it commits; a failed record has aborted the transaction.
   */
  async screen(input: ScreeningInput, sql?: Sql, jointly?: Jointly): Promise<ScreeningResult> {
    const started = process.hrtime.bigint();
    assertInput(input);
    if (sql) return this.#screen(input, sql, jointly ?? alone(sql), started);
    return this.#db.transaction(async (tx) => {
      const result = await this.#screen(input, tx, alone(tx), started);
      await result.recorded;
      return result;
    });
  }

  async #screen(input: ScreeningInput, on: Sql, jointly: Jointly, started: bigint): Promise<ScreeningResult> {
    // One customer's screenings one at a time, until the payment commits: otherwise a burst of parallel
    // payments would each read a history without the others, and slip under the velocity limits together.
    // (PGlite is one connection: its transactions already run one at a time.)
    // The lock and the history read leave together (one round trip); the connection runs them in order, so
    // the read sees every screening committed before the lock was granted, this payment's own among them if
    // it was screened before. In a group, each is one statement for the group's screenings (joint calls).
    const locked =
      this.#db.kind === 'postgres' ? jointly(lockCustomerHistories, input.customerId) : undefined;
    locked?.catch(() => {}); // awaited below; a failure then, not an unhandled rejection meanwhile
    const creditorIban = normaliseIban(input.creditorIban);
    const deviceKey = deviceKeyOf(input.context);
    const query = (plan: HistoryPlan) => ({
      paymentId: input.paymentId,
      customerId: input.customerId,
      currency: input.currency,
      creditorIban,
      deviceKey,
      at: input.at,
      plan,
    });
    let rules = this.#cached ?? (await this.#reload(on));
    let plan = planHistory(rules.rules, input);
    let [read] = await Promise.all([jointly(readHistories, query(plan)), locked]);
    // Screened before (a retry): its first verdict stands.
    if (read.screened) return firstVerdict(read.screened, input);
    // The rule set changed since it was cached: take the new one, and read again only if it needs other
    // history. Evaluated with `rules`, recorded with `rules.version`, whatever changes meanwhile.
    if (read.rulesVersion !== rules.version) {
      rules = await this.#reload(on);
      const replanned = planHistory(rules.rules, input);
      if (!samePlan(plan, replanned)) read = await alone(on)(readHistories, query(replanned));
      plan = replanned;
    }
    const { verdict, reasons } = evaluate(rules.rules, { ...input, creditorIban }, read.history, plan);
    const latencyUs = Number((process.hrtime.bigint() - started) / 1000n);

    const screening: StoredScreening = {
      id: uuidv7(),
      paymentId: input.paymentId,
      customerId: input.customerId,
      debtorAccountId: input.debtorAccountId,
      amountMinor: input.amountMinor,
      currency: input.currency,
      creditorIban,
      deviceKey,
      at: input.at,
      verdict,
      reasons,
      ruleVersions: Object.fromEntries(rules.rules.filter((r) => r.enabled).map((r) => [r.id, r.version])),
      rulesVersion: rules.version,
      latencyUs,
    };
    const openCase = verdict === 'allow' ? undefined : { id: uuidv7(), at: this.#now() };
    // Under the customer's lock nobody else screens this payment; a screening of it found already recorded
    // is one written without the lock, and the transaction that wrote it is the one to answer.
    const recorded = jointly(recordScreenings, { screening, openCase }).then((inserted) => {
      if (!inserted) throw new Error(`payment ${input.paymentId} was screened meanwhile`);
    });
    recorded.catch(() => {}); // the caller awaits it; a failure then, not an unhandled rejection meanwhile
    return { verdict, reasons, screeningId: screening.id, recorded };
  }

  async #reload(sql: Sql): Promise<CachedRules> {
    const loaded = await loadRules(sql);
    const rules = compileAll(loaded.rules);
    const fresh = { version: loaded.version, rules };
    // Two screenings may reload at once: the newer set wins, whichever finishes last.
    if (!this.#cached || this.#cached.version < fresh.version) this.#cached = fresh;
    return fresh;
  }

  // ---------------------------------------------------------------------------------------------- rules

  /** Every rule. The set is the migration's catalogue (operators change rules, never add them): small. */
  async rules(): Promise<StoredRule[]> {
    return (await loadRules(this.#db)).rules;
  }

  /** Changes a rule; screenings everywhere use it from their next payment on. */
  async updateRule(
    id: string,
    change: {
      enabled?: boolean | undefined;
      action?: RuleAction | undefined;
      parameters?: Readonly<Record<string, unknown>> | undefined;
      changedBy: string;
    },
  ): Promise<RuleChangeResult> {
    const stored = await findRule(this.#db, id);
    if (!stored) return { ok: false, code: 'not_found' };
    if (change.parameters !== undefined) {
      const compiled = compileRule({ ...stored, parameters: change.parameters });
      if (!compiled.ok) return { ok: false, code: 'invalid_parameters', errors: compiled.errors };
    }
    const updated = await updateRule(this.#db, id, {
      enabled: change.enabled,
      action: change.action,
      parameters: change.parameters,
      by: change.changedBy,
      at: this.#now(),
    });
    return updated ? { ok: true, rule: updated } : { ok: false, code: 'not_found' };
  }

  // ----------------------------------------------------------------------------------------- block list

  listBlocklist(after: string | undefined, limit: number): Promise<BlocklistEntry[]> {
    return listBlocklist(this.#db, after, limit);
  }

  async addToBlocklist(entry: {
    iban: string;
    reason: string;
    addedBy: string;
  }): Promise<
    { ok: true; entry: BlocklistEntry; added: boolean } | { ok: false; code: 'invalid_creditor_iban' }
  > {
    const iban = normaliseIban(entry.iban);
    if (!isValidIBAN(iban)) return { ok: false, code: 'invalid_creditor_iban' };
    const result = await addToBlocklist(this.#db, { ...entry, iban, addedAt: this.#now() });
    return { ok: true, ...result };
  }

  removeFromBlocklist(iban: string): Promise<boolean> {
    return removeFromBlocklist(this.#db, normaliseIban(iban));
  }

  // ---------------------------------------------------------------------------------------------- cases

  listCases(status: CaseStatus | undefined, after: string | undefined, limit: number): Promise<StoredCase[]> {
    return listCases(this.#db, status, after, limit);
  }

  /** The case with the screening that opened it: verdict, reasons, rule versions, the payment's facts. */
  getCase(id: string): Promise<{ case: StoredCase; screening: StoredScreening } | undefined> {
    return findCase(this.#db, id);
  }

  async claimCase(id: string, reviewer: string): Promise<CaseOutcomeResult> {
    const now = this.#now();
    const claimed = await claimCase(this.#db, id, reviewer, now, new Date(now.getTime() - CASE_CLAIM_MS));
    if (claimed) return { ok: true, case: claimed };
    const found = await findCase(this.#db, id);
    if (!found) return { ok: false, code: 'not_found' };
    return {
      ok: false,
      code: found.case.status === 'resolved' ? 'fraud_case_resolved' : 'fraud_case_claimed_by_another',
    };
  }

  /** Resolves a case the reviewer holds. A confirmed fraud leaves the customer's history for good. */
  async resolveCase(
    id: string,
    resolution: { reviewer: string; outcome: CaseOutcome; note: string },
  ): Promise<CaseOutcomeResult> {
    return this.#db.transaction(async (tx): Promise<CaseOutcomeResult> => {
      const found = await findCase(tx, id, true);
      if (!found) return { ok: false, code: 'not_found' };
      if (found.case.status === 'resolved') return { ok: false, code: 'fraud_case_resolved' };
      if (found.case.claimedBy !== resolution.reviewer) {
        return {
          ok: false,
          code: found.case.claimedBy ? 'fraud_case_claimed_by_another' : 'fraud_case_not_claimed',
        };
      }
      return { ok: true, case: await resolveCase(tx, id, { ...resolution, at: this.#now() }) };
    });
  }
}
