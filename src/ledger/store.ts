import { arrayLiteral, type Sql, UUID_MIN } from '../db/db.ts';
import type { Minor, ParsedAmount } from '../money.ts';
import type {
  Account,
  EntryDetail,
  EntryFilter,
  LedgerErrorCode,
  LedgerResult,
  NewAccountRequest,
  NormalBalance,
  Transfer,
  TransferRequest,
  TransferStatus,
} from './model.ts';

/** One operation for `ledger_execute`. */
export type LedgerItem =
  | {
      readonly op: 'transfer';
      readonly id: string;
      /** Null only for the ledger's own transfers that need no idempotency. */
      readonly key: string | null;
      readonly hash: string | null;
      readonly request: TransferRequest;
    }
  | { readonly op: 'post' | 'void' | 'expire'; readonly id: string; readonly amount?: ParsedAmount };

interface AccountRow {
  id: string;
  currency: string;
  exponent: number;
  normal_balance: NormalBalance;
  allow_overdraft: boolean;
  code: string | null;
  metadata: Record<string, unknown>;
  debits_posted: bigint;
  credits_posted: bigint;
  debits_pending: bigint;
  credits_pending: bigint;
  version: bigint;
  created_at: Date;
}

const accountFromRow = (row: AccountRow): Account => ({
  id: row.id,
  currency: row.currency,
  exponent: row.exponent,
  normalBalance: row.normal_balance,
  allowOverdraft: row.allow_overdraft,
  code: row.code,
  metadata: row.metadata,
  debitsPosted: row.debits_posted as Minor,
  creditsPosted: row.credits_posted as Minor,
  debitsPending: row.debits_pending as Minor,
  creditsPending: row.credits_pending as Minor,
  version: row.version,
  createdAt: row.created_at,
});

export type NewAccount = NewAccountRequest & { readonly id: string; readonly createdAt: Date };

export async function insertAccount(sql: Sql, account: NewAccount): Promise<Account> {
  const [row] = await sql.query<AccountRow>(
    `insert into ledger_accounts (id, currency, exponent, normal_balance, allow_overdraft, code, metadata, created_at)
     values ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8) returning *`,
    [
      account.id,
      account.currency,
      account.exponent,
      account.normalBalance,
      account.allowOverdraft,
      account.code,
      JSON.stringify(account.metadata),
      account.createdAt,
    ],
  );
  if (!row) throw new Error('insert into ledger_accounts returned no row');
  return accountFromRow(row);
}

export async function findAccount(sql: Sql, id: string): Promise<Account | undefined> {
  const [row] = await sql.query<AccountRow>('select * from ledger_accounts where id = $1', [id]);
  return row && accountFromRow(row);
}

/** Accounts in creation order (ids are UUIDv7), after `afterId` when given, optionally with one code. */
export async function listAccounts(
  sql: Sql,
  filter: { code?: string | undefined },
  afterId: string | undefined,
  limit: number,
): Promise<Account[]> {
  // One statement for each case, the cursor an index condition even when absent: by code through
  // (code, id) (migration 0032), else through the key.
  const rows =
    filter.code === undefined
      ? await sql.query<AccountRow>(
          `select * from ledger_accounts where id > coalesce($1::uuid, '${UUID_MIN}') order by id limit $2`,
          [afterId ?? null, limit],
        )
      : await sql.query<AccountRow>(
          `select * from ledger_accounts where code = $1 and id > coalesce($2::uuid, '${UUID_MIN}')
            order by id limit $3`,
          [filter.code, afterId ?? null, limit],
        );
  return rows.map(accountFromRow);
}

