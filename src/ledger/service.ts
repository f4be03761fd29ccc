import { v7 as uuidv7 } from 'uuid';
import { Batcher } from '../db/batcher.ts';
import type { Db, Sql } from '../db/db.ts';
import type { JointCall, Jointly } from '../db/group-commit.ts';
import { Problem } from '../http/problems.ts';
import { requestHash, runIdempotent } from '../idempotency.ts';
import type { Minor, ParsedAmount } from '../money.ts';
import type {
  Account,
  Entry,
  EntryDetail,
  EntryFilter,
  LedgerResult,
  NewAccountRequest,
  Transfer,
  TransferRequest,
} from './model.ts';
import {
  type AccountDiscrepancy,
  balanceBefore,
  type CurrencyTotals,
  currencyTotals,
  executeItems,
  findAccount,
  findAccountDiscrepancies,
  findExpiredPending,
  findTransfer,
  findUnbalancedTransfers,
  insertAccount,
  type LedgerItem,
  listAccounts,
  listEntryDetails,
} from './store.ts';

/** The most transfers one batch (and one call of the ledger function) carries. */
export const TRANSFER_BATCH_MAX = 8190;
export const POSTINGS_PER_TRANSFER_MAX = 64;
export const ENTRIES_PAGE_MAX = 1000;
export const ACCOUNTS_PAGE_MAX = 1000;
/** How far ahead a pending transfer may expire: holds longer than this should be renewed. */
export const PENDING_EXPIRY_MAX_MS = 90 * 24 * 60 * 60 * 1000;
const EXPIRIES_PER_SWEEP_MAX = 1000;
const VERIFY_REPORT_MAX = 100;

const TRANSFER_SCOPE = 'ledger.transfers';
const ACTION_SCOPE = 'ledger.transfer-actions';
const ACCOUNT_SCOPE = 'ledger.accounts';

export type TransferOutcome = LedgerResult | { readonly ok: false; readonly code: TransferRequestError };
export type TransferRequestError =
  | 'accounts_must_be_different'
  | 'invalid_expiry'
  | 'idempotency_key_in_flight';

export interface VerifyReport {
  readonly ok: boolean;
  readonly currencies: readonly CurrencyTotals[];
  readonly unbalancedCurrencies: readonly string[];
  readonly discrepancies: readonly AccountDiscrepancy[];
  readonly unbalancedTransfers: readonly string[];
}

export interface LedgerOptions {
  readonly db: Db;
  readonly now?: () => Date;
  /** Concurrent calls of the ledger function from this process; more only queue behind row locks. */
  readonly callsInFlightMax?: number;
}

/**
 * The ledger's operations. Transfers, posts and voids from concurrent requests are merged into calls of
 * one SQL function (see 0002_ledger_execute.sql; its current text: 0029), so a burst of single transfers
 * costs a few round trips and commits rather than one each, and a hot account's row lock is taken once per
 * call, not per transfer.
 */
export class Ledger {
  readonly #db: Db;
  readonly #now: () => Date;
  readonly #batcher: Batcher<LedgerItem, LedgerResult>;
  // Keys whose request is running in this process: a twin is answered 409 rather than queued behind it.
  readonly #keysInFlight = new Set<string>();

