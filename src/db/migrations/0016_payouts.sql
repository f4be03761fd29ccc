-- Batch payouts (payroll): a business uploads a file of credit transfers, a second person of the same
-- business approves it (maker-checker), and the bank debits the payer once for the total and credits each
-- payee. Money moves only through the ledger; these tables hold the batch, its lines and their progress.

-- Business customers and the several people who act for them. A personal customer keeps one login whose id
-- is the customer's id. A business's first login is the same; every further user has a login of their own
-- (their own password and second factor) that names the customer it acts for.
alter table customers add column kind text not null default 'personal' check (kind in ('personal', 'business'));
alter table customer_logins add column customer_id uuid;
create index customer_logins_customer on customer_logins (customer_id) where customer_id is not null;
-- Which user a session belongs to (null for sessions started before users existed: the customer's login).
alter table customer_sessions add column login_id uuid;

create table payout_batches (
  id uuid primary key,
  customer_id uuid not null,
  debtor_account_id uuid not null,
  currency text not null,
  format text not null check (format in ('csv', 'pain.001.001.09')),
  -- SHA-256 of the uploaded bytes: the same file from the same account again is recognised (index below).
  content_sha256 text not null,
  -- The uploader's Idempotency-Key; null for a refused (invalid) upload, which holds no key.
  idempotency_key text,
  -- pain.001 GrpHdr/MsgId; null for CSV.
  message_id text,
  -- invalid: lines failed validation (nothing can move); awaiting_approval -> approved -> executing ->
  -- completed; failed: the payer's debit was refused (nothing moved); cancelled before execution.
  status text not null check (status in
    ('invalid', 'awaiting_approval', 'approved', 'executing', 'completed', 'failed', 'cancelled')),
  failure_code text,
  item_count int not null check (item_count >= 0),
  total_amount bigint not null check (total_amount >= 0),
  -- Each line's errors: [{ line, field, code, message }]; empty for a valid batch.
  validation_errors jsonb not null,
  -- Logins (people), not customers: the uploader, the approver and who cancelled.
  uploaded_by uuid not null,
  approved_by uuid,
  cancelled_by uuid,
  -- Execution. The payer's debit is decided (funding_amount) before it is made, so a restarted run asks the
  -- ledger for exactly the same transfer; what was debited and not credited goes back (refunded_amount).
  funding_amount bigint,
  funded_at timestamptz,
  refunded_amount bigint,
  -- The executing process's claim; another takes the batch over once it lapses (the process died).
  lease_until timestamptz,
  -- Money for payees at other banks, in clearing until the settlement cycle moves it (then 0).
  unsettled_amount bigint not null default 0,
  settling_since timestamptz,
  created_at timestamptz not null,
  approved_at timestamptz,
  started_at timestamptz,
  completed_at timestamptz,
  settled_at timestamptz,
  updated_at timestamptz not null,
  unique (customer_id, idempotency_key),
  -- Maker-checker, held by the schema as well as the service.
  check (approved_by is null or approved_by <> uploaded_by)
);
create index payout_batches_customer on payout_batches (customer_id, id);
-- The same file twice: one live batch per customer, account and content. Refused, failed and cancelled
-- batches moved nothing and do not count, so a corrected or retried file can be sent again.
create unique index payout_batches_same_file on payout_batches (customer_id, debtor_account_id, content_sha256)
  where status not in ('invalid', 'failed', 'cancelled');
-- The executor's and the settlement cycle's work lists.
create index payout_batches_due on payout_batches (approved_at) where status in ('approved', 'executing');
create index payout_batches_unsettled on payout_batches (completed_at) where unsettled_amount > 0;

create table payout_items (
  id uuid primary key,
  batch_id uuid not null references payout_batches (id),
  customer_id uuid not null,
  -- The transfer's position in the file, from 1.
  line int not null check (line > 0),
  -- The payee's name may be a person's: sealed like all personal data.
  creditor_name_enc text not null,
  creditor_iban text not null,
  -- The payee's account when it is at this bank (credited directly); null: another bank, through clearing.
  creditor_account_id uuid,
  amount bigint not null check (amount > 0),
  reference text,
  end_to_end_id text,
  -- pending -> credited (at this bank) | accepted (in clearing) -> settled | failed (with a code)
  status text not null check (status in ('pending', 'credited', 'accepted', 'settled', 'failed')),
  failure_code text,
  updated_at timestamptz not null,
  unique (batch_id, line)
);
create index payout_items_pending on payout_items (batch_id, line) where status = 'pending';
