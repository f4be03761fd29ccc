// Batch payouts (payroll). A business's user uploads a file of credit transfers; every line is checked
// before anything is stored as payable; another user of the same business approves it (maker-checker); an
// executor in any server process claims it (SKIP LOCKED, with a lease) and pays it:
//
//   1. payees at this bank whose accounts stopped being active since the upload fail now, and what the payer
//      will be debited is recorded (funding_amount), before any money moves;
//   2. the payer is debited once, for that total, into the bank's payouts account (`bank:payouts-eur`): the
//      only step that can be refused (insufficient funds), and then the whole batch fails with nothing moved;
//   3. each item moves from there to its payee: to the payee's account at this bank (`credited`), or to
//      clearing for a payee at another bank (`accepted`), in calls of CREDITS_PER_CALL transfers;
//   4. whatever was debited and not credited goes back to the payer in one transfer, and the batch completes.
//
// Every money movement has a ledger key derived from the batch or item, and every record of one is
// conditional on the state it moves from, so an executor that dies anywhere (between a ledger call and its
// record too) leaves a batch the next executor finishes exactly once: the ledger replays what was done.
// Payments to other banks settle in the payouts' own cycle: one clearing -> settlement transfer per batch.
import { createHash } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { v7 as uuidv7 } from 'uuid';
import type { Accounts } from '../accounts/service.ts';
import type { BankAccount } from '../accounts/store.ts';
import type { Customers } from '../customers/service.ts';
import type { Db } from '../db/db.ts';
import type { BankLedgerAccounts } from '../ledger/bank-accounts.ts';
import type { TransferRequest } from '../ledger/model.ts';
import type { Ledger } from '../ledger/service.ts';
import { currencyExponent, type Minor } from '../money.ts';
import { fieldContext, type Pii } from '../pii/pii.ts';
import { type FileError, type PayoutFormat, readPayoutFile } from './files.ts';
import { checkLines, type LineError, payeeIbans } from './lines.ts';
import {
  type BatchStatus,
  claimBatch,
  claimUnsettled,
  decideFunding,
  findBatch,
  findBatchByKey,
  findLiveBatchOfFile,
  finishSettlement,
  type ItemChange,
  type ItemStatus,
  insertBatch,
  insertItems,
  itemCounts,
  itemsTotal,
  listBatches,
  listItems,
  markFunded,
  moveItems,
  pendingItems,
  renewLease,
  type StoredBatch,
  type StoredItem,
  transitionBatch,
} from './store.ts';

export const BATCHES_PAGE_MAX = 100;
export const ITEMS_PAGE_MAX = 1000;
/** Item transfers per ledger call: progress becomes visible after each. */
export const CREDITS_PER_CALL = 1000;
/** How long an executor's claim on a batch lasts without renewal; it renews after every call. */
export const EXECUTION_LEASE_MS = 60_000;
const BATCHES_PER_RUN = 10;
const ITEMS_READ_PAGE = 5000;
const SETTLEMENTS_PER_CYCLE = 100;
// A settlement claim this old belonged to a process that died before finishing it.
const STALE_SETTLEMENT_MS = 5 * 60_000;

export type LedgerStep = 'funding' | 'credits' | 'refund';

/** Who acts: the customer (a business) and which of its users (logins). */
export interface PayoutUser {
  readonly customerId: string;
  readonly loginId: string;
}

export interface PayoutBatch {
  readonly id: string;
  readonly status: BatchStatus;
  readonly format: PayoutFormat;
  readonly messageId: string | null;
  readonly debtorAccountId: string;
  readonly currency: string;
  readonly contentSha256: string;
  readonly itemCount: number;
  readonly totalAmount: Minor;
  readonly progress: Readonly<Record<ItemStatus, number>>;
  readonly debitedAmount: Minor | null;
  readonly refundedAmount: Minor | null;
  readonly failureCode: string | null;
  readonly validationErrors: readonly LineError[];
  readonly validationErrorCount: number;
  readonly uploadedBy: string;
  readonly approvedBy: string | null;
  readonly cancelledBy: string | null;
  readonly createdAt: Date;
  readonly approvedAt: Date | null;
  readonly startedAt: Date | null;
  readonly completedAt: Date | null;
  readonly settledAt: Date | null;
}

