-- Customers, their accounts, and how they got them: account opening with KYC.
--
-- Personal data is encrypted field by field (AES-256-GCM; `*_enc` columns hold `v1.<key id>.<iv|ct|tag>`,
-- bound to their table, column and row) and found through keyed blind indexes (`*_index`, HMAC-SHA-256),
-- so a copy of the database reveals no name, national id or phone number.

-- Data keys, each wrapped (encrypted) by a master key the database never sees. `apibank keys rotate`
-- adds a new encryption key and re-encrypts every field with it.
create table pii_keys (
  id text primary key,
  purpose text not null check (purpose in ('encryption', 'blind_index')),
  master_key_id text not null,
  wrapped_key text not null,
  status text not null check (status in ('active', 'retired')),
  created_at timestamptz not null
);
create unique index pii_keys_one_active on pii_keys (purpose) where status = 'active';

create table customers (
  -- The OpenID Connect subject, shared with customer_logins.
  id uuid primary key,
  legal_name_enc text not null,
  date_of_birth_enc text not null,
  nationality_enc text not null,
  national_id_type text not null check (national_id_type in ('cn_resident_id', 'uk_nino', 'us_ssn', 'none')),
  national_id_enc text,
  -- One customer per national id (duplicate detection at account opening).
  national_id_index text unique,
  address_enc text not null,
  email_enc text not null,
  phone_enc text not null,
  risk_rating text not null check (risk_rating in ('low', 'medium', 'high')),
  status text not null check (status in ('active', 'closed')),
  -- The application that opened the relationship; null for customers seeded directly in the sandbox.
  application_id uuid,
  created_at timestamptz not null
);

-- Customer-facing accounts, each backed by one ledger account that holds its money.
create table bank_accounts (
  id uuid primary key,
  customer_id uuid not null references customers (id),
  ledger_account_id uuid not null unique,
  product text not null check (product in ('current', 'savings')),
  currency text not null check (currency ~ '^[A-Z]{3}$'),
  iban text not null unique,
  name text not null,
  status text not null check (status in ('active', 'frozen', 'closed')),
  created_at timestamptz not null,
  status_updated_at timestamptz not null
);
create index bank_accounts_customer on bank_accounts (customer_id, id);

create table onboarding_applications (
  id uuid primary key,
  -- The partner app that submitted it on the applicant's behalf; null when the applicant used the bank's page.
  client_id uuid,
  channel text not null check (channel in ('partner', 'bank_page')),
  status text not null check (status in ('in_review', 'approved', 'rejected')),
  -- The applicant as submitted (JSON), encrypted as one field.
  applicant_enc text not null,
  -- At the bank's page the applicant chooses a password (kept only as its scrypt hash until approval
  -- creates the login); a partner's applicant activates their login through the bank instead.
  login_password_hash text,
  national_id_index text,
  product text not null check (product in ('current', 'savings')),
  currency text not null,
  risk_rating text not null check (risk_rating in ('low', 'medium', 'high')),
  -- Stable reason codes for a rejection or a referral to review.
  reasons text[] not null,
  customer_id uuid,
  account_id uuid,
  review_claimed_by text,
  review_claimed_at timestamptz,
  decided_by text,
  decision_note_enc text,
  decided_at timestamptz,
  created_at timestamptz not null
);
create index onboarding_applications_client on onboarding_applications (client_id, id) where client_id is not null;
create index onboarding_applications_review on onboarding_applications (created_at, id) where status = 'in_review';

-- Every check run on an application, with its result and the reason.
create table kyc_checks (
  application_id uuid not null references onboarding_applications (id),
  position smallint not null,
  name text not null,
  result text not null check (result in ('pass', 'refer', 'fail')),
  reason text,
  -- What the check found (screening hits name the listed person, never the applicant).
  details jsonb not null,
  created_at timestamptz not null,
  primary key (application_id, position)
);

create table onboarding_documents (
  id uuid primary key,
  application_id uuid not null references onboarding_applications (id),
  kind text not null check (kind in ('passport', 'national_id_card', 'driving_licence', 'proof_of_address')),
  media_type text not null check (media_type in ('application/pdf', 'image/jpeg', 'image/png')),
  size_bytes int not null check (size_bytes > 0),
  sha256 text not null,
  content_enc text not null,
  created_at timestamptz not null
);
create index onboarding_documents_application on onboarding_documents (application_id);

-- The transactional outbox: events written in the same transaction as the change they describe, and
-- delivered after the commit (webhooks read from here).
create table outbox_events (
  id bigint generated always as identity primary key,
  type text not null,
  subject_id text not null,
  payload jsonb not null,
  created_at timestamptz not null,
  delivered_at timestamptz
);
create index outbox_events_undelivered on outbox_events (id) where delivered_at is null;

-- The accounts a customer chose on the consent page, for account-information and payment consents.
alter table consents add column account_ids uuid[];

-- Names and email addresses of logins are personal data too: encrypted like the customer record.
alter table customer_logins rename column display_name to display_name_enc;
alter table customer_logins rename column email to email_enc;

-- The serial part of account numbers (the IBAN's BBAN is the bank code followed by it).
create sequence bank_account_serial;

-- Partner apps submit account-opening applications under their own product.
insert into api_products (id, name) values ('onboarding', 'Account opening');
update plans set product_ids = array_append(product_ids, 'onboarding') where id = 'standard';

-- App client secrets rest sealed too (a copy of the database must not let anyone act as an app). Secrets
-- stored in the clear before cannot be sealed by SQL: they are dropped, and those apps rotate theirs.
alter table apps rename column client_secret to client_secret_enc;
update apps set client_secret_enc = null;
