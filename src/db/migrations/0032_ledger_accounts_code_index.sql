-- `GET /v1/ledger/accounts?code=` (and the bank's own accounts, found by code at start) read every account
-- to find the few with the code: no index held it. In id order, for the page's cursor.
create index ledger_accounts_code on ledger_accounts (code, id) where code is not null;
