-- ledger_execute plans its statements on every call. PL/pgSQL otherwise keeps, for the life of a
-- connection, the generic plan it settled on after a few calls: planned while ledger_transfers held a few
-- hundred rows, the key lookup stayed a sequential scan and hash join when the table had grown to hundreds
-- of thousands (88 ms a call, measured under bench/payments.ts, where an index lookup takes 0.01 ms).
-- Planning each call costs a fraction of a millisecond, and a call carries a whole batch.
alter function ledger_execute(smallint[], uuid[], text[], text[], boolean[], timestamptz[], jsonb, bigint[],
  smallint[], int[], uuid[], uuid[], bigint[], smallint[], boolean, timestamptz)
  set plan_cache_mode = force_custom_plan;
