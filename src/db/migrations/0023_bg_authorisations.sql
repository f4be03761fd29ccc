-- Berlin Group NextGenPSD2 authorisation sub-resources (src/standards/berlin-group/authorisations.ts): the
-- standard names the SCA of a consent or payment initiation as a resource of its own, which the bank's
-- consents do not have. Only its id is kept here: its status is the consent's (awaiting the customer,
-- authorised, rejected, …), read from the consent each time. One per consent: the bank's one SCA approach
-- is the customer's approval at its consent page, with no multilevel SCA, so a second start is refused.
create table bg_authorisations (
  id uuid primary key,
  consent_id uuid not null unique references consents (id),
  created_at timestamptz not null
);
