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
  -- [{ "debitAccountId", "creditAccountId", "amount": "<minor units>", "exponent" }]
  postings jsonb not null,
  -- Set when a pending transfer was posted for less than its amount (single-posting transfers only).
  posted_amount bigint check (posted_amount > 0),
  expires_at timestamptz,
  metadata jsonb not null default '{}',
  created_at timestamptz not null,
  resolved_at timestamptz
);

-- The sweeper's work list: only pending transfers that can expire.
create index ledger_transfers_expiring on ledger_transfers (expires_at) where status = 'pending' and expires_at is not null;

create table ledger_entries (
  account_id uuid not null references ledger_accounts (id),
  seq bigint not null,
  transfer_id uuid not null references ledger_transfers (id),
  side text not null check (side in ('debit', 'credit')),
  amount bigint not null check (amount > 0),
  -- The account's posted balance on its normal side after this entry.
  balance bigint not null,
  created_at timestamptz not null,
  primary key (account_id, seq)
);

-- Idempotency for every POST that creates something: the request's hash and the response it produced.
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
