-- Sessions at the bank's own pages (where customers review and revoke consents). Only a hash of the
-- cookie value is kept.
create table customer_sessions (
  token_hash bytea primary key,
  customer_id uuid not null,
  created_at timestamptz not null,
  expires_at timestamptz not null
);
create index customer_sessions_customer on customer_sessions (customer_id);
