-- The recovery sweep (every 10 s in every server) lists payments stuck in a passing status: received,
-- awaiting strong authentication, returning. Only `received` had an index, and the sweep's one statement
-- named the status as a parameter, which a partial index cannot serve: each sweep read the whole payments
-- table three times. Now each status has its own statement and its own small partial index (a payment
-- passes through these statuses; the indexes hold only those in them now).
create index payments_awaiting_sca on payments (created_at) where status = 'awaiting_sca';
create index payments_returning on payments (created_at) where status = 'returning';
