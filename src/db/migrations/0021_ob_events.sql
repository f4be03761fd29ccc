-- UK Open Banking v4.0 Events API (src/standards/uk-ob/events.ts). One event subscription per app, as the
-- specification has it (a second is a 409): the app's events from its creation on are polled through the
-- aggregated polling endpoint.
create table ob_event_subscriptions (
  id uuid primary key,
  app_id uuid not null unique references apps (id) on delete cascade,
  version text not null,
  -- Null: every event type the bank offers.
  event_types text[],
  created_at timestamptz not null
);

-- The outbox events an app has answered in polling, positively (ack) or with a SET delivery error: either
-- way the event is not offered again.
create table ob_event_answers (
  app_id uuid not null references apps (id) on delete cascade,
  event_id bigint not null,
  err text,
  description text,
  answered_at timestamptz not null,
  primary key (app_id, event_id)
);

-- Polling reads an app's events by the outbox payload's clientId.
create index outbox_events_client on outbox_events ((payload ->> 'clientId'), id);
