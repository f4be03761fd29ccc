-- ledger_execute: a whole batch of ledger operations in one statement, hence one round trip.
--
-- p_items is a JSON array; each item is one of
--   { "op": "transfer", "scope", "key", "hash", "id", "pending", "expiresAt", "metadata",
--     "postings": [{ "debitAccountId", "creditAccountId", "amount": "<minor>", "scale" }] }
--   { "op": "post" | "void" | "expire", "scope", "key", "hash", "id": <target transfer>,
--     "amount": "<minor>" | null, "scale" }
-- and the result is an array, in order, of { "ok": true, "replayed", "transfer" } or
-- { "ok": false, "code", "posting"? }.
--
-- Steps: replay known idempotency keys; lock target transfers, then accounts, each in id order (one global
-- order, so two batches never deadlock); apply every item in memory in sequence, undoing an item that
-- fails; then write everything with set-based statements. With p_atomic, one failure writes nothing.
create function ledger_execute(p_items jsonb, p_atomic boolean, p_now timestamptz) returns jsonb
language plpgsql as $fn$
declare
  n int := jsonb_array_length(p_items);
  max_bigint constant bigint := 9223372036854775807;
  -- items
  it_op text[]; it_scope text[]; it_key text[]; it_hash text[]; it_id uuid[]; it_pending boolean[];
  it_expires timestamptz[]; it_meta jsonb[]; it_amount bigint[]; it_scale int[];
  it_first int[]; it_count int[]; it_result jsonb[];
  -- postings of new transfers, flattened, with account indexes resolved
  ps_item int[]; ps_d int[]; ps_c int[]; ps_amount bigint[]; ps_scale int[]; ps_debit uuid[]; ps_credit uuid[];
  -- locked accounts
  ac_id uuid[]; ac_currency text[]; ac_exp int[]; ac_credit_normal boolean[]; ac_overdraft boolean[];
  ac_dp bigint[]; ac_cp bigint[]; ac_dpend bigint[]; ac_cpend bigint[]; ac_ver bigint[]; ac_changed boolean[];
  -- locked target transfers
  tg_id uuid[]; tg_status text[]; tg_row jsonb[]; tg_expires timestamptz[]; tg_posted bigint[];
  tg_resolved timestamptz[]; tg_changed boolean[];
  -- writes
  nt_id uuid[] := '{}'; nt_status text[] := '{}'; nt_postings jsonb[] := '{}'; nt_expires timestamptz[] := '{}';
  nt_meta jsonb[] := '{}';
  en_acc uuid[] := '{}'; en_seq bigint[] := '{}'; en_transfer uuid[] := '{}'; en_side text[] := '{}';
  en_amount bigint[] := '{}'; en_balance bigint[] := '{}';
  -- loop state
  i int; j int; k int; d int; c int; t int; amt bigint; full_amt bigint; err text; err_posting int;
  saved_entries int; saved_transfers int; failed boolean := false; postings_json jsonb; row_json jsonb;
  tp jsonb; keys_written int; keys_expected int := 0; en_n int := 0; nt_n int := 0;
  r record;
