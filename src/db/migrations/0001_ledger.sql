-- The double-entry ledger. Balances live on the account row as four running sums (TigerBeetle's
-- debits/credits x posted/pending), so a balance check reads one locked row; entries are append-only
-- and record each account's resulting posted balance, so `apibank ledger verify` can recompute them.

create table ledger_accounts (
  id uuid primary key,
  currency text not null check (currency ~ '^[A-Z]{3}$'),
  -- ISO 4217 minor-unit exponent, fixed at creation so amounts are never reinterpreted.
  exponent smallint not null check (exponent between 0 and 4),
  normal_balance text not null check (normal_balance in ('debit', 'credit')),
  allow_overdraft boolean not null,
  code text,
  metadata jsonb not null default '{}',
  debits_posted bigint not null default 0 check (debits_posted >= 0),
  credits_posted bigint not null default 0 check (credits_posted >= 0),
  debits_pending bigint not null default 0 check (debits_pending >= 0),
  credits_pending bigint not null default 0 check (credits_pending >= 0),
  -- Incremented on every balance change; an entry's seq is the version it produced.
  version bigint not null default 0,
  created_at timestamptz not null,
  -- The overdraft rule as the database's last word: a credit-normal account without overdraft never
  -- has more debits (posted or reserved) than posted credits, and symmetrically for debit-normal.
  constraint ledger_accounts_no_overdraft check (
    allow_overdraft
    or (normal_balance = 'credit' and debits_posted + debits_pending <= credits_posted)
    or (normal_balance = 'debit' and credits_posted + credits_pending <= debits_posted)
  )
);

create table ledger_transfers (
  id uuid primary key,
  status text not null check (status in ('posted', 'pending', 'voided', 'expired')),
  -- The transfer's own idempotency key, unique for as long as the transfer exists: a replay finds the
  -- transfer itself, and a key costs no row of its own on the hottest write path.
  idempotency_key text,
  request_hash text,
  -- Postings as parallel arrays (position i is posting i): fixed-width values, cheap to write and read.
  debit_account_ids uuid[] not null,
  credit_account_ids uuid[] not null,
  amounts bigint[] not null,
  -- Each posting's ISO 4217 exponent, so a transfer formats its amounts without reading its accounts.
  exponents smallint[] not null,
  -- Set when a pending transfer was posted for less than its amount (single-posting transfers only).
  posted_amount bigint check (posted_amount > 0),
  expires_at timestamptz,
  metadata jsonb not null default '{}',
  created_at timestamptz not null,
  resolved_at timestamptz,
  check (cardinality(debit_account_ids) between 1 and 64
         and cardinality(credit_account_ids) = cardinality(debit_account_ids)
         and cardinality(amounts) = cardinality(debit_account_ids)
         and cardinality(exponents) = cardinality(debit_account_ids))
);

create unique index ledger_transfers_idempotency_key on ledger_transfers (idempotency_key) where idempotency_key is not null;
-- The sweeper's work list: only pending transfers that can expire.
create index ledger_transfers_expiring on ledger_transfers (expires_at) where status = 'pending' and expires_at is not null;

-- No foreign keys: ledger_execute is the only writer and checks both ends, and a per-row foreign-key
-- check would cost more than the insert itself; `apibank ledger verify` checks the result.
create table ledger_entries (
  account_id uuid not null,
  seq bigint not null,
  transfer_id uuid not null,
  side text not null check (side in ('debit', 'credit')),
  amount bigint not null check (amount > 0),
  -- The account's posted balance on its normal side after this entry.
  balance bigint not null,
  created_at timestamptz not null,
  primary key (account_id, seq)
);

-- Idempotency for every other POST that creates something: the request's hash and the response it produced.
create table idempotency_keys (
  scope text not null,
  key text not null,
  request_hash text not null,
  status_code smallint not null,
  response jsonb not null,
  created_at timestamptz not null,
  primary key (scope, key)
);
create index idempotency_keys_created_at on idempotency_keys (created_at);
