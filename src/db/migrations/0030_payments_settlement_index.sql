-- A settlement cycle claims outbound payments accepted, and those a cycle claimed and never finished
-- (settling since before a cut-off: its process died). The index held the accepted ones only, so no index
-- could answer for both, and every cycle read every payment ever made. Now it holds both, in the order the
-- cycle takes them (src/payments/store.ts, claimForSettlement).
drop index payments_to_settle;
create index payments_to_settle on payments (created_at)
  where status in ('accepted', 'settling') and type in ('domestic', 'cross_border');