export interface PayoutItem {
  readonly id: string;
  readonly line: number;
  readonly creditor: { readonly name: string; readonly iban: string };
  /** Whether the payee's account is at this bank (credited directly) or at another (through clearing). */
  readonly destination: 'this_bank' | 'other_bank';
  readonly amount: Minor;
  readonly currency: string;
  readonly reference: string | null;
  readonly endToEndId: string | null;
  readonly status: ItemStatus;
  readonly failureCode: string | null;
}

export type UploadProblem =
  | 'payouts_business_only'
  | 'not_found'
  | 'debtor_account_not_active'
  | 'payout_file_invalid'
  | 'payout_batch_too_large'
  | 'idempotency_key_reused'
  | 'validation_failed';

export type UploadOutcome =
  /** `created` false: the answer is an earlier batch (the same key replayed, or the same file again). */
  | { ok: true; batch: PayoutBatch; created: boolean; replayed: boolean }
  | { ok: false; code: 'payout_batch_invalid'; batch: PayoutBatch }
  | { ok: false; code: UploadProblem; detail?: string; errors?: readonly FileError[] };

export interface Upload {
  readonly key: string;
  readonly format: PayoutFormat;
  readonly content: Buffer;
  /** The account to pay from: required for CSV; a pain.001 names it (and must agree when both do). */
  readonly debtorAccountId?: string | undefined;
}

/** Thrown inside the recording transaction when a twin upload (same key or same file) won the race. */
class UploadRaced extends Error {}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const EMPTY_PROGRESS: Record<ItemStatus, number> = {
  pending: 0,
  credited: 0,
  accepted: 0,
  settled: 0,
  failed: 0,
  cancelled: 0,
};

export class Payouts {
  readonly #db: Db;
  readonly #ledger: Ledger;
  readonly #bankAccounts: BankLedgerAccounts;
  readonly #accounts: Accounts;
  readonly #customers: Customers;
  readonly #pii: Pii;
  readonly #now: () => Date;
  readonly #creditsPerCall: number;
  readonly #afterLedgerStep: ((step: LedgerStep, batchId: string) => void | Promise<void>) | undefined;

  constructor(options: {
    db: Db;
    ledger: Ledger;
    bankAccounts: BankLedgerAccounts;
    accounts: Accounts;
    customers: Customers;
    pii: Pii;
    now?: () => Date;
    /** Default CREDITS_PER_CALL; at most the ledger's batch size. */
    creditsPerCall?: number;
    /**
     * Called after each ledger call of an execution and before its outcome is recorded. An exception here
     * leaves the batch exactly as a process dying at that point would (tests use it to prove recovery).
     */
    afterLedgerStep?: (step: LedgerStep, batchId: string) => void | Promise<void>;
  }) {
    this.#db = options.db;
    this.#ledger = options.ledger;
    this.#bankAccounts = options.bankAccounts;
    this.#accounts = options.accounts;
    this.#customers = options.customers;
    this.#pii = options.pii;
    this.#now = options.now ?? (() => new Date());
    this.#creditsPerCall = Math.min(options.creditsPerCall ?? CREDITS_PER_CALL, CREDITS_PER_CALL);
    this.#afterLedgerStep = options.afterLedgerStep;
  }

  // ---------------------------------------------------------------------------------------------- upload

