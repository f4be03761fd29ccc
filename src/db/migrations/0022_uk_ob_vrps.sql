-- UK Open Banking v4.0 domestic VRPs (src/standards/uk-ob/vrp.ts). A VRP is a mandate charge (its payment
-- moves the money, its charge counts toward the mandate's limits); this keeps what the standard's request
-- said beside it (the Instruction's identifications, the authentication method, the VRP type), which the
-- bank's own records have no field for. Written in the charge's transaction: both exist, or neither.
create table uk_ob_vrps (
  -- The DomesticVRPId: the payment's id.
  payment_id uuid primary key,
  charge_id uuid not null unique references mandate_charges (id),
  -- The VRP consent, which is the mandate.
  consent_id uuid not null references mandates (id),
  client_id uuid not null,
  -- Data.Instruction, Data.PSUAuthenticationMethod, Data.PSUInteractionType, Data.VRPType and Risk as sent.
  request jsonb not null,
  created_at timestamptz not null
);