begin
  if n = 0 then return '[]'::jsonb; end if;
  it_result := array_fill(null::jsonb, array[n]);

  select array_agg(v->>'op' order by o), array_agg(v->>'scope' order by o), array_agg(v->>'key' order by o),
         array_agg(v->>'hash' order by o), array_agg((v->>'id')::uuid order by o),
         array_agg(coalesce((v->>'pending')::boolean, false) order by o),
         array_agg((v->>'expiresAt')::timestamptz order by o), array_agg(coalesce(v->'metadata', '{}') order by o),
         array_agg((v->>'amount')::bigint order by o), array_agg((v->>'scale')::int order by o)
    into it_op, it_scope, it_key, it_hash, it_id, it_pending, it_expires, it_meta, it_amount, it_scale
    from jsonb_array_elements(p_items) with ordinality as e(v, o);

  -- 1. Replays: a known key answers from its stored response; a different request under it is refused.
  for r in
    select i.o, k.request_hash, k.response
      from unnest(it_scope, it_key) with ordinality as i(scope, key, o)
      join idempotency_keys k on k.scope = i.scope and k.key = i.key
  loop
    if r.request_hash = it_hash[r.o] then
      it_result[r.o] := jsonb_build_object('ok', true, 'replayed', true, 'transfer', r.response);
    else
      it_result[r.o] := jsonb_build_object('ok', false, 'code', 'idempotency_key_reused');
    end if;
  end loop;

  -- 2. Lock the transfers that posts, voids and expiries act on, in id order.
  select array_agg(t.id order by t.id), array_agg(t.status order by t.id), array_agg(t.expires_at order by t.id),
         array_agg(t.posted_amount order by t.id), array_agg(t.resolved_at order by t.id),
         array_agg(jsonb_build_object('id', t.id, 'postings', t.postings, 'expiresAt', t.expires_at,
                                      'metadata', t.metadata, 'createdAt', t.created_at) order by t.id)
    into tg_id, tg_status, tg_expires, tg_posted, tg_resolved, tg_row
    from (select * from ledger_transfers
           where id in (select it_id[x] from generate_subscripts(it_id, 1) x
                         where it_op[x] <> 'transfer' and it_result[x] is null)
           order by id for update) t;
  tg_changed := array_fill(false, array[coalesce(cardinality(tg_id), 0)]);

  -- 3. Lock every account any item touches, in id order.
  select array_agg(a.id order by a.id), array_agg(a.currency order by a.id), array_agg(a.exponent order by a.id),
         array_agg(a.normal_balance = 'credit' order by a.id), array_agg(a.allow_overdraft order by a.id),
         array_agg(a.debits_posted order by a.id), array_agg(a.credits_posted order by a.id),
         array_agg(a.debits_pending order by a.id), array_agg(a.credits_pending order by a.id),
         array_agg(a.version order by a.id)
    into ac_id, ac_currency, ac_exp, ac_credit_normal, ac_overdraft, ac_dp, ac_cp, ac_dpend, ac_cpend, ac_ver
    from (select * from ledger_accounts
           where id in (
             select (p->>'debitAccountId')::uuid from jsonb_array_elements(p_items) e(v)
               cross join jsonb_array_elements(coalesce(v->'postings', '[]')) p
             union
             select (p->>'creditAccountId')::uuid from jsonb_array_elements(p_items) e(v)
               cross join jsonb_array_elements(coalesce(v->'postings', '[]')) p
             union
             select (p->>'debitAccountId')::uuid from unnest(tg_row) tr cross join jsonb_array_elements(tr->'postings') p
             union
             select (p->>'creditAccountId')::uuid from unnest(tg_row) tr cross join jsonb_array_elements(tr->'postings') p)
           order by id for update) a;
  ac_changed := array_fill(false, array[coalesce(cardinality(ac_id), 0)]);

  -- 4. Resolve each new posting's accounts to their index in the locked arrays (null: not found).
  select array_agg(e.o::int order by e.o, p.po), array_agg(dx.ix::int order by e.o, p.po),
         array_agg(cx.ix::int order by e.o, p.po), array_agg((p.pv->>'amount')::bigint order by e.o, p.po),
         array_agg((p.pv->>'scale')::int order by e.o, p.po),
         array_agg((p.pv->>'debitAccountId')::uuid order by e.o, p.po),
         array_agg((p.pv->>'creditAccountId')::uuid order by e.o, p.po)
    into ps_item, ps_d, ps_c, ps_amount, ps_scale, ps_debit, ps_credit
    from jsonb_array_elements(p_items) with ordinality e(v, o)
    cross join jsonb_array_elements(coalesce(e.v->'postings', '[]')) with ordinality p(pv, po)
    left join unnest(ac_id) with ordinality dx(id, ix) on dx.id = (p.pv->>'debitAccountId')::uuid
    left join unnest(ac_id) with ordinality cx(id, ix) on cx.id = (p.pv->>'creditAccountId')::uuid;
  it_first := array_fill(0, array[n]);
  it_count := array_fill(0, array[n]);
  for j in 1 .. coalesce(cardinality(ps_item), 0) loop
    if it_count[ps_item[j]] = 0 then it_first[ps_item[j]] := j; end if;
    it_count[ps_item[j]] := it_count[ps_item[j]] + 1;
  end loop;

  -- 5. Apply each item in memory, in order.
  for i in 1 .. n loop
    continue when it_result[i] is not null;
    err := null; err_posting := null;
    saved_entries := en_n;

    if it_op[i] = 'transfer' then
      postings_json := '[]';
      k := it_first[i] - 1;
      for j in it_first[i] .. it_first[i] + it_count[i] - 1 loop
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
        if it_pending[i] then
          ac_dpend[d] := ac_dpend[d] + amt; ac_cpend[c] := ac_cpend[c] + amt;
        else
          ac_dp[d] := ac_dp[d] + amt; ac_cp[c] := ac_cp[c] + amt;
        end if;
        ac_ver[d] := ac_ver[d] + 1; ac_ver[c] := ac_ver[c] + 1;
        if not it_pending[i] then
          en_n := en_n + 2;
          en_acc[en_n - 1] := ac_id[d]; en_acc[en_n] := ac_id[c];
          en_seq[en_n - 1] := ac_ver[d]; en_seq[en_n] := ac_ver[c];
          en_transfer[en_n - 1] := it_id[i]; en_transfer[en_n] := it_id[i];
          en_side[en_n - 1] := 'debit'; en_side[en_n] := 'credit';
          en_amount[en_n - 1] := amt; en_amount[en_n] := amt;
          en_balance[en_n - 1] := case when ac_credit_normal[d] then ac_cp[d] - ac_dp[d] else ac_dp[d] - ac_cp[d] end;
          en_balance[en_n] := case when ac_credit_normal[c] then ac_cp[c] - ac_dp[c] else ac_dp[c] - ac_cp[c] end;
        end if;
        postings_json := postings_json || jsonb_build_object('debitAccountId', ps_debit[j],
          'creditAccountId', ps_credit[j], 'amount', amt::text, 'exponent', ac_exp[d]);
        k := j;
      end loop;
      if err is not null then
        -- Undo this item's applied postings, newest first.
        for j in reverse k .. it_first[i] loop
          d := ps_d[j]; c := ps_c[j]; amt := ps_amount[j];
          if it_pending[i] then
            ac_dpend[d] := ac_dpend[d] - amt; ac_cpend[c] := ac_cpend[c] - amt;
          else
            ac_dp[d] := ac_dp[d] - amt; ac_cp[c] := ac_cp[c] - amt;
          end if;
          ac_ver[d] := ac_ver[d] - 1; ac_ver[c] := ac_ver[c] - 1;
        end loop;
      else
        for j in it_first[i] .. it_first[i] + it_count[i] - 1 loop
          ac_changed[ps_d[j]] := true; ac_changed[ps_c[j]] := true;
        end loop;
        nt_n := nt_n + 1;
        nt_id[nt_n] := it_id[i];
        nt_status[nt_n] := case when it_pending[i] then 'pending' else 'posted' end;
        nt_postings[nt_n] := postings_json;
        nt_expires[nt_n] := it_expires[i];
        nt_meta[nt_n] := it_meta[i];
        row_json := jsonb_build_object('id', it_id[i], 'status', case when it_pending[i] then 'pending' else 'posted' end,
          'postings', postings_json, 'expiresAt', it_expires[i], 'metadata', it_meta[i], 'createdAt', p_now);
      end if;

    else -- post, void, expire: act on a locked pending transfer
      t := array_position(tg_id, it_id[i]);
      if t is null then err := 'transfer_not_found';
      elsif tg_status[t] = 'posted' then err := 'transfer_already_posted';
      elsif tg_status[t] = 'voided' then err := 'transfer_already_voided';
      elsif tg_status[t] = 'expired' then err := 'transfer_expired';
      elsif it_op[i] = 'expire' and (tg_expires[t] is null or tg_expires[t] > p_now) then err := 'transfer_not_expired';
      elsif it_op[i] <> 'expire' and tg_expires[t] <= p_now then err := 'transfer_expired';
      elsif it_op[i] = 'post' and it_amount[i] is not null then
        if jsonb_array_length(tg_row[t]->'postings') <> 1 then err := 'partial_post_requires_single_posting';
        elsif it_scale[i] <> (tg_row[t]->'postings'->0->>'exponent')::int then err := 'amount_scale_mismatch';
        elsif it_amount[i] > (tg_row[t]->'postings'->0->>'amount')::bigint then err := 'amount_exceeds_pending';
        end if;
      end if;
      if err is null then
        for tp in select * from jsonb_array_elements(tg_row[t]->'postings') loop
          d := array_position(ac_id, (tp->>'debitAccountId')::uuid);
          c := array_position(ac_id, (tp->>'creditAccountId')::uuid);
          full_amt := (tp->>'amount')::bigint;
          amt := coalesce(it_amount[i], full_amt);
          ac_dpend[d] := ac_dpend[d] - full_amt; ac_cpend[c] := ac_cpend[c] - full_amt;
          ac_ver[d] := ac_ver[d] + 1; ac_ver[c] := ac_ver[c] + 1;
          ac_changed[d] := true; ac_changed[c] := true;
          if it_op[i] = 'post' then
            -- Cannot overflow or overdraw: the amount was reserved and is at most what was reserved.
            ac_dp[d] := ac_dp[d] + amt; ac_cp[c] := ac_cp[c] + amt;
            en_n := en_n + 2;
            en_acc[en_n - 1] := ac_id[d]; en_acc[en_n] := ac_id[c];
            en_seq[en_n - 1] := ac_ver[d]; en_seq[en_n] := ac_ver[c];
            en_transfer[en_n - 1] := it_id[i]; en_transfer[en_n] := it_id[i];
            en_side[en_n - 1] := 'debit'; en_side[en_n] := 'credit';
            en_amount[en_n - 1] := amt; en_amount[en_n] := amt;
            en_balance[en_n - 1] := case when ac_credit_normal[d] then ac_cp[d] - ac_dp[d] else ac_dp[d] - ac_cp[d] end;
            en_balance[en_n] := case when ac_credit_normal[c] then ac_cp[c] - ac_dp[c] else ac_dp[c] - ac_cp[c] end;
          end if;
        end loop;
        tg_status[t] := case it_op[i] when 'post' then 'posted' when 'void' then 'voided' else 'expired' end;
        tg_posted[t] := case when it_op[i] = 'post' then it_amount[i] end;
        tg_resolved[t] := p_now;
        tg_changed[t] := true;
        row_json := tg_row[t] || jsonb_build_object('status', tg_status[t], 'resolvedAt', p_now)
          || case when tg_posted[t] is not null then jsonb_build_object('postedAmount', tg_posted[t]::text) else '{}' end;
      end if;
    end if;

    if err is not null then
      failed := true;
      -- Entries a failed item appended are dropped (only a transfer can fail after appending).
      en_n := saved_entries;
      it_result[i] := jsonb_build_object('ok', false, 'code', err) ||
        case when err_posting is not null then jsonb_build_object('posting', err_posting) else '{}' end;
    else
      it_result[i] := jsonb_build_object('ok', true, 'replayed', false, 'transfer', row_json);
      if it_key[i] is not null then keys_expected := keys_expected + 1; end if;
    end if;
  end loop;

  if failed and p_atomic then
    for i in 1 .. n loop
      if (it_result[i]->>'ok')::boolean then it_result[i] := '{"ok": false, "code": "batch_aborted"}'; end if;
    end loop;
    return to_jsonb(it_result);
  end if;

  -- 6. Write. Transfers before entries (entries reference them); keys last, counted, so a key that another
  -- process committed meanwhile turns this call into a retry, which then replays it.
  insert into ledger_transfers (id, status, postings, expires_at, metadata, created_at, resolved_at)
    select u.id, u.status, u.postings, u.expires, u.meta, p_now, case when u.status = 'posted' then p_now end
      from unnest(nt_id[1:nt_n], nt_status[1:nt_n], nt_postings[1:nt_n], nt_expires[1:nt_n], nt_meta[1:nt_n]) as u(id, status, postings, expires, meta);

  update ledger_transfers lt set status = u.status, posted_amount = u.posted, resolved_at = u.resolved
    from unnest(tg_id, tg_status, tg_posted, tg_resolved, tg_changed) as u(id, status, posted, resolved, changed)
   where lt.id = u.id and u.changed;

  update ledger_accounts la
     set debits_posted = u.dp, credits_posted = u.cp, debits_pending = u.dpend, credits_pending = u.cpend, version = u.ver
    from unnest(ac_id, ac_dp, ac_cp, ac_dpend, ac_cpend, ac_ver, ac_changed) as u(id, dp, cp, dpend, cpend, ver, changed)
   where la.id = u.id and u.changed;

  insert into ledger_entries (account_id, seq, transfer_id, side, amount, balance, created_at)
    select u.acc, u.seq, u.transfer, u.side, u.amount, u.balance, p_now
      from unnest(en_acc[1:en_n], en_seq[1:en_n], en_transfer[1:en_n], en_side[1:en_n], en_amount[1:en_n], en_balance[1:en_n]) as u(acc, seq, transfer, side, amount, balance);

  if keys_expected > 0 then
    insert into idempotency_keys (scope, key, request_hash, status_code, response, created_at)
      select it_scope[x], it_key[x], it_hash[x], case when it_op[x] = 'transfer' then 201 else 200 end,
             it_result[x]->'transfer', p_now
        from generate_subscripts(it_result, 1) x
       where it_key[x] is not null and (it_result[x]->>'ok')::boolean and not (it_result[x]->>'replayed')::boolean
      on conflict do nothing;
    get diagnostics keys_written = row_count;
    if keys_written <> keys_expected then
      raise exception 'idempotency key committed concurrently' using errcode = '40001';
    end if;
  end if;

  return to_jsonb(it_result);
end
$fn$;
