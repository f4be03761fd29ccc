-- How customers sign in at the bank's own pages: a password and a second factor. The customer record with
-- its personal data (and its encryption) belongs to account opening; this table holds what login needs.
create table customer_logins (
  -- The customer's id: the OpenID Connect subject.
  id uuid primary key,
  username text not null unique,
  display_name text not null,
  email text not null,
  email_verified boolean not null,
  password_hash text not null,
  -- RFC 6238 shared secret (base32). Null in the sandbox, where a documented fixed code stands in.
  totp_secret text,
  -- The last time step whose code was accepted: a code is single-use (RFC 6238 §5.2).
  totp_last_step bigint,
  failed_attempts int not null default 0,
  locked_until timestamptz,
  created_at timestamptz not null
);

-- Every login attempt, successful or not. The username typed is kept only as a hash: it may be somebody
-- else's personal data, or a password typed into the wrong field.
create table login_attempts (
  id bigint generated always as identity primary key,
  customer_id uuid,
  username_hash text not null,
  outcome text not null check (outcome in ('success', 'wrong_credentials', 'wrong_second_factor', 'locked')),
  client_id text,
  remote_address text,
  created_at timestamptz not null
);
create index login_attempts_customer on login_attempts (customer_id, created_at);
