// The fraud rules: each type's parameters, what history it needs, and the verdict a set of rules reaches
// for one payment. Pure: the history arrives already summarised (service.ts reads it in one query), so
// every rule is decided here in memory, and tested here without a database.
import { type Static, type TSchema, Type } from 'typebox';
import { Value } from 'typebox/value';
import type { FieldError } from '../http/problems.ts';
import { AMOUNT_PATTERN, currencyExponent, formatAmount, parseAmount } from '../money.ts';

export const VERDICTS = ['allow', 'step_up', 'block'] as const;
export type Verdict = (typeof VERDICTS)[number];
export const RULE_ACTIONS = ['step_up', 'block'] as const;
export type RuleAction = (typeof RULE_ACTIONS)[number];
export const RULE_TYPES = [
  'velocity',
  'amount_outlier',
  'new_payee',
  'blocklisted_payee',
  'unusual_hour',
  'new_device',
] as const;
export type RuleType = (typeof RULE_TYPES)[number];

/** One outgoing payment, as the payment path hands it over before any money moves. */
export interface ScreeningInput {
  readonly paymentId: string;
  readonly customerId: string;
  readonly debtorAccountId: string;
  readonly amountMinor: bigint;
  readonly currency: string;
  readonly creditorIban: string;
  /** Not used by any rule yet, and never stored: it may be a person's name. */
  readonly creditorName: string;
  readonly at: Date;
  readonly context: {
    /** Not used by any rule yet, and never stored. */
    readonly ip?: string;
    readonly userAgent?: string;
    readonly deviceId?: string;
  };
}

export interface Reason {
  readonly rule: string;
  readonly detail: string;
}

// ------------------------------------------------------------------------------------------- parameters

// Limits on what an operator may set: every window and lookback stays within what the history query
// reads, and every count within what it can see (HISTORY_AMOUNTS_MAX).
export const WINDOW_MINUTES_MAX = 31 * 24 * 60;
export const LOOKBACK_DAYS_MAX = 365;
export const HISTORY_AMOUNTS_MAX = 100;
/** Distinct velocity windows the history query reads at once (the catalogue has two velocity rules). */
export const VELOCITY_WINDOWS_MAX = 4;
const COUNT_MAX = 10_000;
const CURRENCIES_MAX = 50;

const AmountsByCurrency = Type.Record(
  Type.String({ pattern: '^[A-Z]{3}$' }),
  Type.String({ pattern: AMOUNT_PATTERN }),
  { additionalProperties: false, maxProperties: CURRENCIES_MAX },
);
const LookbackDays = Type.Integer({ minimum: 1, maximum: LOOKBACK_DAYS_MAX });
const Hour = Type.Integer({ minimum: 0, maximum: 23 });
const closed = { additionalProperties: false } as const;

export const PARAMETER_SCHEMAS = {
  velocity: Type.Object(
    {
      windowMinutes: Type.Integer({ minimum: 1, maximum: WINDOW_MINUTES_MAX }),
      /** Fires when this payment would be one more than `maxCount` within the window. */
      maxCount: Type.Optional(Type.Integer({ minimum: 1, maximum: COUNT_MAX })),
      /** Fires when the window's total in the payment's currency, this payment included, exceeds it. */
      maxAmounts: Type.Optional(AmountsByCurrency),
    },
    closed,
  ),
  amount_outlier: Type.Object(
    {
      lookbackDays: LookbackDays,
      /** Fewer past payments than this in the currency: no baseline, the rule stays silent. */
      minHistory: Type.Integer({ minimum: 1, maximum: HISTORY_AMOUNTS_MAX }),
      percentile: Type.Integer({ minimum: 1, maximum: 100 }),
      /** Fires above `multiplier` × that percentile (two decimals at most). */
      multiplier: Type.Number({ minimum: 1, maximum: 1000, multipleOf: 0.01 }),
      ignoreBelow: Type.Optional(AmountsByCurrency),
    },
    closed,
  ),
  new_payee: Type.Object({ ignoreBelow: Type.Optional(AmountsByCurrency) }, closed),
  blocklisted_payee: Type.Object({}, closed),
  unusual_hour: Type.Object(
    {
      /** IANA time zone the hours are read in (the bank's customers' local time). */
      timeZone: Type.String({ minLength: 1, maxLength: 64 }),
      /** From `startHour`:00 up to `endHour`:00, wrapping past midnight when start > end. */
      startHour: Hour,
      endHour: Hour,
      ignoreBelow: Type.Optional(AmountsByCurrency),
    },
    closed,
  ),
  new_device: Type.Object(
    { lookbackDays: LookbackDays, ignoreBelow: Type.Optional(AmountsByCurrency) },
    closed,
  ),
} as const satisfies Record<RuleType, TSchema>;

