import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { PERIODS, periodOf } from './periods.ts';

const at = (text: string) => new Date(text);
const iso = (period: { start: Date; end: Date }) => [period.start.toISOString(), period.end.toISOString()];

describe('mandate periods (UTC calendar)', () => {
  it('takes days from midnight to midnight UTC', () => {
    assert.deepEqual(iso(periodOf('day', at('2024-02-29T13:00:00Z'))), [
      '2024-02-29T00:00:00.000Z',
      '2024-03-01T00:00:00.000Z',
    ]);
    // 23:30 in New York on the 31st is already the 1st in UTC.
    assert.deepEqual(iso(periodOf('day', at('2031-01-31T23:30:00-05:00'))), [
      '2031-02-01T00:00:00.000Z',
      '2031-02-02T00:00:00.000Z',
    ]);
  });

  it('takes ISO weeks, Monday to Sunday, across a year end', () => {
    // 2025-01-01 is a Wednesday: its ISO week began on Monday 30 December 2024.
    assert.deepEqual(iso(periodOf('week', at('2025-01-01T08:00:00Z'))), [
      '2024-12-30T00:00:00.000Z',
      '2025-01-06T00:00:00.000Z',
    ]);
    // The last instant of a Sunday is still that week; Monday midnight starts the next.
    assert.deepEqual(iso(periodOf('week', at('2031-02-02T23:59:59.999Z'))), [
      '2031-01-27T00:00:00.000Z',
      '2031-02-03T00:00:00.000Z',
    ]);
    assert.deepEqual(iso(periodOf('week', at('2031-02-03T00:00:00Z'))), [
      '2031-02-03T00:00:00.000Z',
      '2031-02-10T00:00:00.000Z',
    ]);
  });

  it('takes calendar months, February and December included', () => {
    assert.deepEqual(iso(periodOf('month', at('2024-02-10T00:00:00Z'))), [
      '2024-02-01T00:00:00.000Z',
      '2024-03-01T00:00:00.000Z',
    ]);
    assert.deepEqual(iso(periodOf('month', at('2024-12-31T23:59:59.999Z'))), [
      '2024-12-01T00:00:00.000Z',
      '2025-01-01T00:00:00.000Z',
    ]);
  });

  it('always contains the instant, starts at midnight, and the next period starts where it ends', () => {
    fc.assert(
      fc.property(
        fc.date({
          min: new Date('2000-01-01T00:00:00Z'),
          max: new Date('2100-01-01T00:00:00Z'),
          noInvalidDate: true,
        }),
        fc.constantFrom(...PERIODS),
        (instant, period) => {
          const { start, end } = periodOf(period, instant);
          assert.ok(start <= instant && instant < end);
          assert.equal(start.getTime() % 86_400_000, 0, 'starts at midnight UTC');
          if (period === 'day') assert.equal(end.getTime() - start.getTime(), 86_400_000);
          if (period === 'week') {
            assert.equal(start.getUTCDay(), 1, 'a Monday');
            assert.equal(end.getTime() - start.getTime(), 7 * 86_400_000);
          }
          if (period === 'month') {
            assert.equal(start.getUTCDate(), 1);
            assert.equal(end.getUTCDate(), 1);
            assert.equal((end.getUTCMonth() - start.getUTCMonth() + 12) % 12, 1);
          }
          assert.deepEqual(periodOf(period, end).start, end);
        },
      ),
    );
  });
});
