-- The gateway's commercial model: API products group routes; plans name the products they include, a
-- rate limit and a daily quota; an app subscribes to one plan.
create table api_products (
  id text primary key check (id ~ '^[a-z][a-z0-9-]{0,39}$'),
  name text not null,
  created_at timestamptz not null default now()
);

create table plans (
  id text primary key check (id ~ '^[a-z][a-z0-9-]{0,39}$'),
  name text not null,
  product_ids text[] not null,
  rate_per_second int not null check (rate_per_second > 0),
  rate_per_minute int not null check (rate_per_minute > 0),
  daily_quota int not null check (daily_quota > 0),
  requires_approval boolean not null,
  -- New apps are subscribed to the default plan.
  is_default boolean not null default false,
  created_at timestamptz not null default now()
);
create unique index plans_one_default on plans (is_default) where is_default;

create table subscriptions (
  app_id uuid primary key references apps (id) on delete cascade,
  plan_id text not null references plans (id),
  status text not null check (status in ('active', 'pending')),
  created_at timestamptz not null,
  updated_at timestamptz not null
);

insert into api_products (id, name) values
  ('consents', 'Consents'),
  ('accounts', 'Accounts and transactions'),
  ('payments', 'Payments'),
  ('funds-confirmation', 'Funds confirmation'),
  ('credit', 'Credit'),
  ('products-catalogue', 'Product catalogue');

insert into plans (id, name, product_ids, rate_per_second, rate_per_minute, daily_quota, requires_approval, is_default) values
  ('standard', 'Standard', '{consents,accounts,payments,funds-confirmation,credit,products-catalogue}', 50, 1000, 100000, false, true);