/** Entries with their transfers' metadata, newest first, strictly older than `beforeSeq`, filtered. */
export async function listEntryDetails(
  sql: Sql,
  accountId: string,
  filter: EntryFilter,
  beforeSeq: bigint | undefined,
  limit: number,
): Promise<EntryDetail[]> {
  // The account's entries are read through the primary key (account_id, seq), newest first from the cursor,
  // the filters on top. The cursor is an index condition even when absent (the greatest seq): as
  // `($2 is null or e.seq < $2)`, the plan a prepared statement keeps read the account's every entry, and
  // its transfer, to sort them for each page.
  const rows = await sql.query<{
    seq: bigint;
    transfer_id: string;
    side: NormalBalance;
    amount: bigint;
    balance: bigint;
    created_at: Date;
    metadata: Record<string, unknown>;
    counterparts: string[];
  }>(
    `select e.seq, e.transfer_id, e.side, e.amount, e.balance, e.created_at, t.metadata,
            array(select case when e.side = 'debit' then c else d end
                    from unnest(t.debit_account_ids, t.credit_account_ids) as p(d, c)
                   where (e.side = 'debit' and d = e.account_id) or (e.side = 'credit' and c = e.account_id)) as counterparts
       from ledger_entries e join ledger_transfers t on t.id = e.transfer_id
      where e.account_id = $1 and e.seq < coalesce($2::bigint, 9223372036854775807)
        and ($3::timestamptz is null or e.created_at >= $3) and ($4::timestamptz is null or e.created_at < $4)
        and ($5::bigint is null or e.amount >= $5) and ($6::bigint is null or e.amount <= $6)
        and ($7::text is null or e.side = $7)
      order by e.seq desc limit $8`,
    [
      accountId,
      beforeSeq ?? null,
      filter.from ?? null,
      filter.to ?? null,
      filter.minAmount ?? null,
      filter.maxAmount ?? null,
      filter.side ?? null,
      limit,
    ],
  );
  return rows.map((row) => ({
    seq: row.seq,
    transferId: row.transfer_id,
    side: row.side,
    amount: row.amount as Minor,
    balance: row.balance,
    createdAt: row.created_at,
    transferMetadata: row.metadata,
    counterpartAccountIds: row.counterparts,
  }));
}

/** The account's posted balance just before `at` (0 before its first entry). */
export async function balanceBefore(sql: Sql, accountId: string, at: Date): Promise<bigint> {
  const [row] = await sql.query<{ balance: bigint }>(
    'select balance from ledger_entries where account_id = $1 and created_at < $2 order by seq desc limit 1',
    [accountId, at],
  );
  return row?.balance ?? 0n;
}

// A transfer row as JSON (ledger_execute returns this shape; amounts are strings: JSON has no int64).
const TRANSFER_JSON = `jsonb_build_object('id', id, 'status', status, 'debitAccountIds', debit_account_ids,
  'creditAccountIds', credit_account_ids, 'amounts', amounts::text[], 'exponents', exponents,
  'postedAmount', posted_amount::text, 'expiresAt', expires_at, 'metadata', metadata, 'createdAt', created_at,
  'resolvedAt', resolved_at)`;

interface TransferJson {
  id: string;
  status: TransferStatus;
  debitAccountIds: string[];
  creditAccountIds: string[];
  amounts: string[];
  exponents: number[];
  postedAmount: string | null;
  expiresAt: string | null;
  metadata: Record<string, unknown>;
  createdAt: string;
  resolvedAt: string | null;
}

function transferFromJson(json: TransferJson): Transfer {
  return {
    id: json.id,
    status: json.status,
    postings: json.amounts.map((amount, i) => ({
      debitAccountId: json.debitAccountIds[i] as string,
      creditAccountId: json.creditAccountIds[i] as string,
      amount: BigInt(amount) as Minor,
      exponent: json.exponents[i] as number,
    })),
    postedAmount: json.postedAmount ? (BigInt(json.postedAmount) as Minor) : null,
    expiresAt: json.expiresAt ? new Date(json.expiresAt) : null,
    metadata: json.metadata,
    createdAt: new Date(json.createdAt),
    resolvedAt: json.resolvedAt ? new Date(json.resolvedAt) : null,
  };
}

/** A transfer as its creation left it: built from the request, which the ledger accepted unchanged. */
function createdTransfer(id: string, request: TransferRequest, createdAt: Date): Transfer {
  return {
    id,
    status: request.pending ? 'pending' : 'posted',
    postings: request.postings.map((p) => ({
      debitAccountId: p.debitAccountId,
      creditAccountId: p.creditAccountId,
      amount: p.amount.minor,
      // Accepted postings have exactly their currency's exponent as scale.
      exponent: p.amount.scale,
    })),
    postedAmount: null,
    expiresAt: request.expiresAt,
    metadata: request.metadata,
    createdAt,
    resolvedAt: request.pending ? null : createdAt,
  };
}