export type RuleParameters<T extends RuleType> = Static<(typeof PARAMETER_SCHEMAS)[T]>;

/** A rule as stored and as operators see it. */
export interface StoredRule {
  readonly id: string;
  readonly type: RuleType;
  readonly enabled: boolean;
  readonly action: RuleAction;
  readonly parameters: Readonly<Record<string, unknown>>;
  readonly description: string;
  readonly version: number;
  readonly updatedAt: Date;
  readonly updatedBy: string | null;
}

type Amounts = ReadonlyMap<string, bigint>;

/** A rule ready to evaluate: parameters checked, amounts in minor units, the time zone's formatter built. */
export type Rule = {
  readonly id: string;
  readonly enabled: boolean;
  readonly action: RuleAction;
  readonly version: number;
} & (
  | {
      readonly type: 'velocity';
      readonly windowMinutes: number;
      readonly maxCount: number | undefined;
      readonly maxAmounts: Amounts;
    }
  | {
      readonly type: 'amount_outlier';
      readonly lookbackDays: number;
      readonly minHistory: number;
      readonly percentile: number;
      readonly multiplierHundredths: bigint;
      readonly ignoreBelow: Amounts;
    }
  | { readonly type: 'new_payee'; readonly ignoreBelow: Amounts }
  | { readonly type: 'blocklisted_payee' }
  | {
      readonly type: 'unusual_hour';
      readonly timeZone: string;
      readonly hourOf: (at: Date) => number;
      readonly startHour: number;
      readonly endHour: number;
      readonly ignoreBelow: Amounts;
    }
  | { readonly type: 'new_device'; readonly lookbackDays: number; readonly ignoreBelow: Amounts }
);

/** Schema errors as field errors under `prefix` (a JSON Pointer), one per offending field. */
function schemaErrors(schema: TSchema, value: unknown, prefix: string): FieldError[] {
  const errors: FieldError[] = [];
  for (const error of Value.Errors(schema, value)) {
    const params = error.params as { additionalProperties?: string[]; requiredProperties?: string[] };
    // `additionalProperties: false` reports each extra field twice; the parent's entry names them all.
    if (error.keyword === 'boolean') continue;
    if (params.additionalProperties) {
      for (const name of params.additionalProperties)
        errors.push({ field: `${prefix}${error.instancePath}/${name}`, message: 'is not a known field' });
    } else if (params.requiredProperties) {
      for (const name of params.requiredProperties)
        errors.push({ field: `${prefix}${error.instancePath}/${name}`, message: 'is required' });
    } else {
      errors.push({ field: `${prefix}${error.instancePath}`, message: error.message });
    }
  }
  return errors;
}

/** Decimal strings per currency into minor units, each with exactly the currency's decimals. */
function amountsOf(
  amounts: Readonly<Record<string, string>> | undefined,
  pointer: string,
  errors: FieldError[],
): Amounts {
  const parsed = new Map<string, bigint>();
  for (const [currency, text] of Object.entries(amounts ?? {})) {
    const exponent = currencyExponent(currency);
    const amount = parseAmount(text);
    if (exponent === undefined) {
      errors.push({ field: `${pointer}/${currency}`, message: 'is not an active ISO 4217 currency' });
    } else if (!amount || amount.scale !== exponent) {
      errors.push({
        field: `${pointer}/${currency}`,
        message: `must be a positive amount with ${exponent} decimals`,
      });
    } else {
      parsed.set(currency, amount.minor);
    }
  }
  return parsed;
}

