// The arithmetic of points without a database: splits of a debit, and refunds that always add back up to
// exactly what was paid in each part, whatever the sequence of partial refunds (and voided ones) in between.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Minor } from '../money.ts';
import {
  type DebitTotals,
  type EarnRule,
  type Points,
  type RedemptionRate,
  splitDebit,
  splitRefund,
} from './rules.ts';

const eur = (points: bigint, amountMinor: bigint): RedemptionRate => ({
  currency: 'EUR',
  points,
  amountMinor: amountMinor as Minor,
});
const earn = (points: bigint, perMinor: bigint): EarnRule => ({
  currency: 'EUR',
  merchantCategory: '5411',
  points,
  perMinor: perMinor as Minor,
});
const split = (amount: bigint, points: bigint, rate?: RedemptionRate, earnRule?: EarnRule) =>
  splitDebit({ amount: amount as Minor, points: points as Points, rate, earnRule });

describe('splitting a debit into points and money', () => {
  it('values points at the rate, charges the rest in money, and earns on the money part, rounded down', () => {
    assert.deepEqual(split(1250n, 500n, eur(100n, 100n), earn(3n, 100n)), {
      ok: true,
      split: { points: 500n, pointsValue: 500n, money: 750n, pointsPerMinor: 1n, earned: 22n },
    });
    // Paid entirely in points: nothing in money, nothing earned.
    assert.deepEqual(split(200n, 200n, eur(100n, 100n), earn(3n, 100n)), {
      ok: true,
      split: { points: 200n, pointsValue: 200n, money: 0n, pointsPerMinor: 1n, earned: 0n },
    });
    // No points, no rule: nothing to record.
    assert.deepEqual(split(999n, 0n), {
      ok: true,
      split: { points: 0n, pointsValue: 0n, money: 999n, pointsPerMinor: null, earned: 0n },
    });
  });

  it('refuses what it cannot split exactly, saying why', () => {
    assert.equal(pick(split(100n, 10n)), 'points_not_accepted');
    assert.equal(pick(split(1000n, 105n, eur(1000n, 100n))), 'points_value_not_whole');
    assert.equal(pick(split(100n, 101n, eur(100n, 100n))), 'points_exceed_amount');
    assert.equal(pick(split(1000n, 110n, eur(1000n, 100n))), undefined);
  });

  it('keeps money + points value = amount, and earns floor(money x points / per)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 10n ** 12n }),
        fc.bigInt({ min: 1n, max: 1000n }),
        fc.bigInt({ min: 0n, max: 10n ** 12n }),
        fc.bigInt({ min: 1n, max: 1000n }),
        fc.bigInt({ min: 1n, max: 10n ** 6n }),
        (amount, perMinor, lots, earnPoints, earnPer) => {
          const points = lots * perMinor;
          const result = split(amount, points, eur(perMinor * 100n, 100n), earn(earnPoints, earnPer));
          if (lots > amount) return assert.equal(pick(result), 'points_exceed_amount');
          assert.ok(result.ok);
          const { pointsValue, money, earned } = result.split;
          assert.equal(pointsValue, lots);
          assert.equal(money + pointsValue, amount);
          assert.equal(earned, (money * earnPoints) / earnPer);
        },
      ),
    );
  });
});

