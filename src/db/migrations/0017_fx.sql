-- FX: quotes (a rate locked for a short time, with the bank's spread and fee), customers' conversions between
-- their own accounts, and the pacs.008 messages of cross-border payments. The money is the ledger's: it moves
-- through the bank's FX position accounts (`bank:fx-position-<cur>`), fee income (`bank:fx-income-<cur>`)
-- and nostro accounts (`bank:nostro-<cur>`), created on first use like the other bank accounts.

-- A quote belongs to whoever asked: an app (client_id; customer_id too when its token acted for a customer),
-- or a customer at the bank's pages (customer_id alone). Used once, by a payment or a conversion.
create table fx_quotes (
  id uuid primary key,
  client_id uuid,
  customer_id uuid,
  sell_currency text not null,
  buy_currency text not null,
  -- Minor units of each currency; the fee is in the sold currency, on top of the sold amount.
  sell_amount bigint not null check (sell_amount > 0),
  buy_amount bigint not null check (buy_amount > 0),
  fee_amount bigint not null check (fee_amount >= 0),
  -- Which amount the asker fixed; the other was computed from the rate and rounded in the bank's favour.
  fixed_side text not null check (fixed_side in ('sell', 'buy')),
  -- Decimal strings, exact: the mid rate and the customer's rate (mid less the spread, truncated).
  mid_rate text not null,
  rate text not null,
  spread_bps int not null check (spread_bps >= 0 and spread_bps < 10000),
  fee_bps int not null check (fee_bps >= 0 and fee_bps < 10000),
  rate_source text not null,
  rates_as_of timestamptz not null,
  status text not null check (status in ('open', 'used')),
  -- `payment:<id>` or `conversion:<id>`: what used it.
  used_by text,
  expires_at timestamptz not null,
  created_at timestamptz not null,
  used_at timestamptz,
  check (client_id is not null or customer_id is not null),
  check (sell_currency <> buy_currency),
  check ((status = 'used') = (used_by is not null))
);
-- Pruning expired quotes nobody used.
create index fx_quotes_open on fx_quotes (expires_at) where status = 'open';

-- A customer's conversion between two of their own accounts, at a quote. Recorded first (`received`), then
-- its money moves under a ledger key derived from its id, so a retry or the recovery sweep moves it once.
create table fx_conversions (
  id uuid primary key,
  customer_id uuid not null,
  idempotency_scope text not null,
  idempotency_key text not null,
  request_hash text not null,
  from_account_id uuid not null,
  to_account_id uuid not null,
  quote_id uuid not null unique references fx_quotes (id),
  status text not null check (status in ('received', 'completed', 'rejected')),
  rejection_code text,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  unique (idempotency_scope, idempotency_key)
);
create index fx_conversions_received on fx_conversions (created_at) where status = 'received';

-- The pacs.008 of an outbound cross-border payment (id = the payment's id), as sent. It names the debtor and
-- the creditor, so it is sealed like all personal data.
create table fx_payment_messages (
  id uuid primary key,
  message_id text not null unique,
  uetr uuid not null unique,
  xml_enc text not null,
  created_at timestamptz not null
);

-- Payments at a quote: to an account of this bank in another currency (internal, settled at once), or to
-- another bank abroad (cross_border: out through clearing, then settled through the nostro account).
alter table payments add column quote_id uuid unique;
alter table payments drop constraint payments_type_check;
alter table payments add constraint payments_type_check
  check (type in ('internal', 'domestic', 'cross_border'));
drop index payments_to_settle;
create index payments_to_settle on payments (created_at)
  where status = 'accepted' and type in ('domestic', 'cross_border');