  constructor(options: LedgerOptions) {
    this.#db = options.db;
    this.#now = options.now ?? (() => new Date());
    this.#batcher = new Batcher({
      run: (items) => executeItems(this.#db, items, false, this.#now()),
      itemsPerCallMax: TRANSFER_BATCH_MAX,
      callsInFlightMax: options.callsInFlightMax ?? (options.db.kind === 'pglite' ? 1 : 2),
      queuedMax: TRANSFER_BATCH_MAX * 8,
    });
  }

  async createAccount(
    request: NewAccountRequest,
    idempotencyKey?: string,
  ): Promise<{ account: Account; replayed: boolean }> {
    const create = (sql: Sql) => insertAccount(sql, { ...request, id: uuidv7(), createdAt: this.#now() });
    if (idempotencyKey === undefined) return { account: await create(this.#db), replayed: false };
    const response = await runIdempotent(
      this.#db,
      { scope: ACCOUNT_SCOPE, key: idempotencyKey, hash: requestHash(request) },
      async (tx) => ({ statusCode: 201, body: accountToJson(await create(tx)) }),
    );
    return { account: accountFromJson(response.body as AccountJson), replayed: response.replayed };
  }

  /** Creates an account inside the caller's transaction (a customer's account and its ledger account commit together). */
  createAccountIn(sql: Sql, request: NewAccountRequest): Promise<Account> {
    return insertAccount(sql, { ...request, id: uuidv7(), createdAt: this.#now() });
  }

  listEntryDetails(
    accountId: string,
    filter: EntryFilter,
    beforeSeq: bigint | undefined,
    limit: number,
  ): Promise<EntryDetail[]> {
    return listEntryDetails(this.#db, accountId, filter, beforeSeq, Math.min(limit, ENTRIES_PAGE_MAX));
  }

  balanceBefore(accountId: string, at: Date): Promise<bigint> {
    return balanceBefore(this.#db, accountId, at);
  }

  getAccount(id: string): Promise<Account | undefined> {
    return findAccount(this.#db, id);
  }

  listAccounts(
    filter: { code?: string | undefined },
    afterId: string | undefined,
    limit: number,
  ): Promise<Account[]> {
    return listAccounts(this.#db, filter, afterId, Math.min(limit, ACCOUNTS_PAGE_MAX));
  }

  /** Entries newest first, strictly older than `beforeSeq` when given. */
  listEntries(accountId: string, beforeSeq: bigint | undefined, limit: number): Promise<Entry[]> {
    return this.listEntryDetails(accountId, {}, beforeSeq, limit);
  }

  getTransfer(id: string): Promise<Transfer | undefined> {
    return findTransfer(this.#db, id);
  }

  /** Checks what needs no database, so a request that is wrong on its face never reaches a lock. */
  checkTransfer(request: TransferRequest): TransferRequestError | undefined {
    if (request.postings.some((p) => p.debitAccountId === p.creditAccountId))
      return 'accounts_must_be_different';
    if (request.expiresAt !== null) {
      const aheadMs = request.expiresAt.getTime() - this.#now().getTime();
      if (aheadMs <= 0 || aheadMs > PENDING_EXPIRY_MAX_MS) return 'invalid_expiry';
    }
    return undefined;
  }

  transfer(key: string, request: TransferRequest): Promise<TransferOutcome> {
    const problem = this.checkTransfer(request);
    if (problem) return Promise.resolve({ ok: false, code: problem });
    return this.#submit({ op: 'transfer', key, hash: transferHash(request), id: uuidv7(), request });
  }

  /**
   * A transfer in the caller's transaction, committed or undone with the rest of it. In a group's
   * transaction (src/db/group-commit.ts) the transfers its works make meanwhile go as one call of the ledger
   * function, which locks each account once and all of them in one order: two groups never deadlock on
   * them. The key is the caller's own to keep unique (no twin in flight is answered for it).
   */
  transferIn(jointly: Jointly, key: string, request: TransferRequest): Promise<TransferOutcome> {
    const problem = this.checkTransfer(request);
    if (problem) return Promise.resolve({ ok: false, code: problem });
    return jointly(this.#executeJointly, {
      op: 'transfer',
      key,
      hash: transferHash(request),
      id: uuidv7(),
      request,
    });
  }

  readonly #executeJointly: JointCall<LedgerItem, LedgerResult> = (sql, items) =>
    executeItems(sql, items, false, this.#now());

  /** Posts a pending transfer, in full or (one posting only) for a smaller amount; the rest is released. */
  post(id: string, amount: ParsedAmount | undefined, key?: string): Promise<TransferOutcome> {
    const item: LedgerItem = { op: 'post', id, ...(amount && { amount }) };
    if (key === undefined) return this.#submit(item);
    return this.#resolveIdempotently(item, key, {
      op: 'post',
      id,
      amount: amount && `${amount.minor}/${amount.scale}`,
    });
  }

  void(id: string, key?: string): Promise<TransferOutcome> {
    const item: LedgerItem = { op: 'void', id };
    return key === undefined ? this.#submit(item) : this.#resolveIdempotently(item, key, { op: 'void', id });
  }

  // Posts and voids are rare next to transfers: with a key they take the general idempotency path (a few
  // round trips in one transaction) rather than complicating the ledger function.
  async #resolveIdempotently(item: LedgerItem, key: string, request: unknown): Promise<TransferOutcome> {
    const inFlight = `${ACTION_SCOPE}\u0000${key}`;
    if (this.#keysInFlight.has(inFlight)) return { ok: false, code: 'idempotency_key_in_flight' };
    this.#keysInFlight.add(inFlight);
    try {
      let outcome: TransferOutcome | undefined;
      const response = await runIdempotent(
        this.#db,
        { scope: ACTION_SCOPE, key, hash: requestHash(request) },
        async (tx) => {
          const [result] = await executeItems(tx, [item], false, this.#now());
          outcome = result;
          if (!result?.ok) return { statusCode: 0, body: null, remember: false };
          return { statusCode: 200, body: transferToJson(result.transfer) };
        },
      );
      if (response.replayed)
        return { ok: true, replayed: true, transfer: transferFromStored(response.body as StoredTransfer) };
      if (!outcome) throw new Error('idempotent post or void produced no outcome');
      return outcome;
    } catch (error) {
      if (error instanceof Problem && error.code === 'idempotency_key_reused')
        return { ok: false, code: 'idempotency_key_reused' };
      if (error instanceof Problem && error.code === 'idempotency_key_in_flight') {
        return { ok: false, code: 'idempotency_key_in_flight' };
      }
      throw error;
    } finally {
      this.#keysInFlight.delete(inFlight);
    }
  }

  /**
   * Many transfers, each with its own idempotency key. Atomic: one call, all written or none. Otherwise
   * each stands alone and shares calls with concurrent requests.
   */
  async transferBatch(
    atomic: boolean,
    transfers: readonly { key: string; request: TransferRequest }[],
  ): Promise<TransferOutcome[]> {
    if (transfers.length > TRANSFER_BATCH_MAX) throw new RangeError('batch exceeds TRANSFER_BATCH_MAX');
    const checked = transfers.map(({ key, request }) => ({
      key,
      request,
      problem: this.checkTransfer(request),
    }));
    if (!atomic) {
      return Promise.all(
        checked.map(({ key, request, problem }) =>
          problem ? { ok: false as const, code: problem } : this.transfer(key, request),
        ),
      );
    }
    if (checked.some((t) => t.problem)) {
      return checked.map((t) => ({ ok: false, code: t.problem ?? 'batch_aborted' }));
    }
    const items: LedgerItem[] = checked.map(({ key, request }) => ({
      op: 'transfer',
      key,
      hash: transferHash(request),
      id: uuidv7(),
      request,
    }));
    const inFlight = items.map(keyInFlight);
    if (inFlight.some((k) => k !== undefined && this.#keysInFlight.has(k))) {
      return items.map((item) =>
        this.#keysInFlight.has(keyInFlight(item) ?? '')
          ? { ok: false, code: 'idempotency_key_in_flight' }
          : { ok: false, code: 'batch_aborted' },
      );
    }
    for (const k of inFlight) if (k !== undefined) this.#keysInFlight.add(k);
    try {
      return await executeItems(this.#db, items, true, this.#now());
    } finally {
      for (const k of inFlight) if (k !== undefined) this.#keysInFlight.delete(k);
    }
  }

  /** Expires pending transfers whose time has come; returns how many. Safe to run in several processes. */
  async expireDue(): Promise<number> {
    const now = this.#now();
    const ids = await findExpiredPending(this.#db, now, EXPIRIES_PER_SWEEP_MAX);
    if (ids.length === 0) return 0;
    const results = await executeItems(
      this.#db,
      ids.map((id): LedgerItem => ({ op: 'expire', id })),
      false,
      now,
    );
    return results.filter((r) => r.ok).length;
  }

  /** Recomputes balances from entries and pending transfers, and every currency's sums. */
  async verify(): Promise<VerifyReport> {
    const currencies = await currencyTotals(this.#db);
    const unbalancedCurrencies = currencies
      .filter((c) => c.debitsPosted !== c.creditsPosted || c.debitsPending !== c.creditsPending)
      .map((c) => c.currency);
    const discrepancies = await findAccountDiscrepancies(this.#db, VERIFY_REPORT_MAX);
    const unbalancedTransfers = await findUnbalancedTransfers(this.#db, VERIFY_REPORT_MAX);
    return {
      ok: unbalancedCurrencies.length === 0 && discrepancies.length === 0 && unbalancedTransfers.length === 0,
      currencies,
      unbalancedCurrencies,
      discrepancies,
      unbalancedTransfers,
    };
  }

  async #submit(item: LedgerItem): Promise<TransferOutcome> {
    const inFlight = keyInFlight(item);
    if (inFlight !== undefined) {
      if (this.#keysInFlight.has(inFlight)) return { ok: false, code: 'idempotency_key_in_flight' };
      this.#keysInFlight.add(inFlight);
    }
    try {
      return await this.#batcher.submit(item);
    } finally {
      if (inFlight !== undefined) this.#keysInFlight.delete(inFlight);
    }
  }
}

function keyInFlight(item: LedgerItem): string | undefined {
  return item.op === 'transfer' && item.key !== null ? `${TRANSFER_SCOPE}\u0000${item.key}` : undefined;
}

/** The request as the client meant it: the same transfer re-serialised hashes the same. */
function transferHash(request: TransferRequest): string {
  return requestHash({
    postings: request.postings.map((p) => [
      p.debitAccountId,
      p.creditAccountId,
      `${p.amount.minor}/${p.amount.scale}`,
    ]),
    pending: request.pending,
    expiresAt: request.expiresAt?.toISOString() ?? null,
    metadata: request.metadata,
  });
}

// An account as stored with its idempotency key: the response is replayed as it was first given.
type AccountJson = Omit<
  Account,
  'debitsPosted' | 'creditsPosted' | 'debitsPending' | 'creditsPending' | 'version' | 'createdAt'
> & {
  debitsPosted: string;
  creditsPosted: string;
  debitsPending: string;
  creditsPending: string;
  version: string;
  createdAt: string;
};

function accountToJson(account: Account): AccountJson {
  return {
    ...account,
    debitsPosted: account.debitsPosted.toString(),
    creditsPosted: account.creditsPosted.toString(),
    debitsPending: account.debitsPending.toString(),
    creditsPending: account.creditsPending.toString(),
    version: account.version.toString(),
    createdAt: account.createdAt.toISOString(),
  };
}

function accountFromJson(json: AccountJson): Account {
  return {
    ...json,
    debitsPosted: BigInt(json.debitsPosted) as Minor,
    creditsPosted: BigInt(json.creditsPosted) as Minor,
    debitsPending: BigInt(json.debitsPending) as Minor,
    creditsPending: BigInt(json.creditsPending) as Minor,
    version: BigInt(json.version),
    createdAt: new Date(json.createdAt),
  };
}

// A transfer as stored with an idempotency key, so the replay is the response first given.
type StoredTransfer = Omit<
  Transfer,
  'postings' | 'postedAmount' | 'expiresAt' | 'createdAt' | 'resolvedAt'
> & {
  postings: { debitAccountId: string; creditAccountId: string; amount: string; exponent: number }[];
  postedAmount: string | null;
  expiresAt: string | null;
  createdAt: string;
  resolvedAt: string | null;
};

function transferToJson(transfer: Transfer): StoredTransfer {
  return {
    ...transfer,
    postings: transfer.postings.map((p) => ({ ...p, amount: p.amount.toString() })),
    postedAmount: transfer.postedAmount?.toString() ?? null,
    expiresAt: transfer.expiresAt?.toISOString() ?? null,
    createdAt: transfer.createdAt.toISOString(),
    resolvedAt: transfer.resolvedAt?.toISOString() ?? null,
  };
}

function transferFromStored(json: StoredTransfer): Transfer {
  return {
    ...json,
    postings: json.postings.map((p) => ({ ...p, amount: BigInt(p.amount) as Minor })),
    postedAmount: json.postedAmount === null ? null : (BigInt(json.postedAmount) as Minor),
    expiresAt: json.expiresAt === null ? null : new Date(json.expiresAt),
    createdAt: new Date(json.createdAt),
    resolvedAt: json.resolvedAt === null ? null : new Date(json.resolvedAt),
  };
}
