-- The consents a grant carries, found when the authorization server revokes the grant (a reused code, a
-- revoked refresh token): without an index that is a scan of every consent.
create index consents_grant on consents (grant_id) where grant_id is not null;
