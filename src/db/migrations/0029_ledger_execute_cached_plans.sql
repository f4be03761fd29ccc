-- ledger_execute plans its statements once per connection instead of on every call (0024): planning took
-- 0.62 ms of every call under bench/payments.ts (pg_stat_statements). A call of nine transfers into one
-- account, with its begin and commit, now takes 1.29 ms of PostgreSQL's CPU against 1.82 ms (four rounds in
-- turns, 0.64 to 0.81). A generic plan is made once, while the tables may still be small, and kept as they
-- grow: so every statement that reads a table now says how, and none can turn into a whole-table read:
-- - a replayed key is looked up one key at a time (a lateral subquery with a limit is never flattened into
--   a join: an index lookup per key, never a hash join against the whole key index);
-- - the transfers and accounts to lock, and the rows to update, are named by `= any(array)`: index scans;
-- - sequential scans are off for the function's statements, so no estimate made on a small table picks one.
-- src/ledger/plans.test.ts plans on small tables and checks the reads after they have grown.
-- New transfers are inserted `on conflict do nothing` and counted, where a block caught the unique
-- violation: the same serialisation failure when another call committed a key meanwhile (the caller
-- retries and replays it), without the subtransaction the block cost every call.
create or replace function ledger_execute(
  p_op smallint[], p_id uuid[], p_key text[], p_hash text[], p_pending boolean[], p_expires timestamptz[],
  p_metadata jsonb, p_amount bigint[], p_scale smallint[], p_postings int[],
  ps_debit uuid[], ps_credit uuid[], ps_amount bigint[], ps_scale smallint[],
  p_atomic boolean, p_now timestamptz)
returns table (code text, posting int, transfer_id uuid, created_at timestamptz, transfer jsonb)
language plpgsql
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $fn$
#variable_conflict use_column
declare
  n int := coalesce(cardinality(p_op), 0);
  np int := coalesce(cardinality(ps_debit), 0);
  max_bigint constant bigint := 9223372036854775807;
  -- results
  r_code text[]; r_posting int[]; r_id uuid[]; r_created timestamptz[]; r_transfer jsonb[];
  -- postings: first index per item, account index per side (null: not found), exponent once applied
  it_first int[]; ps_d int[]; ps_c int[]; ps_exp smallint[];
  -- locked accounts
  ac_id uuid[]; ac_currency text[]; ac_exp smallint[]; ac_credit_normal boolean[]; ac_overdraft boolean[];
  ac_dp bigint[]; ac_cp bigint[]; ac_dpend bigint[]; ac_cpend bigint[]; ac_ver bigint[]; ac_changed boolean[];
  -- locked target transfers
  tg_id uuid[]; tg_status text[]; tg_expires timestamptz[]; tg_posted bigint[]; tg_changed boolean[];
  tg_row jsonb[];
  -- writes
  nt_item int[] := '{}'; nt_n int := 0;
  en_acc uuid[] := '{}'; en_seq bigint[] := '{}'; en_transfer uuid[] := '{}'; en_debit boolean[] := '{}';
  en_amount bigint[] := '{}'; en_balance bigint[] := '{}'; en_n int := 0;
  -- loop state
  i int; j int; k int; d int; c int; t int; amt bigint; full_amt bigint; err text; err_posting int;
  saved_entries int; failed boolean := false; tp record; r record; next_first int := 1; inserted int;
