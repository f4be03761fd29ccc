-- oidc-provider's storage (its seven-method adapter): sessions, interactions, grants, codes, refresh
-- tokens, pushed requests, replay records. Clients are not here: they are the apps table.
create table oauth_payloads (
  model text not null,
  id text not null,
  payload jsonb not null,
  grant_id text,
  uid text,
  user_code text,
  expires_at timestamptz,
  consumed_at timestamptz,
  primary key (model, id)
);
create index oauth_payloads_grant on oauth_payloads (grant_id) where grant_id is not null;
create index oauth_payloads_uid on oauth_payloads (uid) where uid is not null;
create index oauth_payloads_user_code on oauth_payloads (user_code) where user_code is not null;
create index oauth_payloads_expires on oauth_payloads (expires_at) where expires_at is not null;