function hourFormatter(timeZone: string): ((at: Date) => number) | undefined {
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', hourCycle: 'h23' });
  } catch {
    return undefined;
  }
  return (at) => Number(format.formatToParts(at).find((part) => part.type === 'hour')?.value);
}

/**
 * Checks `parameters` for a rule of `type` and builds the rule. `pointer` is where the parameters sit in
 * the caller's request (`/body/parameters`), so each error names the offending field.
 */
export function compileRule(
  rule: Pick<StoredRule, 'id' | 'type' | 'enabled' | 'action' | 'version'> & { parameters: unknown },
  pointer = '/parameters',
): { ok: true; rule: Rule } | { ok: false; errors: FieldError[] } {
  const base = { id: rule.id, enabled: rule.enabled, action: rule.action, version: rule.version };
  const errors = schemaErrors(PARAMETER_SCHEMAS[rule.type], rule.parameters, pointer);
  if (errors.length > 0) return { ok: false, errors };
  let compiled: Rule;
  switch (rule.type) {
    case 'velocity': {
      const p = rule.parameters as RuleParameters<'velocity'>;
      if (p.maxCount === undefined && p.maxAmounts === undefined) {
        errors.push({ field: pointer, message: 'must set maxCount, maxAmounts or both' });
      }
      const maxAmounts = amountsOf(p.maxAmounts, `${pointer}/maxAmounts`, errors);
      compiled = {
        ...base,
        type: 'velocity',
        windowMinutes: p.windowMinutes,
        maxCount: p.maxCount,
        maxAmounts,
      };
      break;
    }
    case 'amount_outlier': {
      const p = rule.parameters as RuleParameters<'amount_outlier'>;
      compiled = {
        ...base,
        type: 'amount_outlier',
        lookbackDays: p.lookbackDays,
        minHistory: p.minHistory,
        percentile: p.percentile,
        // The schema holds it to two decimals; rounding only drops the float's representation error.
        multiplierHundredths: BigInt(Math.round(p.multiplier * 100)),
        ignoreBelow: amountsOf(p.ignoreBelow, `${pointer}/ignoreBelow`, errors),
      };
      break;
    }
    case 'new_payee': {
      const p = rule.parameters as RuleParameters<'new_payee'>;
      compiled = {
        ...base,
        type: 'new_payee',
        ignoreBelow: amountsOf(p.ignoreBelow, `${pointer}/ignoreBelow`, errors),
      };
      break;
    }
    case 'blocklisted_payee':
      compiled = { ...base, type: 'blocklisted_payee' };
      break;
    case 'unusual_hour': {
      const p = rule.parameters as RuleParameters<'unusual_hour'>;
      const hourOf = hourFormatter(p.timeZone);
      if (!hourOf) errors.push({ field: `${pointer}/timeZone`, message: 'is not an IANA time zone' });
      if (p.startHour === p.endHour) {
        errors.push({ field: `${pointer}/endHour`, message: 'must differ from startHour' });
      }
      compiled = {
        ...base,
        type: 'unusual_hour',
        timeZone: p.timeZone,
        hourOf: hourOf ?? (() => Number.NaN),
        startHour: p.startHour,
        endHour: p.endHour,
        ignoreBelow: amountsOf(p.ignoreBelow, `${pointer}/ignoreBelow`, errors),
      };
      break;
    }
    case 'new_device': {
      const p = rule.parameters as RuleParameters<'new_device'>;
      compiled = {
        ...base,
        type: 'new_device',
        lookbackDays: p.lookbackDays,
        ignoreBelow: amountsOf(p.ignoreBelow, `${pointer}/ignoreBelow`, errors),
      };
      break;
    }
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, rule: compiled };
}

// ---------------------------------------------------------------------------------------------- history

/** What the history query must read for one payment under a set of rules: its windows and lookbacks. */
export interface HistoryPlan {
  /** Distinct velocity windows in minutes, widest first; `History.windows` answers them in this order. */
  readonly windowMinutes: readonly number[];
  /** How far back the amount baseline reaches. */
  readonly amountLookbackDays: number;
  /** How many past amounts to read: none when no outlier rule would look at this payment's amount. */
  readonly amountsMax: number;
}