begin
  if n = 0 then return; end if;
  r_code := array_fill(null::text, array[n]);
  r_posting := array_fill(null::int, array[n]);
  r_id := p_id;
  r_created := array_fill(p_now, array[n]);
  r_transfer := array_fill(null::jsonb, array[n]);
  it_first := array_fill(0, array[n]);
  for i in 1 .. n loop
    it_first[i] := next_first;
    next_first := next_first + p_postings[i];
  end loop;

  -- 1. Replays: a known key answers with its transfer; a different request under it is refused.
  for r in
    select k.o, t.id, t.request_hash, t.created_at
      from unnest(p_key) with ordinality as k(key, o)
      cross join lateral (select id, request_hash, created_at from ledger_transfers
                           where idempotency_key = k.key limit 1) t
     where k.key is not null
  loop
    if r.request_hash = p_hash[r.o] then
      r_code[r.o] := 'replayed'; r_id[r.o] := r.id; r_created[r.o] := r.created_at;
    else
      r_code[r.o] := 'idempotency_key_reused';
      failed := true;
    end if;
  end loop;

  -- 2. Lock the transfers that posts, voids and expiries act on, in id order.
  if 1 < any(p_op) then
  select array_agg(t.id order by t.id), array_agg(t.status order by t.id), array_agg(t.expires_at order by t.id),
         array_agg(t.posted_amount order by t.id),
         array_agg(jsonb_build_object('id', t.id, 'debitAccountIds', t.debit_account_ids,
           'creditAccountIds', t.credit_account_ids, 'amounts', t.amounts::text[], 'exponents', t.exponents,
           'expiresAt', t.expires_at, 'metadata', t.metadata, 'createdAt', t.created_at) order by t.id)
    into tg_id, tg_status, tg_expires, tg_posted, tg_row
    from (select * from ledger_transfers
           where id = any(array(select p_id[x] from generate_subscripts(p_op, 1) x where p_op[x] <> 1))
           order by id for update) t;
  end if;
  tg_changed := array_fill(false, array[coalesce(cardinality(tg_id), 0)]);

  -- 3. Lock every account any item touches, in id order.
  select array_agg(a.id order by a.id), array_agg(a.currency order by a.id), array_agg(a.exponent order by a.id),
         array_agg(a.normal_balance = 'credit' order by a.id), array_agg(a.allow_overdraft order by a.id),
         array_agg(a.debits_posted order by a.id), array_agg(a.credits_posted order by a.id),
         array_agg(a.debits_pending order by a.id), array_agg(a.credits_pending order by a.id),
         array_agg(a.version order by a.id)
    into ac_id, ac_currency, ac_exp, ac_credit_normal, ac_overdraft, ac_dp, ac_cp, ac_dpend, ac_cpend, ac_ver
    from (select * from ledger_accounts
           where id = any(array(select unnest(ps_debit) union select unnest(ps_credit)
                                union select unnest(t.debit_account_ids || t.credit_account_ids)
                                        from ledger_transfers t where t.id = any(tg_id)))
           order by id for update) a;
  ac_changed := array_fill(false, array[coalesce(cardinality(ac_id), 0)]);

  -- 4. Each posting's accounts as indexes into the locked arrays (null: no such account).
  select array_agg(dx.ix::int order by p.o), array_agg(cx.ix::int order by p.o)
    into ps_d, ps_c
    from unnest(ps_debit, ps_credit) with ordinality as p(debit, credit, o)
    left join unnest(ac_id) with ordinality as dx(id, ix) on dx.id = p.debit
    left join unnest(ac_id) with ordinality as cx(id, ix) on cx.id = p.credit;
  ps_exp := array_fill(null::smallint, array[greatest(np, 1)]);

  -- 5. Apply each item in memory, in order.
  for i in 1 .. n loop
    continue when r_code[i] is not null;
    err := null; err_posting := null;
    saved_entries := en_n;

    if p_op[i] = 1 then
      k := it_first[i] - 1;
      for j in it_first[i] .. it_first[i] + p_postings[i] - 1 loop
        d := ps_d[j]; c := ps_c[j]; amt := ps_amount[j];
        if d is null or c is null then err := 'account_not_found';
        elsif ac_currency[d] <> ac_currency[c] then err := 'currency_mismatch';
        elsif ps_scale[j] <> ac_exp[d] then err := 'amount_scale_mismatch';
        elsif amt > max_bigint - greatest(ac_dp[d] + ac_dpend[d], ac_cp[c] + ac_cpend[c]) then err := 'balance_overflow';
        elsif not ac_overdraft[d] and ac_credit_normal[d] and ac_dp[d] + ac_dpend[d] + amt > ac_cp[d] then
          err := 'insufficient_funds';
        elsif not ac_overdraft[c] and not ac_credit_normal[c] and ac_cp[c] + ac_cpend[c] + amt > ac_dp[c] then
          err := 'insufficient_funds';
        end if;
        if err is not null then err_posting := j - it_first[i]; exit; end if;
        ac_ver[d] := ac_ver[d] + 1; ac_ver[c] := ac_ver[c] + 1;
        if p_pending[i] then
          ac_dpend[d] := ac_dpend[d] + amt; ac_cpend[c] := ac_cpend[c] + amt;
        else
          ac_dp[d] := ac_dp[d] + amt; ac_cp[c] := ac_cp[c] + amt;
          en_n := en_n + 2;
          en_acc[en_n - 1] := ac_id[d]; en_acc[en_n] := ac_id[c];
          en_seq[en_n - 1] := ac_ver[d]; en_seq[en_n] := ac_ver[c];
          en_transfer[en_n - 1] := p_id[i]; en_transfer[en_n] := p_id[i];
          en_debit[en_n - 1] := true; en_debit[en_n] := false;
          en_amount[en_n - 1] := amt; en_amount[en_n] := amt;
          en_balance[en_n - 1] := case when ac_credit_normal[d] then ac_cp[d] - ac_dp[d] else ac_dp[d] - ac_cp[d] end;
          en_balance[en_n] := case when ac_credit_normal[c] then ac_cp[c] - ac_dp[c] else ac_dp[c] - ac_cp[c] end;
        end if;
        ps_exp[j] := ac_exp[d];
        k := j;
      end loop;
      if err is not null then
        -- Undo this item's applied postings, newest first.
        for j in reverse k .. it_first[i] loop
          d := ps_d[j]; c := ps_c[j]; amt := ps_amount[j];
          if p_pending[i] then
            ac_dpend[d] := ac_dpend[d] - amt; ac_cpend[c] := ac_cpend[c] - amt;
          else
            ac_dp[d] := ac_dp[d] - amt; ac_cp[c] := ac_cp[c] - amt;
          end if;
          ac_ver[d] := ac_ver[d] - 1; ac_ver[c] := ac_ver[c] - 1;
        end loop;
      else
        for j in it_first[i] .. it_first[i] + p_postings[i] - 1 loop
          ac_changed[ps_d[j]] := true; ac_changed[ps_c[j]] := true;
        end loop;
        nt_n := nt_n + 1;
        nt_item[nt_n] := i;
      end if;

    else -- post, void, expire: act on a locked pending transfer
      t := array_position(tg_id, p_id[i]);
      if t is null then err := 'transfer_not_found';
      elsif tg_status[t] = 'posted' then err := 'transfer_already_posted';
      elsif tg_status[t] = 'voided' then err := 'transfer_already_voided';
      elsif tg_status[t] = 'expired' then err := 'transfer_expired';
      elsif p_op[i] = 4 and (tg_expires[t] is null or tg_expires[t] > p_now) then err := 'transfer_not_expired';
      elsif p_op[i] <> 4 and tg_expires[t] <= p_now then err := 'transfer_expired';
      elsif p_op[i] = 2 and p_amount[i] is not null then
        if jsonb_array_length(tg_row[t]->'amounts') <> 1 then err := 'partial_post_requires_single_posting';
        elsif p_scale[i] <> (tg_row[t]->'exponents'->>0)::int then err := 'amount_scale_mismatch';
        elsif p_amount[i] > (tg_row[t]->'amounts'->>0)::bigint then err := 'amount_exceeds_pending';
        end if;
      end if;
      if err is null then
        for tp in
          select (tg_row[t]->'debitAccountIds'->>(x - 1))::uuid as debit,
                 (tg_row[t]->'creditAccountIds'->>(x - 1))::uuid as credit,
                 (tg_row[t]->'amounts'->>(x - 1))::bigint as amount
            from generate_series(1, jsonb_array_length(tg_row[t]->'amounts')) x
        loop
          d := array_position(ac_id, tp.debit);
          c := array_position(ac_id, tp.credit);
          full_amt := tp.amount;
          amt := coalesce(p_amount[i], full_amt);
          ac_dpend[d] := ac_dpend[d] - full_amt; ac_cpend[c] := ac_cpend[c] - full_amt;
          ac_ver[d] := ac_ver[d] + 1; ac_ver[c] := ac_ver[c] + 1;
          ac_changed[d] := true; ac_changed[c] := true;
          if p_op[i] = 2 then
            -- Cannot overflow or overdraw: the amount was reserved and is at most what was reserved.
            ac_dp[d] := ac_dp[d] + amt; ac_cp[c] := ac_cp[c] + amt;
            en_n := en_n + 2;
            en_acc[en_n - 1] := ac_id[d]; en_acc[en_n] := ac_id[c];
            en_seq[en_n - 1] := ac_ver[d]; en_seq[en_n] := ac_ver[c];
            en_transfer[en_n - 1] := p_id[i]; en_transfer[en_n] := p_id[i];
            en_debit[en_n - 1] := true; en_debit[en_n] := false;
            en_amount[en_n - 1] := amt; en_amount[en_n] := amt;
            en_balance[en_n - 1] := case when ac_credit_normal[d] then ac_cp[d] - ac_dp[d] else ac_dp[d] - ac_cp[d] end;
            en_balance[en_n] := case when ac_credit_normal[c] then ac_cp[c] - ac_dp[c] else ac_dp[c] - ac_cp[c] end;
          end if;
        end loop;
        tg_status[t] := case p_op[i] when 2 then 'posted' when 3 then 'voided' else 'expired' end;
        tg_posted[t] := case when p_op[i] = 2 then p_amount[i] end;
        tg_changed[t] := true;
        r_transfer[i] := tg_row[t] || jsonb_build_object('status', tg_status[t], 'resolvedAt', p_now,
          'postedAmount', tg_posted[t]::text);
      end if;
    end if;

    if err is not null then
      failed := true;
      en_n := saved_entries; -- entries a failed item appended are dropped
      r_code[i] := err; r_posting[i] := err_posting;
    end if;
  end loop;

  if failed and p_atomic then
    for i in 1 .. n loop
      if r_code[i] is null or r_code[i] = 'replayed' then r_code[i] := 'batch_aborted'; end if;
    end loop;
    return query select * from unnest(r_code, r_posting, r_id, r_created, r_transfer);
    return;
  end if;

  -- 6. Write. A key that another call committed meanwhile is not inserted; it is reported as a serialisation
  -- failure, the caller retries, and the retry replays that key.
  if nt_n > 0 then
    insert into ledger_transfers (id, status, idempotency_key, request_hash, debit_account_ids, credit_account_ids,
                                  amounts, exponents, expires_at, metadata, created_at, resolved_at)
      select p_id[x], case when p_pending[x] then 'pending' else 'posted' end, p_key[x], p_hash[x],
             -- One posting is the common case: a one-element array is cheaper than a slice.
             case when p_postings[x] = 1 then array[ps_debit[it_first[x]]]
                  else ps_debit[it_first[x] : it_first[x] + p_postings[x] - 1] end,
             case when p_postings[x] = 1 then array[ps_credit[it_first[x]]]
                  else ps_credit[it_first[x] : it_first[x] + p_postings[x] - 1] end,
             case when p_postings[x] = 1 then array[ps_amount[it_first[x]]]
                  else ps_amount[it_first[x] : it_first[x] + p_postings[x] - 1] end,
             case when p_postings[x] = 1 then array[ps_exp[it_first[x]]]
                  else ps_exp[it_first[x] : it_first[x] + p_postings[x] - 1] end,
             p_expires[x], coalesce(p_metadata->(x - 1), '{}'), p_now, case when p_pending[x] then null else p_now end
        from unnest(nt_item[1:nt_n]) as x
      on conflict (idempotency_key) where idempotency_key is not null do nothing;
    get diagnostics inserted = row_count;
    if inserted < nt_n then
      raise exception 'an idempotency key was committed concurrently' using errcode = '40001';
    end if;
  end if;

  if tg_id is not null then
    update ledger_transfers lt set status = u.status, posted_amount = u.posted, resolved_at = p_now
      from unnest(tg_id, tg_status, tg_posted, tg_changed) as u(id, status, posted, changed)
     where lt.id = u.id and u.changed and lt.id = any(tg_id);
  end if;

  update ledger_accounts la
     set debits_posted = u.dp, credits_posted = u.cp, debits_pending = u.dpend, credits_pending = u.cpend, version = u.ver
    from unnest(ac_id, ac_dp, ac_cp, ac_dpend, ac_cpend, ac_ver, ac_changed) as u(id, dp, cp, dpend, cpend, ver, changed)
   where la.id = u.id and u.changed and la.id = any(ac_id);

  if en_n > 0 then
    insert into ledger_entries (account_id, seq, transfer_id, side, amount, balance, created_at)
      select u.acc, u.seq, u.transfer, case when u.debit then 'debit' else 'credit' end, u.amount, u.balance, p_now
        from unnest(en_acc[1:en_n], en_seq[1:en_n], en_transfer[1:en_n], en_debit[1:en_n], en_amount[1:en_n],
                    en_balance[1:en_n]) as u(acc, seq, transfer, debit, amount, balance);
  end if;

  return query select * from unnest(r_code, r_posting, r_id, r_created, r_transfer);
end
$fn$;
