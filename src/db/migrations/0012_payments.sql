-- Payments: money leaving a customer's account, to another account of this bank (internal, settled at once)
-- or to another bank (domestic: taken into clearing at once, settled with the scheme in cycles, possibly
-- returned). The money itself is the ledger's; this is the payment's record and lifecycle.
create table payments (
  id uuid primary key,
  -- The app that initiated it under a consent; null when the customer paid at the bank's pages.
  client_id uuid,
  customer_id uuid not null,
  consent_id uuid,
  -- Idempotency: the caller's key, unique per caller, with the hash of what it asked.
  idempotency_scope text not null,
  idempotency_key text not null,
  request_hash text not null,
  debtor_account_id uuid not null,
  type text not null check (type in ('internal', 'domestic')),
  -- The payee's name may be a person's: sealed like all personal data.
  creditor_name_enc text not null,
  creditor_iban text not null,
  creditor_account_id uuid,
  currency text not null,
  amount bigint not null check (amount > 0),
  reference text,
  -- settling and returning are claims: the one worker that moved a payment there moves its money next.
  -- awaiting_sca: held by the fraud rules until the customer confirms it with a one-time code.
  status text not null check (status in
    ('received', 'awaiting_sca', 'accepted', 'settling', 'settled', 'returning', 'rejected', 'returned')),
  rejection_code text,
  -- Every status the payment went through, with its time: [{ status, at, code? }].
  status_history jsonb not null,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  unique (idempotency_scope, idempotency_key)
);
create index payments_customer on payments (customer_id, id);
-- The settlement cycle's work list, and the recovery sweep's.
create index payments_to_settle on payments (created_at) where status = 'accepted' and type = 'domestic';
create index payments_received on payments (created_at) where status = 'received';
