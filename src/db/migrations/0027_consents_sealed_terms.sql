-- A consent's terms name people (the payee of a payment consent, a creditor account's holder): new
-- consents keep them sealed here (AES-256-GCM under the data keys, as every *_enc column), and `details`
-- holds {} for them. Consents written before keep their terms in `details`.
alter table consents add column details_enc text;
