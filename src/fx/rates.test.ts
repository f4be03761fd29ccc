// FX arithmetic: worked examples across currencies with 0, 2 and 3 decimals (JPY, EUR, KWD/BHD), and the
// rounding rules as properties: credited amounts round down, debited amounts round up, by at most one minor
// unit, and never in the customer's favour beyond what the bank received.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from '../config.ts';
import { loadRateSource, parseRateTable, sandboxRateSource, TableRateSource } from './rate-source.ts';
import {
  buyFor,
  convert,
  crossRate,
  feeOn,
  formatRate,
  lessSpread,
  parseRate,
  type Rate,
  sellFor,
  truncateRate,
} from './rates.ts';

const rate = (text: string): Rate => {
  const parsed = parseRate(text);
  assert.ok(parsed, text);
  return parsed;
};
const pow10 = (n: number) => 10n ** BigInt(n);

describe('FX rates', () => {
  it('parses and prints decimals exactly', () => {
    assert.deepEqual(parseRate('1.0850'), { units: 10850n, scale: 4 });
    assert.deepEqual(parseRate('162'), { units: 162n, scale: 0 });
    assert.equal(formatRate({ units: 20541n, scale: 7 }), '0.0020541');
    for (const bad of ['0', '0.000', '-1', '1e3', '.5', '1.', '01', ' 1', 'NaN']) {
      assert.equal(parseRate(bad), undefined, bad);
    }
  });

  it('computes cross rates through the base exactly and truncates them to ISO 20022 BaseOneRate', () => {
    // EUR base: USD 1.0850, JPY 162.40, KWD 0.3340, BHD 0.4085.
    const usdPerEur = crossRate(rate('1'), rate('1.0850'));
    assert.equal(formatRate(truncateRate(usdPerEur) as Rate), '1.0850000000');
    // 162.40 / 0.3340 = 486.2275449101796…: 3 integer digits leave 8 decimals, truncated.
    assert.equal(formatRate(truncateRate(crossRate(rate('0.3340'), rate('162.40'))) as Rate), '486.22754491');
    // 0.3340 / 162.40 = 0.0020566502463…: 10 decimals.
    assert.equal(formatRate(truncateRate(crossRate(rate('162.40'), rate('0.3340'))) as Rate), '0.0020566502');
    // Spread: 50 bps off 1.0850 = 1.079575 exactly.
    assert.equal(formatRate(truncateRate(lessSpread(usdPerEur, 50)) as Rate), '1.0795750000');
    assert.equal(truncateRate({ numerator: 10n ** 12n, denominator: 1n }), undefined, 'past 11 digits');
    assert.equal(truncateRate({ numerator: 1n, denominator: 10n ** 11n }), undefined, 'truncates to zero');
  });

  it('rounds a credited amount down and a debited amount up, in each exponent', () => {
    // EUR (2) -> JPY (0) at 161.588: 100.00 EUR buys 16158.8 yen, credited 16158.
    assert.equal(buyFor(10_000n, rate('161.588'), 2, 0), 16_158n);
    // The creditor to receive 16159 yen: 100.0062… EUR, debited 100.01.
    assert.equal(sellFor(16_159n, rate('161.588'), 2, 0), 10_001n);
    // JPY (0) -> KWD (3) at 0.0020463669: 1000 yen buy 2.0463669 KWD, credited 2.046.
    assert.equal(buyFor(1000n, rate('0.0020463669'), 0, 3), 2046n);
    // For 2.047 KWD: 1000.30… yen, debited 1001.
    assert.equal(sellFor(2047n, rate('0.0020463669'), 0, 3), 1001n);
    // KWD (3) -> BHD (3) at 1.2168413173: 10.000 KWD buy 12.168413173 BHD, credited 12.168.
    assert.equal(buyFor(10_000n, rate('1.2168413173'), 3, 3), 12_168n);
    // BHD (3) -> EUR (2) at 2.4357405140: 0.001 BHD buys 0.24 cents: nothing.
    assert.equal(buyFor(1n, rate('2.4357405140'), 3, 2), 0n);
    assert.equal(
      convert({ side: 'sell', minor: 1n }, rate('2.4357405140'), { sell: 3, buy: 2 }, 10),
      undefined,
    );
    // Fees round up too: 10 bps of 0.05 EUR is 0.00005, charged 0.01.
    assert.equal(feeOn(5n, 10), 1n);
    assert.equal(feeOn(0n, 10), 0n);
    assert.deepEqual(convert({ side: 'buy', minor: 16_159n }, rate('161.588'), { sell: 2, buy: 0 }, 10), {
      sellMinor: 10_001n,
      buyMinor: 16_159n,
      feeMinor: 11n,
    });
  });

  const exponent = fc.constantFrom(0, 2, 3);
  // Any rate ISO 20022 can carry: up to 11 digits, up to 10 of them after the point.
  const anyRate = fc
    .integer({ min: 0, max: 10 })
    .chain((scale) =>
      fc
        .bigInt({ min: 1n, max: 10n ** BigInt(Math.min(11, scale + 6)) - 1n })
        .map((units): Rate => ({ units, scale })),
    );

  it('never credits more than the sold amount is worth at the rate, nor a whole minor unit less', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 10n ** 15n }), anyRate, exponent, exponent, (sell, r, es, eb) => {
        const bought = buyFor(sell, r, es, eb);
        // Compare in a common unit: value = minor × 10^(rate scale + other exponent).
        const worth = sell * r.units * pow10(eb); // × 10^-(r.scale + es + eb)
        const credited = bought * pow10(r.scale + es); // same unit
        assert.ok(credited <= worth, 'credited at most what was received');
        assert.ok(credited + pow10(r.scale + es) > worth, 'short of it by less than one minor unit');
      }),
      { numRuns: 2000 },
    );
  });

  it('debits the least amount that buys what the creditor is to receive', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 10n ** 15n }), anyRate, exponent, exponent, (buy, r, es, eb) => {
        const sold = sellFor(buy, r, es, eb);
        assert.ok(buyFor(sold, r, es, eb) >= buy, 'the debit buys at least the amount');
        assert.ok(sold === 0n || buyFor(sold - 1n, r, es, eb) < buy, 'one minor unit less would not');
      }),
      { numRuns: 2000 },
    );
  });

  it('quotes a customer rate at or below the mid rate, within the spread and one last digit', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 10n ** 9n }),
        fc.bigInt({ min: 1n, max: 10n ** 9n }),
        fc.integer({ min: 0, max: 500 }),
        (a, b, spread) => {
          const mid = crossRate({ units: a, scale: 4 }, { units: b, scale: 4 });
          const quoted = truncateRate(lessSpread(mid, spread));
          const midTruncated = truncateRate(mid);
          if (!quoted || !midTruncated) return;
          // quoted ≤ mid × (1 − spread) < quoted + 10^-scale, compared as integers.
          const exact = mid.numerator * (10_000n - BigInt(spread));
          const scaledDown = mid.denominator * 10_000n;
          assert.ok(quoted.units * scaledDown <= exact * pow10(quoted.scale));
          assert.ok((quoted.units + 1n) * scaledDown > exact * pow10(quoted.scale));
          assert.ok(quoted.units.toString().replace(/^0+/, '').length <= 11);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('reads a rates table and refuses a broken one', async () => {
    const source = new TableRateSource(
      'test',
      parseRateTable({ base: 'EUR', asOf: '2026-01-02T00:00:00Z', rates: { EUR: '1', JPY: '162.40' } }),
    );
    assert.deepEqual((await source.midRate('JPY', 'EUR'))?.ratio, { numerator: 100n, denominator: 16240n });
    assert.equal(await source.midRate('EUR', 'USD'), undefined);
    for (const broken of [
      { base: 'EUR', asOf: 'yesterday', rates: { EUR: '1' } },
      { base: 'EUR', asOf: '2026-01-02T00:00:00Z', rates: { EUR: '1', USD: '0' } },
      { base: 'EUR', asOf: '2026-01-02T00:00:00Z', rates: { EUR: '1', usd: '1.08' } },
      { base: 'EUR', asOf: '2026-01-02T00:00:00Z', rates: { EUR: '2' } },
      { base: 'EUR', asOf: '2026-01-02T00:00:00Z', rates: { USD: 1.08 } },
    ]) {
      assert.throws(() => parseRateTable(broken), Error, JSON.stringify(broken));
    }
  });

  it('loads the configured source: the sandbox outside production only, or a rates file', async () => {
    assert.equal(sandboxRateSource().name, 'sandbox');
    assert.equal(loadRateSource('sandbox', 'sandbox').name, 'sandbox');
    assert.throws(() => loadRateSource('sandbox', 'production'), ConfigError);
    const dir = mkdtempSync(join(tmpdir(), 'apibank-rates-'));
    const file = join(dir, 'rates.json');
    writeFileSync(
      file,
      JSON.stringify({ base: 'USD', asOf: '2026-03-01T16:00:00Z', rates: { USD: '1', EUR: '0.9200' } }),
    );
    const source = loadRateSource(file, 'production');
    assert.equal(source.name, 'rates-file', 'the path is not shown to clients');
    assert.deepEqual((await source.midRate('USD', 'EUR'))?.ratio, { numerator: 9200n, denominator: 10000n });
    assert.throws(() => loadRateSource(join(dir, 'missing.json'), 'production'), ConfigError);
    writeFileSync(file, '{"base":"USD"');
    assert.throws(() => loadRateSource(file, 'sandbox'), ConfigError);
  });
});
