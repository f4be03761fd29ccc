import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { currencyExponent, formatAmount, MINOR_MAX, parseAmount } from './money.ts';

describe('money', () => {
  it('knows ISO 4217 exponents and refuses what is not money', () => {
    assert.deepEqual(['EUR', 'JPY', 'BHD', 'CLF', 'XOF', 'XAU', 'XXX', 'eur', 'ABC'].map(currencyExponent), [
      2,
      0,
      3,
      4,
      0,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('parses only plain positive decimals, exactly', () => {
    assert.deepEqual(parseAmount('10.50'), { minor: 1050n, scale: 2 });
    assert.deepEqual(parseAmount('1050'), { minor: 1050n, scale: 0 });
    assert.deepEqual(parseAmount('0.001'), { minor: 1n, scale: 3 });
    assert.deepEqual(parseAmount('92233720368547758.07'), { minor: MINOR_MAX, scale: 2 });
    for (const bad of [
      '',
      '0',
      '0.00',
      '-1',
      '+1',
      '01',
      '1.',
      '.5',
      '1e3',
      '1.23456',
      ' 1',
      '1,00',
      '92233720368547758.08',
      'NaN',
    ]) {
      assert.equal(parseAmount(bad), undefined, bad);
    }
  });

  it('formats minor units with the exponent, negative balances included', () => {
    assert.equal(formatAmount(1050n, 2), '10.50');
    assert.equal(formatAmount(5n, 2), '0.05');
    assert.equal(formatAmount(-5n, 3), '-0.005');
    assert.equal(formatAmount(0n, 2), '0.00');
    assert.equal(formatAmount(1050n, 0), '1050');
    assert.equal(formatAmount(-MINOR_MAX, 4), '-922337203685477.5807');
  });

  it('round-trips every amount through text without loss', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: MINOR_MAX }),
        fc.integer({ min: 0, max: 4 }),
        (minor, exponent) => {
          assert.deepEqual(parseAmount(formatAmount(minor, exponent)), { minor, scale: exponent });
        },
      ),
    );
  });
});