export function planHistory(
  rules: readonly Rule[],
  payment: Pick<ScreeningInput, 'amountMinor' | 'currency'>,
): HistoryPlan {
  const windows = new Set<number>();
  let amountLookbackDays = 0;
  for (const rule of rules) {
    if (!rule.enabled) continue;
    if (rule.type === 'velocity') windows.add(rule.windowMinutes);
    // Most payments are small: below every outlier rule's floor, no past amount needs reading.
    if (rule.type === 'amount_outlier' && !belowFloor(rule.ignoreBelow, payment)) {
      amountLookbackDays = Math.max(amountLookbackDays, rule.lookbackDays);
    }
  }
  // Rules are added by migrations only: more velocity windows than the query reads is a programmer error.
  if (windows.size > VELOCITY_WINDOWS_MAX) {
    throw new Error(
      `more than ${VELOCITY_WINDOWS_MAX} distinct velocity windows; raise VELOCITY_WINDOWS_MAX`,
    );
  }
  return {
    windowMinutes: [...windows].sort((a, b) => b - a),
    amountLookbackDays,
    amountsMax: amountLookbackDays > 0 ? HISTORY_AMOUNTS_MAX : 0,
  };
}

export const samePlan = (a: HistoryPlan, b: HistoryPlan) =>
  a.amountLookbackDays === b.amountLookbackDays &&
  a.amountsMax === b.amountsMax &&
  a.windowMinutes.length === b.windowMinutes.length &&
  a.windowMinutes.every((minutes, index) => b.windowMinutes[index] === minutes);

function belowFloor(floors: Amounts, payment: Pick<ScreeningInput, 'amountMinor' | 'currency'>): boolean {
  const floor = floors.get(payment.currency);
  return floor !== undefined && payment.amountMinor < floor;
}

/**
 * The customer's history before this payment, as far as the rules need it. Only payments the engine let
 * through count (see `in_history` in the migration).
 */
export interface History {
  /** Per `HistoryPlan.windowMinutes`, in its order: payments in the window, and their total in this currency. */
  readonly windows: readonly { readonly count: number; readonly amountMinor: bigint }[];
  /** Amounts in this currency within the plan's lookback, newest first, at most `amountsMax`. */
  readonly amounts: readonly { readonly amountMinor: bigint; readonly at: Date }[];
  /** Whether the customer ever paid this IBAN before. */
  readonly payeeKnown: boolean;
  readonly payeeBlocklisted: boolean;
  /** When the customer last paid from this device (undefined: never, or the payment names no device). */
  readonly deviceLastSeen: Date | undefined;
  /** When the customer last paid from any known device: without one there is no baseline to compare to. */
  readonly anyDeviceLastSeen: Date | undefined;
}

// -------------------------------------------------------------------------------------------- evaluation

const DAY_MS = 24 * 60 * 60 * 1000;
const SEVERITY: Readonly<Record<Verdict, number>> = { allow: 0, step_up: 1, block: 2 };

/** Nearest-rank percentile (a real past amount, never an interpolation); `sorted` ascending, non-empty. */
export function percentileOf(sorted: readonly bigint[], percentile: number): bigint {
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((percentile / 100) * sorted.length)));
  const value = sorted[rank - 1];
  if (value === undefined) throw new Error('percentile of an empty list');
  return value;
}

function windowLabel(minutes: number): string {
  if (minutes % 1440 === 0 && minutes > 1440) return `${minutes / 1440} days`;
  if (minutes % 60 === 0) return `${minutes / 60} h`;
  return `${minutes} min`;
}