const OP_CODES = { transfer: 1, post: 2, void: 3, expire: 4 } as const;

interface ResultRow {
  code: string | null;
  posting: number | null;
  transfer_id: string;
  created_at: Date;
  transfer: TransferJson | null;
}

/** Runs a batch through `ledger_execute`: one statement, one round trip, one commit. */
export async function executeItems(
  sql: Sql,
  items: readonly LedgerItem[],
  atomic: boolean,
  now: Date,
): Promise<LedgerResult[]> {
  const postings = items.flatMap((item) => (item.op === 'transfer' ? item.request.postings : []));
  const transfer = (item: LedgerItem) => (item.op === 'transfer' ? item : undefined);
  const rows = await sql.query<ResultRow>(
    `select * from ledger_execute($1::text::smallint[], $2::text::uuid[], $3::text::text[], $4::text::text[],
       $5::text::boolean[], $6::text::timestamptz[], $7::text::jsonb, $8::text::bigint[], $9::text::smallint[],
       $10::text::int[], $11::text::uuid[], $12::text::uuid[], $13::text::bigint[], $14::text::smallint[], $15, $16)`,
    [
      arrayLiteral(items.map((item) => OP_CODES[item.op])),
      arrayLiteral(items.map((item) => item.id)),
      arrayLiteral(items.map((item) => transfer(item)?.key ?? null)),
      arrayLiteral(items.map((item) => transfer(item)?.hash ?? null)),
      arrayLiteral(items.map((item) => transfer(item)?.request.pending ?? false)),
      arrayLiteral(items.map((item) => transfer(item)?.request.expiresAt?.toISOString() ?? null)),
      JSON.stringify(items.map((item) => transfer(item)?.request.metadata ?? {})),
      arrayLiteral(items.map((item) => (item.op === 'post' && item.amount ? item.amount.minor : null))),
      arrayLiteral(items.map((item) => (item.op === 'post' && item.amount ? item.amount.scale : null))),
      arrayLiteral(items.map((item) => transfer(item)?.request.postings.length ?? 0)),
      arrayLiteral(postings.map((p) => p.debitAccountId)),
      arrayLiteral(postings.map((p) => p.creditAccountId)),
      arrayLiteral(postings.map((p) => p.amount.minor)),
      arrayLiteral(postings.map((p) => p.amount.scale)),
      atomic,
      now,
    ],
  );
  if (rows.length !== items.length)
    throw new Error(`ledger_execute returned ${rows.length} rows for ${items.length} items`);
  return rows.map((row, i): LedgerResult => {
    const item = items[i] as LedgerItem;
    if (row.code === null) {
      if (item.op === 'transfer')
        return { ok: true, replayed: false, transfer: createdTransfer(item.id, item.request, now) };
      if (!row.transfer) throw new Error('ledger_execute returned no transfer for a post, void or expiry');
      return { ok: true, replayed: false, transfer: transferFromJson(row.transfer) };
    }
    if (row.code === 'replayed' && item.op === 'transfer') {
      return {
        ok: true,
        replayed: true,
        transfer: createdTransfer(row.transfer_id, item.request, row.created_at),
      };
    }
    const code = row.code as LedgerErrorCode;
    return row.posting === null ? { ok: false, code } : { ok: false, code, posting: row.posting };
  });
}

export async function findTransfer(sql: Sql, id: string): Promise<Transfer | undefined> {
  const [row] = await sql.query<{ transfer: TransferJson }>(
    `select ${TRANSFER_JSON} as transfer from ledger_transfers where id = $1`,
    [id],
  );
  return row && transferFromJson(row.transfer);
}

/** Pending transfers past their expiry, oldest first. */
export async function findExpiredPending(sql: Sql, now: Date, limit: number): Promise<string[]> {
  const rows = await sql.query<{ id: string }>(
    `select id from ledger_transfers where status = 'pending' and expires_at <= $1 order by expires_at limit $2`,
    [now, limit],
  );
  return rows.map((row) => row.id);
}

export interface AccountDiscrepancy {
  readonly accountId: string;
  readonly field: string;
  readonly stored: bigint;
  readonly recomputed: bigint;
}

