-- Third-party developers and their apps. An app is an OAuth client of the bank's authorization server.

create table developers (
  id uuid primary key,
  name text not null,
  -- Lower-cased at the edge; unique so one address is one developer.
  email text not null unique,
  -- scrypt, self-describing: scrypt$N$r$p$salt$hash (base64url)
  password_hash text not null,
  created_at timestamptz not null
);

-- Developer portal sessions: only a hash of the bearer token is kept, so a database leak yields no tokens.
create table developer_sessions (
  token_hash bytea primary key,
  developer_id uuid not null references developers (id) on delete cascade,
  created_at timestamptz not null,
  expires_at timestamptz not null
);
create index developer_sessions_developer on developer_sessions (developer_id);

create table apps (
  -- Also the OAuth client_id.
  id uuid primary key,
  developer_id uuid not null references developers (id) on delete cascade,
  name text not null,
  redirect_uris text[] not null,
  scopes text[] not null,
  token_endpoint_auth_method text not null
    check (token_endpoint_auth_method in ('client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth')),
  jwks jsonb,
  jwks_uri text,
  -- Sandbox only (client_secret_* methods): the secret, shown to the developer once at creation or rotation.
  client_secret text,
  status text not null check (status in ('active', 'suspended')),
  created_at timestamptz not null,
  updated_at timestamptz not null
);
create index apps_developer on apps (developer_id, id);
