-- Mandates (auto-debit): a customer authorises a merchant app, once, to charge an account while they are
-- away, within limits (UK Open Banking variable recurring payments). A mandate is a consent of type
-- `mandate` with the same id: the consent holds its status (awaiting authorisation, authorised, revoked,
-- expired, rejected), its customer and the account chosen; these tables hold the terms as typed columns,
-- the charges and the refunds. Money moves through payments (charges) and the ledger (refunds).
alter table consents drop constraint consents_type_check;
alter table consents add constraint consents_type_check
  check (type in ('account_information', 'payment_initiation', 'funds_confirmation', 'mandate'));

create table mandates (
  -- The consent's id.
  id uuid primary key,
  -- The merchant app: the only caller that reaches the mandate, its charges and refunds.
  client_id uuid not null,
  currency text not null,
  max_per_charge bigint not null check (max_per_charge > 0),
  -- Calendar periods in UTC (ISO weeks, Monday to Sunday); null where the mandate sets no limit.
  max_per_day bigint check (max_per_day > 0),
  max_per_week bigint check (max_per_week > 0),
  max_per_month bigint check (max_per_month > 0),
  -- The merchant's account at this bank: charges are paid into it, refunds are paid out of it.
  creditor_iban text not null,
  creditor_account_id uuid not null,
  created_at timestamptz not null,
  check (max_per_day is not null or max_per_week is not null or max_per_month is not null)
);
create index mandates_client on mandates (client_id, id);

create table mandate_charges (
  id uuid primary key,
  mandate_id uuid not null references mandates (id),
  client_id uuid not null,
  customer_id uuid not null,
  -- The payment that moves the money (payments/service.ts); recorded in the same transaction.
  payment_id uuid not null unique,
  debtor_account_id uuid not null,
  -- Idempotency: the merchant's key per mandate, with the hash of what it asked.
  idempotency_key text not null,
  request_hash text not null,
  currency text not null,
  amount bigint not null check (amount > 0),
  -- Refunds taken from this charge, pending or done: never more than the charge.
  refunded bigint not null default 0 check (refunded >= 0 and refunded <= amount),
  reference text,
  -- pending until its payment settles (succeeded) or is rejected (failed, with the payment's code). A
  -- pending or succeeded charge counts toward the limits; a failed one does not.
  status text not null check (status in ('pending', 'succeeded', 'failed')),
  failure_code text,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  unique (mandate_id, idempotency_key)
);
-- The period sums taken under the mandate's lock, and the charge lists (newest first).
create index mandate_charges_period on mandate_charges (mandate_id, created_at) where status <> 'failed';
create index mandate_charges_list on mandate_charges (mandate_id, id);
-- The recovery sweep's work list.
create index mandate_charges_pending on mandate_charges (created_at) where status = 'pending';

create table mandate_refunds (
  id uuid primary key,
  charge_id uuid not null references mandate_charges (id),
  mandate_id uuid not null,
  client_id uuid not null,
  customer_id uuid not null,
  idempotency_key text not null,
  request_hash text not null,
  amount bigint not null check (amount > 0),
  -- pending until the ledger moved it (succeeded) or refused it (failed: the amount is released).
  status text not null check (status in ('pending', 'succeeded', 'failed')),
  failure_code text,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  unique (charge_id, idempotency_key)
);
create index mandate_refunds_charge on mandate_refunds (charge_id, id);
create index mandate_refunds_pending on mandate_refunds (created_at) where status = 'pending';
