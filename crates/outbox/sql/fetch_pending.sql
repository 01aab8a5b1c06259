SELECT o.id, o.event_id, o.event_type, o.aggregate_id, o.payload::text AS payload,
       o.traceparent, o.tracestate, o.occurred_at, o.created_at, o.sequence
FROM outbox o
WHERE o.id = ANY(ARRAY(
    SELECT p.id FROM outbox_pending p
    WHERE p.parked_at IS NULL
      AND (p.next_attempt_at IS NULL OR p.next_attempt_at <= now())
      AND p.id NOT IN (SELECT unnest($2::bigint[]))
      AND NOT EXISTS (
          SELECT 1 FROM outbox_pending e
          WHERE e.aggregate_id = p.aggregate_id AND e.id < p.id
            AND (e.parked_at IS NOT NULL OR e.next_attempt_at > now()))
    ORDER BY p.id LIMIT $1))
ORDER BY o.id