/**
 * Every account whose stored sums differ from its entries (posted) or from its pending transfers
 * (pending), or whose latest entry's running balance disagrees with the stored balance.
 */
export async function findAccountDiscrepancies(sql: Sql, limit: number): Promise<AccountDiscrepancy[]> {
  const rows = await sql.query<{ account_id: string; field: string; stored: bigint; recomputed: bigint }>(
    `with posted as (
       select account_id,
              coalesce(sum(amount) filter (where side = 'debit'), 0)::bigint as debits,
              coalesce(sum(amount) filter (where side = 'credit'), 0)::bigint as credits
         from ledger_entries group by account_id),
     pending as (
       select p.debit as account_id, p.amount as debit, 0::bigint as credit
         from ledger_transfers t, unnest(t.debit_account_ids, t.amounts) as p(debit, amount) where t.status = 'pending'
       union all
       select p.credit, 0, p.amount
         from ledger_transfers t, unnest(t.credit_account_ids, t.amounts) as p(credit, amount) where t.status = 'pending'),
     pending_sums as (
       select account_id, sum(debit)::bigint as debits, sum(credit)::bigint as credits from pending group by account_id),
     last_entry as (
       select distinct on (account_id) account_id, balance from ledger_entries order by account_id, seq desc),
     checks as (
       select a.id, 'debitsPosted' as field, a.debits_posted as stored, coalesce(p.debits, 0) as recomputed
         from ledger_accounts a left join posted p on p.account_id = a.id
       union all
       select a.id, 'creditsPosted', a.credits_posted, coalesce(p.credits, 0)
         from ledger_accounts a left join posted p on p.account_id = a.id
       union all
       select a.id, 'debitsPending', a.debits_pending, coalesce(s.debits, 0)
         from ledger_accounts a left join pending_sums s on s.account_id = a.id
       union all
       select a.id, 'creditsPending', a.credits_pending, coalesce(s.credits, 0)
         from ledger_accounts a left join pending_sums s on s.account_id = a.id
       union all
       select a.id, 'lastEntryBalance',
              case a.normal_balance when 'credit' then a.credits_posted - a.debits_posted
                                    else a.debits_posted - a.credits_posted end,
              e.balance
         from ledger_accounts a join last_entry e on e.account_id = a.id)
     select id as account_id, field, stored, recomputed from checks where stored <> recomputed
      order by id, field limit $1`,
    [limit],
  );
  return rows.map((row) => ({
    accountId: row.account_id,
    field: row.field,
    stored: row.stored,
    recomputed: row.recomputed,
  }));
}

export interface CurrencyTotals {
  readonly currency: string;
  readonly accounts: number;
  readonly debitsPosted: bigint;
  readonly creditsPosted: bigint;
  readonly debitsPending: bigint;
  readonly creditsPending: bigint;
}

/** Per currency, the sums of every account's balances: double entry means debits equal credits. */
export async function currencyTotals(sql: Sql): Promise<CurrencyTotals[]> {
  // numeric, not bigint: the sum over many accounts can exceed int8; it arrives as an exact string.
  const rows = await sql.query<{
    currency: string;
    accounts: bigint;
    dp: string;
    cp: string;
    dpe: string;
    cpe: string;
  }>(
    `select currency, count(*)::bigint as accounts, sum(debits_posted)::numeric as dp, sum(credits_posted)::numeric as cp,
            sum(debits_pending)::numeric as dpe, sum(credits_pending)::numeric as cpe
       from ledger_accounts group by currency order by currency`,
  );
  return rows.map((row) => ({
    currency: row.currency,
    accounts: Number(row.accounts),
    debitsPosted: BigInt(row.dp),
    creditsPosted: BigInt(row.cp),
    debitsPending: BigInt(row.dpe),
    creditsPending: BigInt(row.cpe),
  }));
}

/** Entries whose account and transfer disagree on money: each transfer's entries must balance. */
export async function findUnbalancedTransfers(sql: Sql, limit: number): Promise<string[]> {
  const rows = await sql.query<{ transfer_id: string }>(
    `select transfer_id from ledger_entries group by transfer_id
     having sum(case side when 'debit' then amount else -amount end) <> 0 limit $1`,
    [limit],
  );
  return rows.map((row) => row.transfer_id);
}