  /**
   * Reads, checks and records an uploaded file. A file with failing lines is recorded as `invalid` with its
   * report (and holds no Idempotency-Key, like any refusal); nothing of it can ever move. The same key
   * again answers with its batch; the same file from the same account again (any key) answers with the live
   * batch made of it, so a file sent twice is never paid twice.
   */
  async upload(user: PayoutUser, upload: Upload): Promise<UploadOutcome> {
    if ((await this.#customers.kind(user.customerId)) !== 'business') {
      return {
        ok: false,
        code: 'payouts_business_only',
        detail: 'batch payouts need a business customer, whose second user approves each batch',
      };
    }
    const contentSha256 = sha256(upload.content);
    const earlier = await this.#earlier(user, upload, contentSha256);
    if (earlier) return earlier;

    const reading = await readPayoutFile(upload.format, upload.content);
    if (!reading.ok) return { ok: false, code: reading.code, detail: reading.detail, errors: reading.errors };
    const file = reading.file;

    const debtor = await this.#debtorAccount(user, upload, file.debtorIban);
    if (!('id' in debtor)) return debtor;
    const sameFile = await findLiveBatchOfFile(this.#db, user.customerId, debtor.id, contentSha256);
    if (sameFile) return { ok: true, batch: await this.#view(sameFile), created: false, replayed: false };

    const payees = new Map(
      (await this.#accounts.findByIbans(payeeIbans(file.lines))).map((account) => [account.iban, account]),
    );
    const report = checkLines(file.lines, { debtor, payees, bank: this.#accounts.bank });
    const valid = report.errorCount === 0;
    const id = uuidv7();
    const now = this.#now();
    const batch: StoredBatch = {
      id,
      customerId: user.customerId,
      debtorAccountId: debtor.id,
      currency: debtor.currency,
      format: file.format,
      contentSha256,
      idempotencyKey: valid ? upload.key : null,
      messageId: file.messageId,
      status: valid ? 'awaiting_approval' : 'invalid',
      failureCode: null,
      itemCount: file.lines.length,
      totalAmount: report.lines.reduce((sum, line) => sum + line.amount, 0n),
      validationErrors: report.errors,
      validationErrorCount: report.errorCount,
      uploadedBy: user.loginId,
      approvedBy: null,
      cancelledBy: null,
      fundingAmount: null,
      fundedAt: null,
      refundedAmount: null,
      leaseUntil: null,
      unsettledAmount: 0n,
      createdAt: now,
      approvedAt: null,
      startedAt: null,
      completedAt: null,
      settledAt: null,
    };
    const items: StoredItem[] = valid
      ? report.lines.map((line) => {
          const itemId = uuidv7();
          return {
            id: itemId,
            batchId: id,
            customerId: user.customerId,
            line: line.line,
            creditorNameEnc: this.#pii.encrypt(
              line.creditorName,
              fieldContext('payout_items', 'creditor_name_enc', itemId),
            ),
            creditorIban: line.creditorIban,
            creditorAccountId: line.creditorAccountId,
            amount: line.amount,
            reference: line.reference,
            endToEndId: line.endToEndId,
            status: 'pending',
            failureCode: null,
          };
        })
      : [];
    try {
      await this.#db.transaction(async (tx) => {
        const event = this.#batchEvent(batch, valid ? 'received' : 'invalid', {
          itemCount: batch.itemCount,
          ...(valid ? {} : { errorCount: report.errorCount }),
        });
        if (!(await insertBatch(tx, batch, event))) throw new UploadRaced();
        await insertItems(tx, items, now);
      });
    } catch (error) {
      if (!(error instanceof UploadRaced)) throw error;
      // A twin upload (same key, or same file) committed first: answer as it was answered.
      const twin = await this.#earlier(user, upload, contentSha256);
      if (twin) return twin;
      const same = await findLiveBatchOfFile(this.#db, user.customerId, debtor.id, contentSha256);
      if (!same) throw new Error('payout batch insert conflicted with no batch');
      return { ok: true, batch: await this.#view(same), created: false, replayed: false };
    }
    const view = await this.#view(batch);
    return valid
      ? { ok: true, batch: view, created: true, replayed: false }
      : { ok: false, code: 'payout_batch_invalid', batch: view };
  }

  /** The batch the customer's key already made: the same request is a replay, another one a misuse. */
  async #earlier(
    user: PayoutUser,
    upload: Upload,
    contentSha256: string,
  ): Promise<UploadOutcome | undefined> {
    const existing = await findBatchByKey(this.#db, user.customerId, upload.key);
    if (!existing) return undefined;
    const same =
      existing.contentSha256 === contentSha256 &&
      existing.format === upload.format &&
      (upload.debtorAccountId === undefined || upload.debtorAccountId === existing.debtorAccountId);
    if (!same) return { ok: false, code: 'idempotency_key_reused' };
    return { ok: true, batch: await this.#view(existing), created: false, replayed: true };
  }

  /** The customer's own, active account the file pays from. */
  async #debtorAccount(
    user: PayoutUser,
    upload: Upload,
    fileIban: string | null,
  ): Promise<BankAccount | Extract<UploadOutcome, { ok: false; code: UploadProblem }>> {
    let account: BankAccount | undefined;
    if (fileIban !== null) {
      const named = await this.#accounts.findByIban(fileIban);
      account = named?.customerId === user.customerId ? named : undefined;
      if (!account)
        return { ok: false, code: 'not_found', detail: "the file's debtor account (DbtrAcct) is not yours" };
      if (upload.debtorAccountId !== undefined && upload.debtorAccountId !== account.id) {
        return {
          ok: false,
          code: 'payout_file_invalid',
          detail: 'the file pays from another account than debtorAccountId',
        };
      }
    } else {
      if (upload.debtorAccountId === undefined) {
        return {
          ok: false,
          code: 'validation_failed',
          detail: '/querystring/debtorAccountId is required for a CSV file',
          errors: [{ line: null, message: 'debtorAccountId is required for a CSV file' }],
        };
      }
      account = await this.#accounts.findForCustomer(user.customerId, upload.debtorAccountId);
      if (!account) return { ok: false, code: 'not_found', detail: 'no account of yours with this id' };
    }
    if (account.status !== 'active') return { ok: false, code: 'debtor_account_not_active' };
    return account;
  }

  // ---------------------------------------------------------------------------------------------- reading

  /** The batch, if it is the customer's (any of its users may see it). */
  async get(customerId: string, id: string): Promise<PayoutBatch | undefined> {
    const batch = await findBatch(this.#db, id);
    return batch?.customerId === customerId ? this.#view(batch) : undefined;
  }

  /** The customer's batches, newest first. */
  async list(customerId: string, beforeId: string | undefined, limit: number): Promise<PayoutBatch[]> {
    const batches = await listBatches(this.#db, customerId, beforeId, Math.min(limit, BATCHES_PAGE_MAX + 1));
    const counts = await itemCounts(
      this.#db,
      batches.map((batch) => batch.id),
    );
    return batches.map((batch) => this.#viewWith(batch, counts.get(batch.id) ?? {}));
  }

  /** The batch's items in file order after `afterLine`; undefined when the batch is not the customer's. */
  async items(
    customerId: string,
    id: string,
    afterLine: number,
    limit: number,
  ): Promise<PayoutItem[] | undefined> {
    const batch = await findBatch(this.#db, id);
    if (batch?.customerId !== customerId) return undefined;
    const items = await listItems(this.#db, id, afterLine, Math.min(limit, ITEMS_PAGE_MAX + 1));
    return Promise.all(
      items.map(async (item) => ({
        id: item.id,
        line: item.line,
        creditor: {
          name: await this.#pii.decrypt(
            item.creditorNameEnc,
            fieldContext('payout_items', 'creditor_name_enc', item.id),
          ),
          iban: item.creditorIban,
        },
        destination: item.creditorAccountId ? ('this_bank' as const) : ('other_bank' as const),
        amount: item.amount as Minor,
        currency: batch.currency,
        reference: item.reference,
        endToEndId: item.endToEndId,
        status: item.status,
        failureCode: item.failureCode,
      })),
    );
  }

  async #view(batch: StoredBatch): Promise<PayoutBatch> {
    return this.#viewWith(batch, (await itemCounts(this.#db, [batch.id])).get(batch.id) ?? {});
  }

  #viewWith(batch: StoredBatch, counts: Partial<Record<ItemStatus, number>>): PayoutBatch {
    return {
      id: batch.id,
      status: batch.status,
      format: batch.format,
      messageId: batch.messageId,
      debtorAccountId: batch.debtorAccountId,
      currency: batch.currency,
      contentSha256: batch.contentSha256,
      itemCount: batch.itemCount,
      totalAmount: batch.totalAmount as Minor,
      progress: { ...EMPTY_PROGRESS, ...counts },
      // Debited once the payer's debit went through; what was decided before that is not yet money.
      debitedAmount: batch.fundedAt ? (batch.fundingAmount as Minor) : null,
      refundedAmount: batch.refundedAmount as Minor | null,
      failureCode: batch.failureCode,
      validationErrors: batch.validationErrors,
      validationErrorCount: batch.validationErrorCount,
      uploadedBy: batch.uploadedBy,
      approvedBy: batch.approvedBy,
      cancelledBy: batch.cancelledBy,
      createdAt: batch.createdAt,
      approvedAt: batch.approvedAt,
      startedAt: batch.startedAt,
      completedAt: batch.completedAt,
      settledAt: batch.settledAt,
    };
  }

  // ---------------------------------------------------------------------------------------------- maker-checker

  /**
   * A second user of the business approves the batch (maker-checker): the uploader never can, which the
   * update's own condition and the table's CHECK hold as well, so no race lets one person do both.
   */
  async approve(
    user: PayoutUser,
    id: string,
  ): Promise<PayoutBatch | 'not_found' | 'not_approvable' | 'approver_is_uploader'> {
    const batch = await findBatch(this.#db, id);
    if (batch?.customerId !== user.customerId) return 'not_found';
    if (batch.uploadedBy === user.loginId) return 'approver_is_uploader';
    const approved = await transitionBatch(
      this.#db,
      id,
      ['awaiting_approval'],
      'approved',
      this.#now(),
      this.#batchEvent(batch, 'approved', { approvedBy: user.loginId }),
      { approvedBy: user.loginId },
      { notUploadedBy: user.loginId },
    );
    return approved ? this.#view(approved) : 'not_approvable';
  }

  /** Any user of the business cancels a batch that has not started: nothing moves, and its items end with it. */
  async cancel(user: PayoutUser, id: string): Promise<PayoutBatch | 'not_found' | 'not_cancellable'> {
    const batch = await findBatch(this.#db, id);
    if (batch?.customerId !== user.customerId) return 'not_found';
    const cancellable: BatchStatus[] = ['awaiting_approval', 'approved'];
    if (!cancellable.includes(batch.status)) return 'not_cancellable';
    const cancelled = await this.#endBeforeMoving(batch, cancellable, 'cancelled', {
      event: { cancelledBy: user.loginId },
      set: { cancelledBy: user.loginId },
      itemCode: null,
    });
    return cancelled ? this.#view(cancelled) : 'not_cancellable';
  }

  // ---------------------------------------------------------------------------------------------- execution

  /**
   * Executes approved batches, and batches whose executor died, one at a time; returns how many it brought
   * to an end. Safe in any number of processes at once.
   */
  async runDue(): Promise<number> {
    let finished = 0;
    for (let run = 0; run < BATCHES_PER_RUN; run++) {
      const now = this.#now();
      const claimed = await claimBatch(this.#db, now, new Date(now.getTime() + EXECUTION_LEASE_MS));
      if (!claimed) break;
      if (await this.#execute(claimed.batch)) finished++;
    }
    return finished;
  }

  /** Runs the batch's remaining steps; false when another executor turned out to hold part of it. */
  async #execute(claimed: StoredBatch): Promise<boolean> {
    const id = claimed.id;
    const debtor = await this.#accounts.find(claimed.debtorAccountId);
    if (!debtor) throw new Error(`payout batch ${id} names a missing account`);
    const transit = await this.#bankAccounts.id('payouts', claimed.currency);
    const scale = currencyExponent(claimed.currency) ?? 2;
    const money = (minor: bigint) => ({ minor: minor as Minor, scale });

    // 1. What the payer is debited, decided once before anything moves. Once decided, the debit is made
    // (or replayed) whatever happens to the account after: a restarted run cannot tell a debit it must
    // not make from one a dead run already made, except by making it under the same key.
    let funding = claimed.fundingAmount;
    if (funding === null) {
      if (debtor.status !== 'active') return this.#fail(claimed, 'debtor_account_not_active');
      funding = await this.#decideFunding(claimed);
    }

    // 2. The payer's one debit. Refused: the batch fails and nothing has moved.
    if (!claimed.fundedAt) {
      if (funding > 0n) {
        const outcome = await this.#ledger.transfer(`payout:${id}:funding`, {
          postings: [
            { debitAccountId: debtor.ledgerAccountId, creditAccountId: transit, amount: money(funding) },
          ],
          pending: false,
          expiresAt: null,
          metadata: { payoutBatchId: id, reference: this.#statementReference(claimed), category: 'transfer' },
        });
        await this.#afterLedgerStep?.('funding', id);
        if (!outcome.ok) {
          if (outcome.code === 'idempotency_key_in_flight') return false;
          return this.#fail(claimed, outcome.code);
        }
      }
      await markFunded(this.#db, id, this.#now());
    }

    // 3. The payees, a call at a time; progress is visible after each.
    const clearing = await this.#bankAccounts.id('clearing', claimed.currency);
    for (;;) {
      // Let requests in between calls: on embedded PGlite every query runs on this thread, and a batch
      // would otherwise hold it (and hide its progress) from start to end.
      await nextTurn();
      if (!(await renewLease(this.#db, id, new Date(this.#now().getTime() + EXECUTION_LEASE_MS))))
        return false;
      const pending = await pendingItems(this.#db, id, this.#creditsPerCall);
      if (pending.length === 0) break;
      const payees = await this.#payeeLedgerAccounts(pending);
      const outcomes = await this.#ledger.transferBatch(
        true,
        pending.map((item) => ({
          key: `payout:${item.id}`,
          request: this.#creditRequest(claimed, debtor, item, payees.get(item.id) ?? clearing, transit),
        })),
      );
      await this.#afterLedgerStep?.('credits', id);
      const changes: ItemChange[] = [];
      for (const [index, item] of pending.entries()) {
        const outcome = outcomes[index];
        if (outcome?.ok) {
          changes.push({
            id: item.id,
            status: item.creditorAccountId ? 'credited' : 'accepted',
            failureCode: null,
          });
        } else if (outcome && outcome.code === 'idempotency_key_in_flight') {
          // Another executor in this process holds these transfers: it records them.
          return false;
        } else if (outcome && outcome.code !== 'batch_aborted') {
          // The ledger refused this one; the rest of the call was rolled back and goes again without it.
          changes.push({ id: item.id, status: 'failed', failureCode: outcome.code });
        }
      }
      if (changes.length === 0) throw new Error(`payout batch ${id}: a ledger call failed with no reason`);
      await moveItems(this.#db, id, 'pending', changes, this.#now());
    }

    // 4. Back to the payer whatever was debited and not credited; then the batch is done.
    const paid = await itemsTotal(this.#db, id, ['credited', 'accepted', 'settled']);
    const refund = funding - paid;
    if (refund < 0n) throw new Error(`payout batch ${id} paid ${paid}, more than the ${funding} debited`);
    if (refund > 0n) {
      const outcome = await this.#ledger.transfer(`payout:${id}:refund`, {
        postings: [
          { debitAccountId: transit, creditAccountId: debtor.ledgerAccountId, amount: money(refund) },
        ],
        pending: false,
        expiresAt: null,
        metadata: {
          payoutBatchId: id,
          reference: `${this.#statementReference(claimed)}: not credited`,
          category: 'transfer',
        },
      });
      await this.#afterLedgerStep?.('refund', id);
      if (!outcome.ok) {
        if (outcome.code === 'idempotency_key_in_flight') return false;
        throw new Error(`payout batch ${id}: refund refused (${outcome.code})`);
      }
    }
    const counts = (await itemCounts(this.#db, [id])).get(id) ?? {};
    const completed = await transitionBatch(
      this.#db,
      id,
      ['executing'],
      'completed',
      this.#now(),
      this.#batchEvent(claimed, 'completed', { progress: { ...EMPTY_PROGRESS, ...counts } }),
      { refundedAmount: refund, unsettledAmount: await itemsTotal(this.#db, id, ['accepted']) },
    );
    return completed !== undefined;
  }

  /**
   * Payees at this bank whose accounts are no longer active (or gone, or in another currency) fail before
   * the payer is debited for them; the rest is the debit, recorded before it is made.
   */
  async #decideFunding(batch: StoredBatch): Promise<bigint> {
    const pending = await this.#allItems(batch.id, 'pending');
    const internal = [...new Set(pending.filter((i) => i.creditorAccountId).map((i) => i.creditorIban))];
    const accounts = new Map((await this.#accounts.findByIbans(internal)).map((a) => [a.id, a]));
    const changes: ItemChange[] = [];
    let total = 0n;
    for (const item of pending) {
      const payee = item.creditorAccountId ? accounts.get(item.creditorAccountId) : undefined;
      if (item.creditorAccountId && (payee?.status !== 'active' || payee.currency !== batch.currency)) {
        changes.push({ id: item.id, status: 'failed', failureCode: 'creditor_account_not_active' });
      } else {
        total += item.amount;
      }
    }
    const now = this.#now();
    return this.#db.transaction(async (tx) => {
      await moveItems(tx, batch.id, 'pending', changes, now);
      return decideFunding(tx, batch.id, total, now);
    });
  }

  /** Each item's ledger account at this bank, by item id; items for other banks are absent. */
  async #payeeLedgerAccounts(items: readonly StoredItem[]): Promise<Map<string, string>> {
    const internal = items.filter((item) => item.creditorAccountId !== null);
    const accounts = new Map(
      (await this.#accounts.findByIbans([...new Set(internal.map((item) => item.creditorIban))])).map((a) => [
        a.id,
        a.ledgerAccountId,
      ]),
    );
    const ledgerIds = new Map<string, string>();
    for (const item of internal) {
      const ledgerId = accounts.get(item.creditorAccountId as string);
      // Checked before the payer was debited; an account of this bank never loses its ledger account.
      if (!ledgerId) throw new Error(`payout item ${item.id}: the payee's account is gone`);
      ledgerIds.set(item.id, ledgerId);
    }
    return ledgerIds;
  }

  /** One item's transfer: from the payouts account to the payee here, or to clearing for another bank. */
  #creditRequest(
    batch: StoredBatch,
    debtor: BankAccount,
    item: StoredItem,
    target: string,
    transit: string,
  ): TransferRequest {
    return {
      postings: [
        {
          debitAccountId: transit,
          creditAccountId: target,
          amount: { minor: item.amount as Minor, scale: currencyExponent(batch.currency) ?? 2 },
        },
      ],
      pending: false,
      expiresAt: null,
      // The payee's statement shows who paid (the payer's IBAN) and the line's reference; no name of a
      // person goes into the ledger.
      metadata: {
        payoutBatchId: batch.id,
        payoutItemId: item.id,
        reference: item.reference,
        category: 'transfer',
        counterparty: { iban: item.creditorAccountId ? debtor.iban : item.creditorIban },
      },
    };
  }

  /** Every item of the batch in `status`, in file order, read in bounded pages. */
  async #allItems(batchId: string, status: ItemStatus): Promise<StoredItem[]> {
    const all: StoredItem[] = [];
    for (let after = 0; ; ) {
      const page = await listItems(this.#db, batchId, after, ITEMS_READ_PAGE, status);
      all.push(...page);
      if (page.length < ITEMS_READ_PAGE) return all;
      after = page.at(-1)?.line ?? after;
    }
  }

  /** The batch fails before anything moved: every item with it. */
  async #fail(batch: StoredBatch, code: string): Promise<boolean> {
    const failed = await this.#endBeforeMoving(batch, ['executing'], 'failed', {
      event: { code },
      set: { failureCode: code },
      itemCode: code,
    });
    return failed !== undefined;
  }

  /**
   * The batch ends (`to`) before any of its money moved, and every item with it (all still pending), in one
   * transaction: only if the batch is still in one of `from` (an executor may have claimed it, or a user
   * cancelled it, since it was read); undefined otherwise.
   */
  async #endBeforeMoving(
    batch: StoredBatch,
    from: readonly BatchStatus[],
    to: 'failed' | 'cancelled',
    end: {
      readonly event: Record<string, unknown>;
      readonly set: Parameters<typeof transitionBatch>[6];
      readonly itemCode: string | null;
    },
  ): Promise<StoredBatch | undefined> {
    const now = this.#now();
    const pending = await this.#allItems(batch.id, 'pending');
    return this.#db.transaction(async (tx) => {
      const ended = await transitionBatch(
        tx,
        batch.id,
        from,
        to,
        now,
        this.#batchEvent(batch, to, end.event),
        end.set,
      );
      if (ended) {
        const changes = pending.map((item) => ({ id: item.id, status: to, failureCode: end.itemCode }));
        await moveItems(tx, batch.id, 'pending', changes, now);
      }
      return ended;
    });
  }

  #statementReference(batch: StoredBatch): string {
    return `Batch payout ${batch.messageId ?? batch.id} (${batch.itemCount} payments)`;
  }

  #batchEvent(batch: StoredBatch, status: string, extra: Record<string, unknown> = {}) {
    return {
      type: `payout.batch.${status}`,
      payload: { batchId: batch.id, customerId: batch.customerId, status, ...extra },
    };
  }

  // ---------------------------------------------------------------------------------------------- settlement

  /**
   * One settlement cycle for payouts to other banks: each claimed batch's clearing money moves to settlement
   * in one transfer (keyed by the batch) and its items become `settled`. A batch the ledger refuses (the
   * bank short of settlement money) waits for the next cycle.
   */
  async settleCycle(): Promise<{ settled: number; deferred: number }> {
    const now = this.#now();
    const due = await claimUnsettled(
      this.#db,
      now,
      new Date(now.getTime() - STALE_SETTLEMENT_MS),
      SETTLEMENTS_PER_CYCLE,
    );
    let settled = 0;
    for (const batch of due) {
      const outcome = await this.#ledger.transfer(`payout:${batch.id}:settlement`, {
        postings: [
          {
            debitAccountId: await this.#bankAccounts.id('clearing', batch.currency),
            creditAccountId: await this.#bankAccounts.id('settlement', batch.currency),
            amount: { minor: batch.unsettledAmount as Minor, scale: currencyExponent(batch.currency) ?? 2 },
          },
        ],
        pending: false,
        expiresAt: null,
        metadata: { payoutBatchId: batch.id, purpose: 'settlement' },
      });
      const at = this.#now();
      if (!outcome.ok) {
        await finishSettlement(this.#db, batch.id, false, at);
        continue;
      }
      const accepted = await this.#allItems(batch.id, 'accepted');
      await this.#db.transaction(async (tx) => {
        await moveItems(
          tx,
          batch.id,
          'accepted',
          accepted.map((item) => ({ id: item.id, status: 'settled', failureCode: null })),
          at,
        );
        await finishSettlement(tx, batch.id, true, at);
      });
      settled++;
    }
    return { settled, deferred: due.length - settled };
  }
}
