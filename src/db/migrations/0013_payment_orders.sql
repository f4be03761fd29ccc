-- Payments in the future: a scheduled payment (once, on a date) or a standing order (every day, week,
-- month or year from a first date, until a last date or a count). The scheduler turns each due occurrence
-- into a run, and each run into one payment, keyed by the order and the date, so however many server
-- processes run the scheduler, an occurrence is paid once.
create table payment_orders (
  id uuid primary key,
  kind text not null check (kind in ('scheduled', 'standing')),
  client_id uuid,
  customer_id uuid not null,
  consent_id uuid,
  idempotency_scope text not null,
  idempotency_key text not null,
  request_hash text not null,
  debtor_account_id uuid not null,
  creditor_name_enc text not null,
  creditor_iban text not null,
  currency text not null,
  amount bigint not null check (amount > 0),
  reference text,
  frequency text check (frequency in ('daily', 'weekly', 'monthly', 'yearly')),
  first_date date not null,
  last_date date,
  run_count_max int check (run_count_max > 0),
  -- The next occurrence not yet turned into a run; null once the order is complete.
  next_run_on date,
  runs_created int not null default 0,
  status text not null check (status in ('active', 'completed', 'cancelled')),
  created_at timestamptz not null,
  updated_at timestamptz not null,
  unique (idempotency_scope, idempotency_key),
  check ((kind = 'scheduled') = (frequency is null))
);
create index payment_orders_customer on payment_orders (customer_id, id);
create index payment_orders_due on payment_orders (next_run_on) where status = 'active';

create table payment_order_runs (
  order_id uuid not null references payment_orders (id),
  run_on date not null,
  status text not null check (status in ('pending', 'paid', 'failed')),
  payment_id uuid,
  outcome text,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  primary key (order_id, run_on)
);
create index payment_order_runs_pending on payment_order_runs (created_at) where status = 'pending';
