import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { daysInMonth, parseTimestamp } from './time.ts';

describe('timestamps', () => {
  it('take RFC 3339 date-times with an offset that name a real instant', () => {
    assert.equal(parseTimestamp('2028-02-29T23:59:59.5+01:00')?.toISOString(), '2028-02-29T22:59:59.500Z');
    assert.equal(parseTimestamp('0001-01-01T00:00:00Z')?.toISOString(), '0001-01-01T00:00:00.000Z');
    assert.equal(parseTimestamp('9999-12-31T23:59:59Z')?.toISOString(), '9999-12-31T23:59:59.000Z');
    assert.equal(parseTimestamp('0004-02-29T00:00:00Z')?.toISOString(), '0004-02-29T00:00:00.000Z');
  });

  it('refuse dates that do not exist and instants outside years 0001 to 9999', () => {
    for (const text of [
      '2027-02-29T00:00:00Z',
      '0100-02-29T00:00:00Z',
      '2027-04-31T00:00:00Z',
      '2027-01-01T24:00:00Z',
      '2027-01-01T00:00:00+24:00',
      '2027-01-01T00:00:00',
      '0000-01-01T00:00:00Z',
      '0001-01-01T00:00:00+00:01',
      '9999-12-31T23:00:00-23:59',
    ]) {
      assert.equal(parseTimestamp(text), undefined, text);
    }
  });

  it('count the days of any month of any year', () => {
    assert.deepEqual(
      [daysInMonth(2028, 2), daysInMonth(2027, 2), daysInMonth(2100, 2), daysInMonth(2000, 2)],
      [29, 28, 28, 29],
    );
    assert.deepEqual([daysInMonth(4, 2), daysInMonth(100, 2), daysInMonth(400, 2)], [29, 28, 29]);
    assert.equal(daysInMonth(2027, 12), 31);
  });
});
