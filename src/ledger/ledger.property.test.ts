// Property tests: random sequences of transfers, pending holds, posts, voids, replays and overdraft
// attempts, checked step by step against a reference model of the rules, then against the invariants
// (every currency sums to zero, no account without overdraft below zero, `verify` passes).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { type Minor, parseAmount } from '../money.ts';
import { type TestDb, testDatabases } from '../testing/databases.ts';
import { type Account, balancesOf } from './model.ts';
import { Ledger, type TransferOutcome } from './service.ts';

type Op =
  | { kind: 'transfer'; debit: number; credit: number; cents: number; pending: boolean; key: number }
  | { kind: 'post'; hold: number; partialCents: number | null }
  | { kind: 'void'; hold: number };

const ACCOUNTS = 4; // 0: bank (overdraft allowed), 1-2: customers (credit-normal), 3: asset (debit-normal)
const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('transfer' as const),
      debit: fc.nat(ACCOUNTS - 1),
      credit: fc.nat(ACCOUNTS - 1),
      cents: fc.integer({ min: 1, max: 5000 }),
      pending: fc.boolean(),
      // A small key space, so keys repeat: sometimes the same request (a replay), sometimes another.
      key: fc.nat(12),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('post' as const),
      hold: fc.nat(20),
      partialCents: fc.option(fc.integer({ min: 1, max: 5000 })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('void' as const), hold: fc.nat(20) }) },
);

interface ModelAccount {
  creditNormal: boolean;
  overdraft: boolean;
  dp: bigint;
  cp: bigint;
  dpend: bigint;
  cpend: bigint;
}

for (const database of testDatabases()) {
  describe(`ledger properties on ${database.name}`, () => {
    let db: TestDb;
    let ledger: Ledger;
    let run = 0;
    before(async () => {
      db = await database.open();
      ledger = new Ledger({ db });
    });
    after(() => db.close());

    it('matches the reference model and keeps the invariants', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(opArbitrary, { minLength: 1, maxLength: 40 }), async (ops) => {
          run++;
          const specs = [
            { normalBalance: 'credit' as const, allowOverdraft: true },
            { normalBalance: 'credit' as const, allowOverdraft: false },
            { normalBalance: 'credit' as const, allowOverdraft: false },
            { normalBalance: 'debit' as const, allowOverdraft: false },
          ];
          const accounts: Account[] = [];
          for (const spec of specs) {
            const { account } = await ledger.createAccount({
              currency: 'EUR',
              exponent: 2,
              code: null,
              metadata: {},
              ...spec,
            });
            accounts.push(account);
          }
          const model: ModelAccount[] = specs.map((s) => ({
            creditNormal: s.normalBalance === 'credit',
            overdraft: s.allowOverdraft,
            dp: 0n,
            cp: 0n,
            dpend: 0n,
            cpend: 0n,
          }));
          const keys = new Map<number, { signature: string; transferId: string }>();
          const holds: { id: string; debit: number; credit: number; amount: bigint; open: boolean }[] = [];

          for (const op of ops) {
            if (op.kind === 'transfer') {
              const amount = BigInt(op.cents);
              const signature = `${op.debit}>${op.credit}:${op.cents}:${op.pending}`;
              const outcome = await ledger.transfer(`run${run}-k${op.key}`, {
                postings: [
                  {
                    debitAccountId: at(accounts, op.debit).id,
                    creditAccountId: at(accounts, op.credit).id,
                    amount: { minor: amount as Minor, scale: 2 },
                  },
                ],
                pending: op.pending,
                expiresAt: null,
                metadata: {},
              });
              // A request wrong on its face is refused before its key is looked at.
              if (op.debit === op.credit) {
                assert.deepEqual(outcome, { ok: false, code: 'accounts_must_be_different' });
                continue;
              }
              const known = keys.get(op.key);
              if (known) {
                if (known.signature === signature) {
                  assert.ok(
                    outcome.ok && outcome.replayed && outcome.transfer.id === known.transferId,
                    'replay',
                  );
                } else {
                  assert.deepEqual(outcome, { ok: false, code: 'idempotency_key_reused' });
                }
                continue;
              }
              const d = at(model, op.debit);
              const c = at(model, op.credit);
              const expected =
                !d.overdraft && d.creditNormal && d.dp + d.dpend + amount > d.cp
                  ? 'insufficient_funds'
                  : !c.overdraft && !c.creditNormal && c.cp + c.cpend + amount > c.dp
                    ? 'insufficient_funds'
                    : 'ok';
              assert.equal(outcomeCode(outcome), expected, `transfer ${signature}`);
              if (!outcome.ok) continue;
              keys.set(op.key, { signature, transferId: outcome.transfer.id });
              if (op.pending) {
                d.dpend += amount;
                c.cpend += amount;
                holds.push({
                  id: outcome.transfer.id,
                  debit: op.debit,
                  credit: op.credit,
                  amount,
                  open: true,
                });
              } else {
                d.dp += amount;
                c.cp += amount;
              }
            } else {
              const hold = holds[op.hold % Math.max(holds.length, 1)];
              if (!hold) continue;
              const partial = op.kind === 'post' && op.partialCents !== null ? BigInt(op.partialCents) : null;
              const outcome =
                op.kind === 'post'
                  ? await ledger.post(
                      hold.id,
                      partial === null ? undefined : parseAmount((Number(partial) / 100).toFixed(2)),
                    )
                  : await ledger.void(hold.id);
              const expected = !hold.open
                ? /already_(posted|voided)/
                : partial !== null && partial > hold.amount
                  ? /amount_exceeds_pending/
                  : /ok/;
              assert.match(outcomeCode(outcome), expected, `${op.kind} of hold ${hold.id}`);
              if (!outcome.ok) continue;
              hold.open = false;
              const d = at(model, hold.debit);
              const c = at(model, hold.credit);
              d.dpend -= hold.amount;
              c.cpend -= hold.amount;
              if (op.kind === 'post') {
                d.dp += partial ?? hold.amount;
                c.cp += partial ?? hold.amount;
              }
            }
          }

          let sum = 0n;
          for (const [i, account] of accounts.entries()) {
            const stored = await ledger.getAccount(account.id);
            assert.ok(stored);
            const m = at(model, i);
            assert.deepEqual(
              [stored.debitsPosted, stored.creditsPosted, stored.debitsPending, stored.creditsPending],
              [m.dp, m.cp, m.dpend, m.cpend],
              `account ${i}`,
            );
            if (!stored.allowOverdraft)
              assert.ok(balancesOf(stored).available >= 0n, `account ${i} overdrawn`);
            sum += stored.creditsPosted - stored.debitsPosted;
          }
          assert.equal(sum, 0n, 'posted balances sum to zero');
        }),
        { numRuns: 60 },
      );
      assert.equal((await ledger.verify()).ok, true);
    });
  });
}

function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  assert.ok(item !== undefined, `no item ${index}`);
  return item;
}

function outcomeCode(outcome: TransferOutcome): string {
  return outcome.ok ? 'ok' : outcome.code;
}
