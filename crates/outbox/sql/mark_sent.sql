DELETE FROM outbox_pending WHERE id = ANY($1)