describe('splitting a refund in proportion', () => {
  // 10.00 paid with 333 points (3.33) and 6.67 in money, earning 20 points.
  const debit: DebitTotals = {
    amount: 1000n as Minor,
    pointsValue: 333n as Minor,
    pointsPerMinor: 1n,
    earned: 20n as Points,
    refundedAmount: 0n as Minor,
    refundedValue: 0n as Minor,
    earnedReversed: 0n as Points,
  };

  it('rounds the points part down and gives the money part the remainder; the last refund squares both', () => {
    const half = splitRefund(debit, 500n as Minor, 1000n as Points);
    assert.deepEqual(half, {
      amount: 500n,
      money: 334n,
      pointsValue: 166n,
      points: 166n,
      clawback: 10n,
      waived: 0n,
    });
    const rest = splitRefund(
      {
        ...debit,
        refundedAmount: 500n as Minor,
        refundedValue: 166n as Minor,
        earnedReversed: 10n as Points,
      },
      500n as Minor,
      1000n as Points,
    );
    assert.deepEqual(rest, {
      amount: 500n,
      money: 333n,
      pointsValue: 167n,
      points: 167n,
      clawback: 10n,
      waived: 0n,
    });
  });

  it('takes back earned points only as far as the points account holds them, counting the points returned', () => {
    const refund = splitRefund(debit, 1000n as Minor, 0n as Points);
    assert.deepEqual([refund.points, refund.clawback, refund.waived], [333n, 20n, 0n]);
    const noPointsPart = splitRefund(
      { ...debit, pointsValue: 0n as Minor, pointsPerMinor: null },
      1000n as Minor,
      5n as Points,
    );
    assert.deepEqual([noPointsPart.money, noPointsPart.clawback, noPointsPart.waived], [1000n, 5n, 15n]);
  });

  it('never refunds more than is left', () => {
    assert.throws(() => splitRefund(debit, 1001n as Minor, 0n as Points), RangeError);
    assert.throws(() => splitRefund(debit, 0n as Minor, 0n as Points), RangeError);
  });

  it('adds back up exactly, part by part, over any sequence of partial refunds and voided ones', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: 10n ** 9n }),
        fc.bigInt({ min: 0n, max: 1000n }),
        fc.bigInt({ min: 1n, max: 100n }),
        fc.bigInt({ min: 0n, max: 10n ** 6n }),
        fc.array(
          fc.tuple(fc.bigInt({ min: 0n, max: 1000n }), fc.boolean(), fc.bigInt({ min: 0n, max: 10n ** 6n })),
          {
            minLength: 1,
            maxLength: 30,
          },
        ),
        (amount, permille, pointsPerMinor, earned, steps) => {
          // Any share of the amount paid in points, from none to all of it.
          const pointsValue = (amount * permille) / 1000n;
          let totals: DebitTotals = {
            amount: amount as Minor,
            pointsValue: pointsValue as Minor,
            pointsPerMinor: pointsValue > 0n ? pointsPerMinor : null,
            earned: earned as Points,
            refundedAmount: 0n as Minor,
            refundedValue: 0n as Minor,
            earnedReversed: 0n as Points,
          };
          const applied = { money: 0n, value: 0n, points: 0n, reversed: 0n };
          const refund = (size: bigint, held: bigint) => {
            const r = splitRefund(totals, size as Minor, held as Points);
            assert.equal(r.money + r.pointsValue, size);
            assert.ok(r.money >= 0n && r.pointsValue >= 0n && r.clawback >= 0n && r.waived >= 0n);
            assert.equal(r.points, r.pointsValue * (totals.pointsPerMinor ?? 0n));
            assert.ok(r.clawback <= held + r.points);
            return r;
          };
          const plan = (r: ReturnType<typeof splitRefund>, sign: bigint) => {
            totals = {
              ...totals,
              refundedAmount: (totals.refundedAmount + sign * r.amount) as Minor,
              refundedValue: (totals.refundedValue + sign * r.pointsValue) as Minor,
              earnedReversed: (totals.earnedReversed + sign * (r.clawback + r.waived)) as Points,
            };
          };
          for (const [permilleLeft, voided, held] of steps) {
            const left = amount - totals.refundedAmount;
            if (left === 0n) break;
            const size = 1n + (left * permilleLeft) / 1001n;
            const r = refund(size, held);
            plan(r, 1n);
            if (voided) {
              plan(r, -1n);
              continue;
            }
            applied.money += r.money;
            applied.value += r.pointsValue;
            applied.points += r.points;
            applied.reversed += r.clawback + r.waived;
            assert.ok(applied.money <= amount - pointsValue && applied.value <= pointsValue);
          }
          // Whatever is left, refunded at once, squares every part.
          const left = amount - totals.refundedAmount;
          if (left > 0n) {
            const r = refund(left, 0n);
            applied.money += r.money;
            applied.value += r.pointsValue;
            applied.points += r.points;
            applied.reversed += r.clawback + r.waived;
          }
          assert.deepEqual(applied, {
            money: amount - pointsValue,
            value: pointsValue,
            points: pointsValue * (pointsValue > 0n ? pointsPerMinor : 0n),
            reversed: earned,
          });
        },
      ),
      { numRuns: 500 },
    );
  });
});

function pick(result: ReturnType<typeof splitDebit>): string | undefined {
  return result.ok ? undefined : result.code;
}
