-- Fraud screening of outgoing payments: the rules (data operators change without a restart), the payees
-- they block, every screening with its verdict, and the cases operators work for the payments stopped.
-- History for the rules is this capability's own record of what it screened, never another's tables.

-- One row per rule. `type` names the code that evaluates it (src/fraud/rules.ts); `parameters` are
-- validated for that type by the operator API; `version` counts the rule's changes, and each screening
-- records the versions it ran.
create table fraud_rules (
  id text primary key check (id ~ '^[a-z][a-z0-9_]{0,63}$'),
  type text not null check (type in
    ('velocity', 'amount_outlier', 'new_payee', 'blocklisted_payee', 'unusual_hour', 'new_device')),
  enabled boolean not null,
  action text not null check (action in ('step_up', 'block')),
  parameters jsonb not null,
  description text not null,
  version int not null default 1 check (version > 0),
  updated_at timestamptz not null default now(),
  updated_by text
);

-- The rule set's version, bumped by any change to fraud_rules (whoever makes it, even plain SQL). Every
-- screening reads it with its history, so a process notices a change on its next payment, no restart.
create table fraud_rule_set (
  singleton boolean primary key default true check (singleton),
  version bigint not null
);
insert into fraud_rule_set (version) values (1);

create function fraud_rules_changed() returns trigger
language plpgsql as $fn$
begin
  update fraud_rule_set set version = version + 1;
  return null;
end
$fn$;
create trigger fraud_rules_changed after insert or update or delete on fraud_rules
  for each statement execute function fraud_rules_changed();

-- Defaults. Amount parameters are decimal strings in the currency's exponent, per currency; a currency
-- not listed has no such limit. `ignoreBelow`: smaller payments never fire the rule.
insert into fraud_rules (id, type, enabled, action, parameters, description) values
  ('velocity_10m', 'velocity', true, 'step_up',
   '{"windowMinutes": 10, "maxCount": 5, "maxAmounts": {"EUR": "2000.00", "GBP": "2000.00", "USD": "2000.00"}}',
   'More than 5 payments, or more than 2,000 in one currency, within 10 minutes'),
  ('velocity_24h', 'velocity', true, 'step_up',
   '{"windowMinutes": 1440, "maxCount": 20, "maxAmounts": {"EUR": "10000.00", "GBP": "10000.00", "USD": "10000.00"}}',
   'More than 20 payments, or more than 10,000 in one currency, within 24 hours'),
  ('amount_outlier', 'amount_outlier', true, 'step_up',
   '{"lookbackDays": 90, "minHistory": 5, "percentile": 90, "multiplier": 5, "ignoreBelow": {"EUR": "100.00", "GBP": "100.00", "USD": "100.00"}}',
   'More than 5 times the 90th percentile of the customer''s payments in the last 90 days (with at least 5 of them)'),
  ('new_payee', 'new_payee', true, 'step_up',
   '{"ignoreBelow": {"EUR": "500.00", "GBP": "500.00", "USD": "500.00"}}',
   'A first payment of 500 or more to an IBAN the customer never paid'),
  ('blocklisted_payee', 'blocklisted_payee', true, 'block', '{}',
   'The payee''s IBAN is on the operators'' block list'),
  ('unusual_hour', 'unusual_hour', true, 'step_up',
   '{"timeZone": "Europe/London", "startHour": 1, "endHour": 5, "ignoreBelow": {"EUR": "200.00", "GBP": "200.00", "USD": "200.00"}}',
   'A payment of 200 or more between 01:00 and 05:00, London time'),
  ('new_device', 'new_device', true, 'step_up', '{"lookbackDays": 90}',
   'A device (device id, else user agent) the customer has not paid from in 90 days');

-- Payees no payment may go to. IBANs as the payment path normalises them (no spaces, upper case).
create table fraud_blocklist (
  iban text primary key,
  reason text not null,
  added_by text not null,
  added_at timestamptz not null
);

-- Every screening: the verdict, why, under which rule versions, how long it took; and the facts later
-- screenings of the same customer read as history. The payee's IBAN is an account number, kept as given;
-- the payee's name, IP address and raw device data are not kept (device_key is a hash).
create table fraud_screenings (
  id uuid primary key,
  payment_id uuid not null unique,
  customer_id uuid not null,
  debtor_account_id uuid not null,
  amount bigint not null check (amount > 0),
  currency text not null,
  creditor_iban text not null,
  device_key text,
  at timestamptz not null,
  verdict text not null check (verdict in ('allow', 'step_up', 'block')),
  -- [{ rule, detail }] for every rule that fired; { ruleId: version } for every rule that ran.
  reasons jsonb not null,
  rule_versions jsonb not null,
  rules_version bigint not null,
  -- From the call to the verdict: the read and the evaluation, not the write that records it.
  latency_us int not null check (latency_us >= 0),
  -- Whether later screenings count it as the customer's history: not a blocked payment (no money left),
  -- nor one an operator confirmed as fraud (it is not the customer's behaviour).
  in_history boolean not null
);
-- Velocity windows and the amount baseline: newest first per customer, read from the index alone.
create index fraud_screenings_history on fraud_screenings (customer_id, at) include (amount, currency)
  where in_history;
create index fraud_screenings_payees on fraud_screenings (customer_id, creditor_iban) where in_history;
create index fraud_screenings_devices on fraud_screenings (customer_id, device_key, at)
  where in_history and device_key is not null;

-- A case for every payment stopped (block) or held for the customer's confirmation (step_up).
create table fraud_cases (
  id uuid primary key,
  screening_id uuid not null unique references fraud_screenings (id),
  payment_id uuid not null,
  customer_id uuid not null,
  verdict text not null check (verdict in ('step_up', 'block')),
  status text not null check (status in ('open', 'claimed', 'resolved')),
  claimed_by text,
  claimed_at timestamptz,
  outcome text check (outcome in ('confirmed_fraud', 'legitimate')),
  resolved_by text,
  resolution_note text,
  resolved_at timestamptz,
  opened_at timestamptz not null,
  check ((status = 'resolved') = (outcome is not null))
);
create index fraud_cases_by_status on fraud_cases (status, id);
