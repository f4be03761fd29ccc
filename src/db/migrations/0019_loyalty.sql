-- Loyalty points (src/loyalty/). The points themselves are the ledger's: a currency of the bank's own (PTS,
-- whole points), one credit-normal ledger account per bank account (`loyalty_wallets`), issued from and
-- retired to `bank:points-issued-pts`. These tables hold the rules operators change without a restart, and
-- each debit's split into points and money with its refunds, so a retried transfer is the same transfer.

-- Points earned per amount spent, per currency and merchant category (ISO 18245). `default` covers purchases
-- whose category has no rule of its own; a payment without a category (a transfer, not a purchase) earns
-- nothing. Earned = floor(money spent x points / per_minor).
create table loyalty_earn_rules (
  currency text not null check (currency ~ '^[A-Z]{3}$'),
  merchant_category text not null check (merchant_category ~ '^([0-9]{4}|default)$'),
  points bigint not null check (points between 1 and 1000000),
  per_minor bigint not null check (per_minor > 0),
  version int not null default 1 check (version > 0),
  updated_by text not null,
  updated_at timestamptz not null,
  primary key (currency, merchant_category)
);

-- What points are worth when spent: `points` points pay `amount_minor` of the currency. Each minor unit is a
-- whole number of points, so a refund splits back into whole points and whole minor units exactly.
create table loyalty_redemption_rates (
  currency text primary key check (currency ~ '^[A-Z]{3}$'),
  points bigint not null check (points > 0),
  amount_minor bigint not null check (amount_minor > 0),
  version int not null default 1 check (version > 0),
  updated_by text not null,
  updated_at timestamptz not null,
  check (points % amount_minor = 0)
);

-- A bank account's points account in the ledger, made on first use.
create table loyalty_wallets (
  account_id uuid primary key,
  customer_id uuid not null,
  ledger_account_id uuid not null unique,
  created_at timestamptz not null
);

-- One debit (a payment, or a mandate's charge) split into points and money, with the points it earns, as
-- decided when it was recorded. `planned` until its one ledger transfer is known to have posted (`applied`)
-- or been refused (`voided`). The refunded_* sums cover refunds planned or applied (voided ones are taken
-- back out), so concurrent partial refunds never hand back more than was paid.
create table loyalty_debits (
  id uuid primary key,
  account_id uuid not null,
  customer_id uuid not null,
  currency text not null,
  amount bigint not null check (amount > 0),
  points bigint not null check (points >= 0),
  points_value bigint not null check (points_value >= 0 and points_value <= amount),
  -- The redemption rate's points per minor unit when points were spent (points = points_value x this).
  points_per_minor bigint check (points_per_minor > 0),
  points_earned bigint not null check (points_earned >= 0),
  merchant_category text check (merchant_category ~ '^[0-9]{4}$'),
  status text not null check (status in ('planned', 'applied', 'voided')),
  refunded_amount bigint not null default 0,
  refunded_value bigint not null default 0,
  earned_reversed bigint not null default 0,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  check (points = 0 or points_per_minor is not null),
  check (refunded_amount between 0 and amount and refunded_value between 0 and points_value
         and earned_reversed between 0 and points_earned)
);

-- A refund of part or all of a debit: money back to the account, points back to its points account, and the
-- points the refunded part had earned taken back (`clawback`; what the points account no longer holds is
-- `waived`, the bank's loss). A voided refund may be planned again under the same id.
create table loyalty_refunds (
  id uuid primary key,
  debit_id uuid not null,
  -- The debit's account: what the refund's rows would be distributed by, with the debit's.
  account_id uuid not null,
  amount bigint not null check (amount > 0),
  money bigint not null check (money >= 0),
  points_value bigint not null check (points_value >= 0),
  points bigint not null check (points >= 0),
  clawback bigint not null check (clawback >= 0),
  waived bigint not null check (waived >= 0),
  status text not null check (status in ('planned', 'applied', 'voided')),
  created_at timestamptz not null,
  updated_at timestamptz not null,
  check (money + points_value = amount)
);
create index loyalty_refunds_debit on loyalty_refunds (debit_id);
