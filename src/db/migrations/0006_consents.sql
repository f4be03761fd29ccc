-- Consents: what a customer allowed an app to do, as a record with its own lifecycle. The app creates
-- one before sending the customer to sign in, names it in the authorization request (RFC 9396
-- authorization_details), and every API call under the resulting tokens checks it is still authorised.
create table consents (
  id uuid primary key,
  client_id uuid not null,
  -- Set when the customer authorises (or rejects) it.
  customer_id uuid,
  type text not null check (type in ('account_information', 'payment_initiation', 'funds_confirmation')),
  status text not null
    check (status in ('awaiting_authorisation', 'authorised', 'rejected', 'revoked', 'expired', 'consumed')),
  -- account_information: { permissions }; payment_initiation: { instructedAmount, creditor, reference };
  -- funds_confirmation: { }.
  details jsonb not null,
  -- The authorization server's grant: revoking the consent destroys it and every token issued under it.
  grant_id text,
  expires_at timestamptz not null,
  created_at timestamptz not null,
  status_updated_at timestamptz not null
);
create index consents_client on consents (client_id, id);
create index consents_customer on consents (customer_id, id) where customer_id is not null;
