-- A cancelled batch's items end with it: pending -> cancelled. Until now they stayed pending, to be run by
-- nothing. Those of batches cancelled before move now (without events: the batch's own reported it).
alter table payout_items drop constraint payout_items_status_check;
alter table payout_items add constraint payout_items_status_check
  check (status in ('pending', 'credited', 'accepted', 'settled', 'failed', 'cancelled'));
update payout_items i set status = 'cancelled', updated_at = b.updated_at
  from payout_batches b
 where b.id = i.batch_id and b.status = 'cancelled' and i.status = 'pending';
