-- An endpoint's delivery log filtered by status (`GET …/deliveries?status=failed`): the log's index is by
-- endpoint alone, so a page of the few failed ones read the endpoint's every delivery. Newest first, for
-- the page's cursor.
create index webhook_deliveries_log_status on webhook_deliveries (endpoint_id, status, id);
