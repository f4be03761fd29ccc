-- The tamper-evident audit: an append-only hash chain. Each record carries the SHA-256 of its canonical
-- form, which includes the previous record's hash, so editing, deleting or reordering any record breaks
-- every hash after it. Checkpoints sign the head (Ed25519 JWS) so the chain cannot be silently rebuilt.
create table audit_records (
  seq bigint primary key,
  at timestamptz not null,
  actor_type text not null check (actor_type in ('anonymous', 'operator', 'developer', 'app', 'customer')),
  actor_id text,
  app_id text,
  customer_id text,
  consent_ids text,
  method text not null,
  route text not null,
  status int not null,
  request_id text not null,
  -- SHA-256 of the request body's canonical JSON; never the body itself.
  body_hash text,
  prev_hash text not null,
  hash text not null
);

-- One row: the chain's head. Appenders lock it, so two processes never fork the chain.
create table audit_head (
  id boolean primary key default true check (id),
  seq bigint not null,
  hash text not null
);
insert into audit_head (seq, hash) values (0, repeat('0', 64));

create table audit_checkpoints (
  seq bigint primary key,
  hash text not null,
  jws text not null,
  at timestamptz not null
);
