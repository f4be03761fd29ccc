// Where mid rates come from. A source answers one question: how many units of B one unit of A is worth, in
// the middle of the market, as of when. The bank's spread and fee are applied on top (service.ts), never
// here. The project ships one source: a table of rates against a base currency read from a JSON file, either
// the sandbox's (sandbox-rates.json, not market data) or one the operator keeps current
// (APIBANK_FX_RATES=/path/rates.json, same shape). A live provider is another implementation of RateSource.
import { readFileSync } from 'node:fs';
import { ConfigError, type Mode } from '../config.ts';
import { currencyExponent } from '../money.ts';
import { crossRate, parseRate, type Rate, type Ratio } from './rates.ts';

export interface MidRate {
  /** Units of the bought currency per unit of the sold one, exact. */
  readonly ratio: Ratio;
  readonly asOf: Date;
  readonly source: string;
}

export interface RateSource {
  readonly name: string;
  /** The mid rate of one unit of `sell` in `buy`; undefined when the source has no rate for either. */
  midRate(sell: string, buy: string): Promise<MidRate | undefined>;
}

/** The file's shape: `{ base, asOf, rates: { "USD": "1.0850", ... } }`, each rate in units per one `base`. */
export interface RateTable {
  readonly base: string;
  readonly asOf: Date;
  readonly rates: ReadonlyMap<string, Rate>;
}

// Bounds a rates file must fit: a typo (a rate of 0, a currency code in lower case) stops the start.
const RATE_TABLE_CURRENCIES_MAX = 400;

/** Checks a parsed rates file; throws an Error naming the first problem. */
export function parseRateTable(json: unknown): RateTable {
  const file = json as { base?: unknown; asOf?: unknown; rates?: unknown };
  if (typeof file?.base !== 'string' || currencyExponent(file.base) === undefined) {
    throw new Error('"base" must be an active ISO 4217 currency code');
  }
  const asOf = typeof file.asOf === 'string' ? new Date(file.asOf) : undefined;
  if (!asOf || Number.isNaN(asOf.getTime())) throw new Error('"asOf" must be an ISO 8601 date and time');
  if (typeof file.rates !== 'object' || file.rates === null) throw new Error('"rates" must be an object');
  const entries = Object.entries(file.rates as Record<string, unknown>);
  if (entries.length > RATE_TABLE_CURRENCIES_MAX) {
    throw new Error(`"rates" lists more than ${RATE_TABLE_CURRENCIES_MAX} currencies`);
  }
  const rates = new Map<string, Rate>();
  for (const [currency, text] of entries) {
    if (currencyExponent(currency) === undefined)
      throw new Error(`"${currency}" is not an ISO 4217 currency`);
    const rate = typeof text === 'string' ? parseRate(text) : undefined;
    if (!rate) throw new Error(`the rate of ${currency} must be a positive decimal string such as "1.0850"`);
    rates.set(currency, rate);
  }
  const base = rates.get(file.base);
  if (!base || base.units !== 10n ** BigInt(base.scale)) throw new Error(`the base ${file.base} must be "1"`);
  return { base: file.base, asOf, rates };
}

/** A source answering from one table: cross rates through the base currency, exactly. */
export class TableRateSource implements RateSource {
  readonly name: string;
  readonly #table: RateTable;

  constructor(name: string, table: RateTable) {
    this.name = name;
    this.#table = table;
  }

  async midRate(sell: string, buy: string): Promise<MidRate | undefined> {
    const from = this.#table.rates.get(sell);
    const to = this.#table.rates.get(buy);
    if (!from || !to) return undefined;
    return { ratio: crossRate(from, to), asOf: this.#table.asOf, source: this.name };
  }
}

const SANDBOX_RATES = new URL('./sandbox-rates.json', import.meta.url);

function readTable(file: URL | string): RateTable {
  return parseRateTable(JSON.parse(readFileSync(file, 'utf8')));
}

/** The rates shipped with the project: fixed, invented, for the sandbox and tests only. */
export function sandboxRateSource(): RateSource {
  return new TableRateSource('sandbox', readTable(SANDBOX_RATES));
}

/**
 * The source APIBANK_FX_RATES names: `sandbox`, or a rates file. Production refuses the sandbox's invented
 * rates, as it refuses the synthetic screening lists: a customer must never be quoted from them.
 */
export function loadRateSource(setting: string, mode: Mode): RateSource {
  if (setting === 'sandbox') {
    if (mode === 'production') {
      throw new ConfigError([
        'APIBANK_FX_RATES is required when APIBANK_MODE=production (the shipped sandbox rates are not market data)',
      ]);
    }
    return sandboxRateSource();
  }
  try {
    // Named without its path: the name is shown in quotes, the path is the operator's business.
    return new TableRateSource('rates-file', readTable(setting));
  } catch (error) {
    throw new ConfigError([`APIBANK_FX_RATES: cannot use ${setting}: ${(error as Error).message}`]);
  }
}
