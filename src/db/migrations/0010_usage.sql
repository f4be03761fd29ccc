-- Metering: calls per app, product and minute, with a latency histogram so percentiles can be estimated
-- over any range by adding histograms (bucket upper bounds in src/gateway/metering.ts).
create table usage_minutes (
  app_id uuid not null,
  product text not null,
  minute timestamptz not null,
  calls bigint not null,
  errors bigint not null,
  latency_buckets bigint[] not null,
  primary key (app_id, minute, product)
);
