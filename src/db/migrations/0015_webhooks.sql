-- Webhooks (Standard Webhooks 1.0): developers register endpoints per app; the dispatcher fans the outbox's
-- events out into one delivery per matching endpoint and sends them, signed, with retries.

create table webhook_endpoints (
  id uuid primary key,
  -- The app whose events the endpoint receives (events whose payload.clientId is this app, and no others).
  app_id uuid not null references apps (id) on delete cascade,
  url text not null,
  -- Exact types ('payment.settled'), prefix wildcards ('payment.*') or '*'.
  event_types text[] not null,
  description text,
  enabled boolean not null,
  -- Why it is disabled: by its developer, after failing for 24 hours, or because it answered 410 Gone.
  disabled_reason text check (disabled_reason in ('developer', 'failing', 'gone')),
  -- The signing secret (whsec_...), sealed like personal data; during a rotation the previous one keeps
  -- signing until previous_secret_expires_at.
  secret_enc text not null,
  previous_secret_enc text,
  previous_secret_expires_at timestamptz,
  -- The first failed attempt of the current unbroken run of failures; cleared by any success.
  failing_since timestamptz,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  check (enabled = (disabled_reason is null))
);
create index webhook_endpoints_app on webhook_endpoints (app_id, id);

create table webhook_deliveries (
  -- Time-ordered (UUIDv7): the delivery log pages by it.
  id uuid primary key,
  endpoint_id uuid not null references webhook_endpoints (id) on delete cascade,
  app_id uuid not null,
  -- The outbox event delivered, and the webhook-id sent with every attempt (the receiver's idempotency key).
  event_id bigint not null,
  event_type text not null,
  message_id text not null,
  -- The exact bytes signed and sent: {type, timestamp, data}.
  body text not null,
  -- pending: waiting for its next attempt; sending: claimed by a dispatcher until next_attempt_at (a lease,
  -- so a process that dies mid-attempt leaves it to another); delivered; failed (gave up, or disabled).
  status text not null check (status in ('pending', 'sending', 'delivered', 'failed')),
  attempts integer not null default 0,
  next_attempt_at timestamptz,
  last_attempt_at timestamptz,
  response_status integer,
  error text,
  duration_ms integer,
  delivered_at timestamptz,
  -- A developer's replay of a finished delivery is a new delivery that names the one it repeats.
  replay_of uuid,
  created_at timestamptz not null
);
-- Fan-out is idempotent: an event reaches an endpoint once (replays aside).
create unique index webhook_deliveries_once on webhook_deliveries (endpoint_id, event_id) where replay_of is null;
create index webhook_deliveries_log on webhook_deliveries (endpoint_id, id);
create index webhook_deliveries_due on webhook_deliveries (endpoint_id, next_attempt_at)
  where status in ('pending', 'sending');
create index webhook_deliveries_due_at on webhook_deliveries (next_attempt_at) where status in ('pending', 'sending');
create index webhook_deliveries_finished on webhook_deliveries (created_at) where status in ('delivered', 'failed');