/** What one enabled rule finds: a short reason for a person, or undefined when it does not fire. */
function fire(
  rule: Rule,
  input: ScreeningInput,
  history: History,
  plan: HistoryPlan,
  money: (minor: bigint) => string,
): string | undefined {
  const { amountMinor, currency, at } = input;
  switch (rule.type) {
    case 'velocity': {
      const seen = history.windows[plan.windowMinutes.indexOf(rule.windowMinutes)];
      if (!seen) throw new Error(`history lacks the ${rule.windowMinutes} min window`);
      const window = windowLabel(rule.windowMinutes);
      const count = seen.count + 1;
      if (rule.maxCount !== undefined && count > rule.maxCount) {
        return `${count} payments within ${window}; the limit is ${rule.maxCount}`;
      }
      const max = rule.maxAmounts.get(currency);
      const total = seen.amountMinor + amountMinor;
      if (max !== undefined && total > max) {
        return `${money(total)} paid within ${window}; the limit is ${money(max)}`;
      }
      return undefined;
    }
    case 'amount_outlier': {
      if (belowFloor(rule.ignoreBelow, input)) return undefined;
      const since = at.getTime() - rule.lookbackDays * DAY_MS;
      const past = history.amounts
        .filter((entry) => entry.at.getTime() > since)
        .map((entry) => entry.amountMinor);
      if (past.length < rule.minHistory) return undefined;
      const typical = percentileOf(
        past.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
        rule.percentile,
      );
      if (amountMinor * 100n <= typical * rule.multiplierHundredths) return undefined;
      const times = `${Number(rule.multiplierHundredths) / 100}`;
      return `${money(amountMinor)} is more than ${times} × the customer's ${rule.percentile}th percentile (${money(typical)}) over ${rule.lookbackDays} days`;
    }
    case 'new_payee':
      if (history.payeeKnown || belowFloor(rule.ignoreBelow, input)) return undefined;
      return `first payment to ${maskIban(input.creditorIban)}`;
    case 'blocklisted_payee':
      return history.payeeBlocklisted ? `${maskIban(input.creditorIban)} is on the block list` : undefined;
    case 'unusual_hour': {
      if (belowFloor(rule.ignoreBelow, input)) return undefined;
      const hour = rule.hourOf(at);
      const inside =
        rule.startHour < rule.endHour
          ? hour >= rule.startHour && hour < rule.endHour
          : hour >= rule.startHour || hour < rule.endHour;
      if (!inside) return undefined;
      const hh = (h: number) => `${String(h).padStart(2, '0')}:00`;
      return `paid at ${String(hour).padStart(2, '0')}h ${rule.timeZone} time, within ${hh(rule.startHour)}–${hh(rule.endHour)}`;
    }
    case 'new_device': {
      if (belowFloor(rule.ignoreBelow, input)) return undefined;
      const since = at.getTime() - rule.lookbackDays * DAY_MS;
      const recent = (seen: Date | undefined) => seen !== undefined && seen.getTime() > since;
      // No device in the payment, or none in the customer's recent history: nothing to compare with.
      if (!input.context.deviceId && !input.context.userAgent) return undefined;
      if (!recent(history.anyDeviceLastSeen) || recent(history.deviceLastSeen)) return undefined;
      return `a device not used for payments in the last ${rule.lookbackDays} days`;
    }
  }
}

/** Enough of an IBAN for an operator to recognise it in a reason, not to copy it whole. */
export const maskIban = (iban: string) => `${iban.slice(0, 4)}…${iban.slice(-4)}`;

/**
 * The verdict of the enabled `rules` on one payment: the most severe action among those that fire
 * (block over step_up over allow), with every rule that fired as a reason, most severe first.
 */
export function evaluate(
  rules: readonly Rule[],
  input: ScreeningInput,
  history: History,
  plan: HistoryPlan,
): { verdict: Verdict; reasons: Reason[] } {
  const exponent = currencyExponent(input.currency) ?? 2;
  const money = (minor: bigint) => `${input.currency} ${formatAmount(minor, exponent)}`;
  const fired: { rule: Rule; detail: string }[] = [];
  for (const rule of rules) {
    if (!rule.enabled) continue;
    const detail = fire(rule, input, history, plan, money);
    if (detail !== undefined) fired.push({ rule, detail });
  }
  fired.sort((a, b) => SEVERITY[b.rule.action] - SEVERITY[a.rule.action]);
  return {
    verdict: fired[0]?.rule.action ?? 'allow',
    reasons: fired.map(({ rule, detail }) => ({ rule: rule.id, detail })),
  };
}
