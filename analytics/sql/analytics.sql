-- Wallet Hub's analytics job, in Flink SQL (see docs/analytics.md). analytics/job.py fills
-- in the ${...} settings (each checked there) and submits the INSERTs as one job, so one
-- checkpoint covers the source offsets, the window state and the three sinks' Kafka
-- transactions.
--
-- Statements are separated by a line holding only `;`.

-- The movement topics as the relay writes them: CloudEvents in Kafka binary mode (`ce_*`
-- headers, `data` as the record's value). The value is read raw so that a record that is
-- not JSON, or not a CloudEvent at all, is a row we can judge and count, never a failure.
CREATE TEMPORARY TABLE movements_in (
  `headers` MAP<STRING, BYTES> METADATA FROM 'headers' VIRTUAL,
  `topic` STRING METADATA FROM 'topic' VIRTUAL,
  `kafka_partition` INT METADATA FROM 'partition' VIRTUAL,
  `kafka_offset` BIGINT METADATA FROM 'offset' VIRTUAL,
  `body` STRING,
  -- ce_time is RFC 3339 in UTC (`...Z` or `...+00:00`); anything else is not our event.
  `ce_time` AS CAST(`headers`['ce_time'] AS STRING),
  `parsed_time` AS TRY_CAST(
      REGEXP_EXTRACT(CAST(`headers`['ce_time'] AS STRING), '^([0-9]{4}-[0-9]{2}-[0-9]{2})T[0-9:.]+(Z|\+00:00)$', 1)
      || ' ' ||
      REGEXP_EXTRACT(CAST(`headers`['ce_time'] AS STRING), '^[0-9-]+T([0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?)[0-9]*(Z|\+00:00)$', 1)
      AS TIMESTAMP(3)),
  -- A rowtime may not be NULL: a record without a usable time gets the epoch, is late for
  -- every window, and is counted as rejected below.
  `event_time` AS CAST(COALESCE(
      TRY_CAST(
        REGEXP_EXTRACT(CAST(`headers`['ce_time'] AS STRING), '^([0-9]{4}-[0-9]{2}-[0-9]{2})T[0-9:.]+(Z|\+00:00)$', 1)
        || ' ' ||
        REGEXP_EXTRACT(CAST(`headers`['ce_time'] AS STRING), '^[0-9-]+T([0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?)[0-9]*(Z|\+00:00)$', 1)
        AS TIMESTAMP(3)),
      TIMESTAMP '1970-01-01 00:00:00.000') AS TIMESTAMP(3)),
  -- Allowed lateness: an event up to ${lateness_seconds} s older than the newest one seen
  -- still counts in its window; an older one is dropped (Flink's numLateRecordsDropped).
  WATERMARK FOR `event_time` AS `event_time` - ${lateness_interval}
) WITH (
  'connector' = 'kafka',
  'topic' = '${movement_topics}',
  'properties.bootstrap.servers' = '${brokers}',
  'properties.group.id' = '${group_id}',
  'properties.isolation.level' = 'read_committed',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = 'group-offsets',
  'scan.watermark.idle-timeout' = '${idle_timeout_seconds} s',
  'format' = 'raw'
)
;
-- Each record judged once: `reason` is NULL for a movement we count.
CREATE TEMPORARY VIEW judged AS
SELECT
  `topic`, `kafka_partition`, `kafka_offset`, `event_time`,
  CAST(`headers`['ce_id'] AS STRING) AS ce_id,
  CASE CAST(`headers`['ce_type'] AS STRING)
    WHEN 'io.wallethub.funds.added.v1' THEN 'deposit'
    WHEN 'io.wallethub.funds.withdrawn.v1' THEN 'withdrawal'
    WHEN 'io.wallethub.funds.transferred.v1' THEN 'transfer'
  END AS kind,
  CASE CAST(`headers`['ce_type'] AS STRING)
    WHEN 'io.wallethub.funds.transferred.v1' THEN JSON_VALUE(`body`, '$.from_wallet_id')
    ELSE JSON_VALUE(`body`, '$.wallet_id')
  END AS wallet_id,
  JSON_VALUE(`body`, '$.amount.currency') AS currency,
  JSON_VALUE(`body`, '$.amount.value') AS amount_text,
  CASE
    WHEN `headers` IS NULL
      OR CAST(`headers`['ce_specversion'] AS STRING) IS DISTINCT FROM '1.0'
      OR `headers`['ce_id'] IS NULL
      OR `headers`['ce_type'] IS NULL
      OR `headers`['ce_source'] IS NULL THEN 'not-a-cloudevent'
    WHEN CAST(`headers`['ce_source'] AS STRING) <> '${trusted_source}' THEN 'untrusted-source'
    WHEN CAST(`headers`['ce_type'] AS STRING) NOT IN (
      'io.wallethub.funds.added.v1',
      'io.wallethub.funds.withdrawn.v1',
      'io.wallethub.funds.transferred.v1') THEN 'unknown-type'
    WHEN `parsed_time` IS NULL THEN 'bad-time'
    WHEN `body` IS NULL OR NOT COALESCE(JSON_EXISTS(`body`, '$'), FALSE) THEN 'schema-invalid'
    WHEN JSON_VALUE(`body`, '$.schema_version') IS DISTINCT FROM '1'
      OR NOT COALESCE(REGEXP(JSON_VALUE(`body`, '$.amount.value'), '^[0-9]{1,30}(\.[0-9]{1,4})?$'), FALSE)
      OR NOT COALESCE(REGEXP(JSON_VALUE(`body`, '$.amount.currency'), '^[A-Z]{3}$'), FALSE)
      OR NOT COALESCE(REGEXP(
           CASE CAST(`headers`['ce_type'] AS STRING)
             WHEN 'io.wallethub.funds.transferred.v1' THEN JSON_VALUE(`body`, '$.from_wallet_id')
             ELSE JSON_VALUE(`body`, '$.wallet_id')
           END,
           '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'), FALSE)
      THEN 'schema-invalid'
  END AS reason
FROM movements_in
;
-- Counted movements, each CloudEvent once: the relay may send an event twice (it is
-- at-least-once), the ledger holds it once. Keeping the first row per ce_id on event time
-- stays insert-only and keeps the time attribute; the state of an id lives
-- table.exec.state.ttl (job.py).
CREATE TEMPORARY VIEW movements AS
SELECT ce_id, event_time, kind, wallet_id, currency, amount
FROM (
  SELECT ce_id, event_time, kind, wallet_id, currency,
         CAST(amount_text AS DECIMAL(38, 4)) AS amount,
         ROW_NUMBER() OVER (PARTITION BY ce_id ORDER BY event_time ASC) AS copy
  FROM judged
  WHERE reason IS NULL
)
WHERE copy = 1
;
CREATE TEMPORARY TABLE volume_out (
  `k` STRING,
  `body` STRING,
  `headers` MAP<STRING, BYTES> METADATA FROM 'headers'
) WITH (
  'connector' = 'kafka',
  'topic' = '${volume_topic}',
  'properties.bootstrap.servers' = '${brokers}',
  'properties.transaction.timeout.ms' = '${transaction_timeout_ms}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '${transactional_id_prefix}-volume',
  'key.format' = 'raw',
  'key.fields' = 'k',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
)
;
CREATE TEMPORARY TABLE velocity_out (
  `k` STRING,
  `body` STRING,
  `headers` MAP<STRING, BYTES> METADATA FROM 'headers'
) WITH (
  'connector' = 'kafka',
  'topic' = '${velocity_topic}',
  'properties.bootstrap.servers' = '${brokers}',
  'properties.transaction.timeout.ms' = '${transaction_timeout_ms}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '${transactional_id_prefix}-velocity',
  'key.format' = 'raw',
  'key.fields' = 'k',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
)
;
CREATE TEMPORARY TABLE rejected_out (
  `k` STRING,
  `body` STRING
) WITH (
  'connector' = 'kafka',
  'topic' = '${rejected_topic}',
  'properties.bootstrap.servers' = '${brokers}',
  'properties.transaction.timeout.ms' = '${transaction_timeout_ms}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = '${transactional_id_prefix}-rejected',
  'key.format' = 'raw',
  'key.fields' = 'k',
  'value.format' = 'raw',
  'value.fields-include' = 'EXCEPT_KEY'
)
;
-- Volume: per currency and event-time minute, deposits, withdrawals and transfers counted
-- and summed exactly (DECIMAL(38, 4): every currency's scale fits).
CREATE TEMPORARY VIEW volume AS
SELECT
  window_start, currency,
  SUM(CASE WHEN kind = 'deposit' THEN 1 ELSE 0 END) AS deposits_count,
  CAST(SUM(CASE WHEN kind = 'deposit' THEN amount ELSE CAST(0 AS DECIMAL(38, 4)) END) AS DECIMAL(38, 4)) AS deposits_amount,
  SUM(CASE WHEN kind = 'withdrawal' THEN 1 ELSE 0 END) AS withdrawals_count,
  CAST(SUM(CASE WHEN kind = 'withdrawal' THEN amount ELSE CAST(0 AS DECIMAL(38, 4)) END) AS DECIMAL(38, 4)) AS withdrawals_amount,
  SUM(CASE WHEN kind = 'transfer' THEN 1 ELSE 0 END) AS transfers_count,
  CAST(SUM(CASE WHEN kind = 'transfer' THEN amount ELSE CAST(0 AS DECIMAL(38, 4)) END) AS DECIMAL(38, 4)) AS transfers_amount
FROM TABLE(TUMBLE(TABLE movements, DESCRIPTOR(event_time), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, currency
;
-- Velocity: per wallet, its outgoing movements (withdrawals, transfers out) in a sliding
-- window; a window at or over a limit is "exceeded".
CREATE TEMPORARY VIEW velocity_windows AS
SELECT wallet_id, currency, window_start, window_end, window_time,
       COUNT(*) AS movements, CAST(SUM(amount) AS DECIMAL(38, 4)) AS total
FROM TABLE(HOP(TABLE movements, DESCRIPTOR(event_time),
               ${velocity_slide_interval}, ${velocity_window_interval}))
WHERE kind IN ('withdrawal', 'transfer')
GROUP BY wallet_id, currency, window_start, window_end, window_time
HAVING COUNT(*) >= ${velocity_max_count}
    OR SUM(amount) >= CAST('${velocity_max_amount}' AS DECIMAL(38, 4))
;
-- Once per crossing: an exceeded window whose wallet's previous exceeded window is not the
-- window just before it (one slide earlier), i.e. the wallet was under the limit between.
CREATE TEMPORARY VIEW velocity_crossings AS
SELECT wallet_id, currency, window_start, window_end, movements, total
FROM (
  SELECT wallet_id, currency, window_start, window_end, movements, total,
         LAG(window_end) OVER (PARTITION BY wallet_id ORDER BY window_time) AS previous_end
  FROM velocity_windows
)
WHERE previous_end IS NULL
   OR previous_end < window_end - ${velocity_slide_interval}
;
-- The CloudEvent id is derived from what the event is about (a UUID-shaped MD5 of it), so
-- a replay after a failure writes the same id and the service's inbox takes it once.
CREATE TEMPORARY VIEW volume_events AS
SELECT currency, minute_text,
  CONCAT(SUBSTRING(md5_id FROM 1 FOR 8), '-', SUBSTRING(md5_id FROM 9 FOR 4), '-8',
         SUBSTRING(md5_id FROM 14 FOR 3), '-a', SUBSTRING(md5_id FROM 18 FOR 3), '-',
         SUBSTRING(md5_id FROM 21 FOR 12)) AS event_id,
  deposits_count, deposits_amount, withdrawals_count, withdrawals_amount,
  transfers_count, transfers_amount
FROM (
  SELECT v.*, DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss''Z''') AS minute_text,
         MD5(CONCAT('volume/', currency, '/', DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss''Z'''))) AS md5_id
  FROM volume AS v
)
;
CREATE TEMPORARY VIEW velocity_events AS
SELECT wallet_id, currency, window_start_text, window_end_text, movements, total,
  CONCAT(SUBSTRING(md5_id FROM 1 FOR 8), '-', SUBSTRING(md5_id FROM 9 FOR 4), '-8',
         SUBSTRING(md5_id FROM 14 FOR 3), '-a', SUBSTRING(md5_id FROM 18 FOR 3), '-',
         SUBSTRING(md5_id FROM 21 FOR 12)) AS event_id
FROM (
  SELECT c.*,
         DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss''Z''') AS window_start_text,
         DATE_FORMAT(window_end, 'yyyy-MM-dd''T''HH:mm:ss''Z''') AS window_end_text,
         MD5(CONCAT('velocity/', wallet_id, '/', DATE_FORMAT(window_end, 'yyyy-MM-dd''T''HH:mm:ss''Z'''))) AS md5_id
  FROM velocity_crossings AS c
)
;
INSERT INTO volume_out
SELECT currency,
  JSON_OBJECT(
    KEY 'event_id' VALUE event_id,
    KEY 'occurred_at' VALUE minute_text,
    KEY 'aggregate_id' VALUE event_id,
    KEY 'correlation_id' VALUE 'analytics',
    KEY 'schema_version' VALUE 1,
    KEY 'minute' VALUE minute_text,
    KEY 'currency' VALUE currency,
    KEY 'deposits' VALUE JSON_OBJECT(KEY 'count' VALUE deposits_count, KEY 'amount' VALUE CAST(deposits_amount AS STRING)),
    KEY 'withdrawals' VALUE JSON_OBJECT(KEY 'count' VALUE withdrawals_count, KEY 'amount' VALUE CAST(withdrawals_amount AS STRING)),
    KEY 'transfers' VALUE JSON_OBJECT(KEY 'count' VALUE transfers_count, KEY 'amount' VALUE CAST(transfers_amount AS STRING))
  ),
  MAP[
    'ce_specversion', CAST('1.0' AS BYTES),
    'ce_id', CAST(event_id AS BYTES),
    'ce_source', CAST('${output_source}' AS BYTES),
    'ce_type', CAST('io.wallethub.analytics.volume-computed.v1' AS BYTES),
    'ce_subject', CAST(currency AS BYTES),
    'ce_time', CAST(minute_text AS BYTES),
    'ce_dataschema', CAST('${schema_base}/schemas/io.wallethub.analytics.volume-computed.v1.json' AS BYTES),
    'content-type', CAST('application/json' AS BYTES)
  ]
FROM volume_events
;
INSERT INTO velocity_out
SELECT wallet_id,
  JSON_OBJECT(
    KEY 'event_id' VALUE event_id,
    KEY 'occurred_at' VALUE window_end_text,
    KEY 'aggregate_id' VALUE wallet_id,
    KEY 'correlation_id' VALUE 'analytics',
    KEY 'schema_version' VALUE 1,
    KEY 'wallet_id' VALUE wallet_id,
    KEY 'window_start' VALUE window_start_text,
    KEY 'window_end' VALUE window_end_text,
    KEY 'currency' VALUE currency,
    KEY 'count' VALUE movements,
    KEY 'amount' VALUE CAST(total AS STRING),
    KEY 'max_count' VALUE ${velocity_max_count},
    KEY 'max_amount' VALUE '${velocity_max_amount}'
  ),
  MAP[
    'ce_specversion', CAST('1.0' AS BYTES),
    'ce_id', CAST(event_id AS BYTES),
    'ce_source', CAST('${output_source}' AS BYTES),
    'ce_type', CAST('io.wallethub.wallet.velocity-exceeded.v1' AS BYTES),
    'ce_subject', CAST(wallet_id AS BYTES),
    'ce_time', CAST(window_end_text AS BYTES),
    'ce_dataschema', CAST('${schema_base}/schemas/io.wallethub.wallet.velocity-exceeded.v1.json' AS BYTES),
    'content-type', CAST('application/json' AS BYTES)
  ]
FROM velocity_events
;
-- Skipped records, one JSON object each: why, and where it was read. Counted by Flink's
-- numRecordsOut of this sink, and by the service as it reads them (docs/analytics.md).
INSERT INTO rejected_out
SELECT `topic`,
  JSON_OBJECT(
    KEY 'reason' VALUE reason,
    KEY 'topic' VALUE `topic`,
    KEY 'partition' VALUE `kafka_partition`,
    KEY 'offset' VALUE `kafka_offset`
  )
FROM judged
WHERE reason IS NOT NULL
