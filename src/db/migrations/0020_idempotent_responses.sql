-- The idempotency plugin stores the response it would replay. Responses to creating calls carry secrets
-- (an app's client secret, a webhook signing secret) and personal data (an applicant's name), so the plugin
-- keeps them sealed like any other personal field: `response_enc`, under the PII keys, bound to the row's
-- id, re-encrypted by `apibank keys rotate`. `response` stays for the ledger's own stored answers.
alter table idempotency_keys add column id uuid not null default gen_random_uuid();
alter table idempotency_keys add constraint idempotency_keys_id unique (id);
alter table idempotency_keys add column response_enc text;
