# shellcheck shell=bash
# The peer phase of scripts/bench-relay (issue 30): Debezium's PostgreSQL connector with its
# outbox event router, in a Kafka Connect worker, drains the same backlog into the same
# broker as the relay, in alternating rounds. Sourced by scripts/bench-relay after its
# helpers (psql_at, recreate_db, create_topic, kafka_tool, start_relay, ...); it defines
# functions only. Once the backlog template database exists: peer_prepare, then peer_round
# per round, then peer_report.
#
# Each side is timed the same way, from its process's start until the topic holds every
# row (EndOffsets.java polls the partitions' end offsets), and its CPU is read from /proc
# for four processes: PostgreSQL (the postmaster and every backend), the broker, and the
# side's own (wallet-hub, or the Connect JVM). The relay drains a fresh copy of the backlog
# template. Debezium needs the rows written after its replication slot exists, so its
# database starts from a copy of the template with the rows moved aside; the worker starts
# once (slot, publication, one primer row published so its WAL position is in the offsets
# file), stops, the rows go back into outbox PEER_TX_ROWS per transaction, and then the
# timed start reads the backlog from the WAL.

DBZ_POM="$ROOT/scripts/kafka/debezium/pom.xml"
DBZ_VERSION="$(sed -n 's:.*<debezium.version>\(.*\)</debezium.version>.*:\1:p' "$DBZ_POM")"
DBZ_LIBS="$CACHE_DIR/kafka-$KAFKA_VERSION/debezium-libs"
PEER_DB="${DB}_peer"
PEER_TMPL="${DB}_peer_template"
PEER_SLOT="${DB}_peer"
CLK_TCK="$(getconf CLK_TCK)"
CONNECT_PID=""
STOPWATCH_PID=""
declare -A RES # the bench's results (scripts/bench-relay declares it too)
# shellcheck disable=SC2154 # pg_hostport: host:port of DATABASE_URL, from scripts/bench-relay
PG_HOSTPORT="$pg_hostport"
# As Kafka's bin/connect-standalone.sh starts a worker (its heap and performance options).
CONNECT_JVM_OPTS=(-Xms256m -Xmx2g -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
  -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.yaml")

# --- set-up -------------------------------------------------------------------------------

pid_on_port() { # the pid of the process listening on 127.0.0.1:PORT, if it is ours to see
  ss -Htlnp "sport = :$1" 2>/dev/null | grep -oE 'pid=[0-9]+' | head -n 1 | cut -d= -f2
}

# peer_wal_level_ok: the server decodes logically, or a message saying why not and the fix.
peer_wal_level_ok() {
  local level
  level="$(psql_at "$ADMIN_URL" -c "SHOW wal_level")"
  [[ "$level" == logical ]] && return 0
  echo "Debezium needs wal_level=logical; scripts/postgres sets it, but the server at $PG_HOSTPORT, started before it did, runs with $level (restart it: scripts/postgres stop && scripts/postgres start)"
  return 1
}

# peer_prepare: jars, the stopwatch, the servers' pids, and PEER_TMPL: the backlog template
# copied, its rows moved into bench_backlog, outbox and queue empty, and bench_peer_fill(n)
# to put them back n rows per transaction.
peer_prepare() {
  same_kafka_release "$DBZ_POM" "$KAFKA_VERSION"
  fetch_maven_jars "$DBZ_POM" "$DBZ_LIBS" "debezium-connector-postgres-$DBZ_VERSION.jar" \
    "Debezium $DBZ_VERSION and Kafka Connect $KAFKA_VERSION"
  need_cmd ss iproute2
  need_cmd javac openjdk-17-jdk-headless
  mkdir -p "$OUT/peer/classes"
  javac -nowarn -cp "$LIBS/*" -d "$OUT/peer/classes" "$D/EndOffsets.java" >"$OUT/peer/javac.log" 2>&1 ||
    die "cannot compile scripts/bench-relay.d/EndOffsets.java (log: $OUT/peer/javac.log)"
  PG_PID="$(pid_on_port "${PG_HOSTPORT##*:}")"
  local first_broker="${KAFKA_BROKERS%%,*}"
  BROKER_PID="$(pid_on_port "${first_broker##*:}")"
  [[ -n "$PG_PID" ]] || warn "peer: no process of ours listens on PostgreSQL's port ${PG_HOSTPORT##*:}; its CPU is not counted"
  [[ -n "$BROKER_PID" ]] || warn "peer: no process of ours listens on the broker's port; its CPU is not counted"
  drop_peer_slots
  info "peer: template $PEER_TMPL (the backlog moved into bench_backlog)"
  recreate_db "$PEER_TMPL" "$DB"
  psql_at "$(url_with_db "$PEER_TMPL")" >/dev/null <<'SQL'
CREATE TABLE bench_backlog AS SELECT * FROM outbox ORDER BY id;
ALTER TABLE bench_backlog ADD PRIMARY KEY (id);
-- Not RESTART IDENTITY: the primer row then takes an id after the backlog's.
TRUNCATE outbox, outbox_pending;
CREATE PROCEDURE bench_peer_fill(per_tx int) LANGUAGE plpgsql AS $$
DECLARE
  lo bigint := (SELECT min(id) FROM bench_backlog);
  hi bigint := (SELECT max(id) FROM bench_backlog);
BEGIN
  WHILE lo <= hi LOOP
    INSERT INTO outbox OVERRIDING SYSTEM VALUE
      SELECT * FROM bench_backlog WHERE id >= lo AND id < lo + per_tx ORDER BY id;
    COMMIT;
    lo := lo + per_tx;
  END LOOP;
END
$$;
VACUUM ANALYZE bench_backlog;
CHECKPOINT;
SQL
}

# drop_peer_slots: the bench's replication slots, which would keep WAL forever (and block
# DROP DATABASE); only inactive ones, i.e. after the worker stopped.
drop_peer_slots() {
  psql_at "$ADMIN_URL" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
    WHERE slot_name = '$PEER_SLOT' AND NOT active" >/dev/null 2>&1 || true
}

# --- the Connect worker -------------------------------------------------------------------

# connect_start NAME TOPIC: a standalone worker running the connector into TOPIC, its
# offsets in $OUT/peer/offsets-NAME... of this round (see peer_debezium); sets CONNECT_PID.
connect_start() {
  local name="$1" topic="$2" dir="$OUT/peer" port t u rest
  port="$(free_port)"
  rest="${DATABASE_URL#*://}"
  u="${rest%%@*}"
  rest="${rest#*@}"
  t="$(<"$D/connect-worker.properties.in")"
  t="${t//@BROKERS@/$KAFKA_BROKERS}"
  t="${t//@OFFSETS@/$dir/offsets-$PEER_ROUND.dat}"
  t="${t//@REST_PORT@/$port}"
  printf '%s\n' "$t" >"$dir/worker.properties"
  t="$(<"$D/debezium-outbox.properties.in")"
  t="${t//@PG_HOST@/${PG_HOSTPORT%:*}}"
  t="${t//@PG_PORT@/${PG_HOSTPORT##*:}}"
  t="${t//@PG_USER@/${u%%:*}}"
  t="${t//@PG_PASSWORD@/${u#*:}}"
  t="${t//@DB@/$PEER_DB}"
  t="${t//@SLOT@/$PEER_SLOT}"
  t="${t//@TOPIC@/$topic}"
  printf '%s\n' "$t" >"$dir/connector.properties"
  CONNECT_REST="http://127.0.0.1:$port"
  mkdir -p "$dir/logs-$name"
  java "${CONNECT_JVM_OPTS[@]}" "-Dkafka.logs.dir=$dir/logs-$name" -cp "$DBZ_LIBS/*" \
    org.apache.kafka.connect.cli.ConnectStandalone "$dir/worker.properties" "$dir/connector.properties" \
    >"$dir/connect-$name.out" 2>&1 9>&- &
  CONNECT_PID=$!
}
connect_stop() {
  stop_pid "$CONNECT_PID" 60
  CONNECT_PID=""
}
connect_task_running() {
  curl -fsS --max-time 2 "$CONNECT_REST/connectors/bench-relay-peer/status" 2>/dev/null |
    jq -e '.tasks[0].state == "RUNNING"' >/dev/null
}
connect_failed() { # why the worker is not working: its exit, or a failed task's trace
  local name="$1"
  show_log_tail "$OUT/peer/connect-$name.out" 15
  grep -hE ' (ERROR|FATAL) ' "$OUT/peer/logs-$name"/*.log 2>/dev/null | tail -n 5 | cut -c1-600 >&2 || true
  die "peer: the Connect worker ($name) $2 (logs: $OUT/peer/logs-$name/, $OUT/peer/connect-$name.out)"
}

# --- timing -------------------------------------------------------------------------------

# stopwatch_start TOPIC TARGET FILE: EndOffsets polling TOPIC every 100 ms into FILE until
# it holds TARGET records; sets STOPWATCH_PID once it knows the partitions.
stopwatch_start() {
  java "${TOOL_JVM_OPTS[@]}" -cp "$OUT/peer/classes:$LIBS/*" EndOffsets "$KAFKA_BROKERS" "$1" "$2" 100 \
    >"$3" 2>"$3.err" 9>&- &
  STOPWATCH_PID=$!
  WAIT_ABORT_IF="! kill -0 $STOPWATCH_PID 2>/dev/null" wait_for 60 grep -q '^ready' "$3" ||
    die "peer: the stopwatch on $1 did not start (log: $3.err)"
}
stopwatch_stop() { # (cleared, so that no later stop can hit a process that reused its pid)
  stop_pid "$STOPWATCH_PID" 5
  STOPWATCH_PID=""
}
exited() { ! kill -0 "$1" 2>/dev/null; }
records_now() { awk 'NF == 2 {n = $2} END {print n + 0}' "$1"; }

# cpu_ticks PID...: "machine_busy ticks..." now: the machine's busy CPU ticks (/proc/stat),
# then per PID ("-" for none) the ticks of that process, its reaped children and its live
# children (for the postmaster: every backend, gone ones included).
cpu_ticks() {
  local busy
  busy="$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat)"
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v pids="$*" -v busy="$busy" '
    BEGIN {n = split(pids, want, " "); for (i = 1; i <= n; i++) idx[want[i]] = i}
    {pid = $1; sub(/^.*\) /, "")   # then $2 ppid, $12 utime, $13 stime, $14 cutime, $15 cstime
     if (pid in idx) t[idx[pid]] += $12 + $13 + $14 + $15
     else if ($2 in idx) t[idx[$2]] += $12 + $13}
    END {printf "%s", busy; for (i = 1; i <= n; i++) printf " %d", t[i] + 0; print ""}'
}

# peer_time NAME SIDE_PID T0_MS BEFORE: waits until the stopwatch has seen BEFORE + ROWS
# records, SIDE_PID exits, or PEER_TIMEOUT passes, reading CPU every 0.5 s into
# $OUT/peer/NAME.cpu (whose first line the caller wrote before the start) and, at the end,
# the CPU each of SIDE_PID's threads used since the start into $OUT/peer/NAME.threads; sets
# P_* (peer.py).
peer_time() {
  local name="$1" pid="$2" t0ms="$3" before="$4" cpu="$OUT/peer/$1.cpu" i=0
  local ticks=("${PG_PID:--}" "${BROKER_PID:--}" "$pid")
  while kill -0 "$STOPWATCH_PID" 2>/dev/null && kill -0 "$pid" 2>/dev/null &&
    (($(now_ms) - t0ms < PEER_TIMEOUT * 1000)); do
    sleep 0.1
    ((++i % 5)) || echo "$(now_ms) $(cpu_ticks "${ticks[@]}")" >>"$cpu"
  done
  echo "$(now_ms) $(cpu_ticks "${ticks[@]}")" >>"$cpu"
  thread_ticks "$pid" >"$OUT/peer/$name.threads"
  stopwatch_stop
  eval "$(python3 "$D/peer.py" "$OUT/peer/$name.watch" "$cpu" "$t0ms" "$before" "$ROWS" "$CLK_TCK")"
}

# thread_profile FILE: thread_ticks of a whole run as CPU µs per event, summed over threads
# whose names differ only in numbers ("GC_Thread#N 3.1 (2)"), the busiest first.
thread_profile() {
  [[ -s "$1" ]] || {
    echo "not sampled"
    return
  }
  awk -v us="$((1000000 / CLK_TCK))" -v rows="$ROWS" '{name = $2; gsub(/[0-9]+/, "N", name); c[name] += $3; n[name]++}
      END {for (k in c) if (c[k] > 0) printf "%s\t%s %.1f%s\n", c[k], k, c[k] * us / rows, (n[k] > 1 ? " (" n[k] ")" : "")}' "$1" |
    sort -rn | head -n 8 | cut -f2 | paste -sd';' | sed 's/;/, /g'
}

# peer_result SIDE ROUND: the P_* of the last run into RES[peer_<round>_<side>_*].
peer_result() {
  local k v key="peer_$2_$1"
  for k in DONE SENT ELAPSED RATE FIRST_S MID; do
    v="P_$k"
    RES[${key}_$k]="${!v}"
  done
  RES[${key}_threads]="$(thread_profile "$OUT/peer/$1-$2.threads")"
  for k in US_TOTAL US_SIDE US_PG US_BROKER US_TOTAL_FROM_FIRST US_SIDE_FROM_FIRST CORES_SIDE CORES_PG CORES_BROKER CORES_MACHINE CORES_OTHERS; do
    v="P_$k"
    RES[${key}_$k]="${!v:-n/a}"
  done
}

# sample_record TOPIC FILE: one record of TOPIC, with its key and headers, for the report's
# comparison of what each side publishes.
sample_record() {
  kafka_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$KAFKA_BROKERS" --topic "$1" \
    --from-beginning --max-messages 1 --timeout-ms 20000 --formatter-property print.key=true \
    --formatter-property print.headers=true --formatter-property print.value=false >"$2" 2>/dev/null || true
}
# verify_event_ids TOPIC N WHAT: every event id of the backlog is on TOPIC (read back whole,
# N records, ce_id headers), else bench_expect fails naming the missing ones.
verify_event_ids() {
  local topic="$1" n="$2" what="$3" f="$OUT/peer/ids-$1"
  kafka_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$KAFKA_BROKERS" --topic "$topic" \
    --from-beginning --max-messages "$n" --timeout-ms 30000 --formatter-property print.headers=true \
    --formatter-property print.value=false 2>/dev/null | grep -oE 'ce_id:[0-9a-f-]{36}' | cut -d: -f2 | sort -u >"$f.topic" || true
  psql_at "$(url_with_db "$DB")" -c "SELECT event_id FROM outbox ORDER BY 1" | sort -u >"$f.db"
  comm -23 "$f.db" "$f.topic" >"$f.missing"
  bench_expect "peer: $what: $(wc -l <"$f.missing") of $ROWS event ids not on $topic (first: $(head -n 3 "$f.missing" | paste -sd' '))" \
    test ! -s "$f.missing"
}

# --- the two sides ----------------------------------------------------------------------------

# peer_relay ROUND: `serve --role relay` (default configuration) drains a fresh copy of the
# backlog template.
peer_relay() {
  local r="$1" topic="$TOPIC_PREFIX-peer-relay-$1" t0ms log="$OUT/peer/relay-$1.log" pending
  info "peer round $r, relay: fresh copy of the $ROWS-row backlog"
  recreate_db "$COPY_DB" "$DB"
  create_topic "$topic"
  stopwatch_start "$topic" "$ROWS" "$OUT/peer/relay-$r.watch"
  t0ms="$(now_ms)"
  echo "$t0ms $(cpu_ticks "${PG_PID:--}" "${BROKER_PID:--}" -)" >"$OUT/peer/relay-$r.cpu"
  start_relay "$COPY_URL" "$topic" "$log"
  peer_time "relay-$r" "$SVC_PID" "$t0ms" 0
  kill -0 "$SVC_PID" 2>/dev/null || die "peer: the relay exited during the drain (log: $log)"
  stop_service
  peer_result relay "$r"
  pending="$(psql_at "$COPY_URL" -c "SELECT count(*) FROM outbox_pending")"
  RES[peer_${r}_relay_check]="$(topic_records "$topic") records on the topic, $pending rows still queued"
  ((r == 1)) && sample_record "$topic" "$OUT/peer/record-relay.txt"
  ((SMOKE)) && verify_event_ids "$topic" "$ROWS" "relay, round $r"
  done_with_topic "$topic"
  info "peer round $r, relay: $P_SENT rows in $P_ELAPSED s = $P_RATE/s (10-90%: $P_MID/s), ${RES[peer_${r}_relay_US_TOTAL]} us CPU per event; ${RES[peer_${r}_relay_check]}"
  bench_expect "peer round $r: the relay did not publish the backlog in ${PEER_TIMEOUT}s ($P_SENT of $ROWS)" test "$P_DONE" = yes
  bench_expect "peer round $r, relay: ${RES[peer_${r}_relay_check]}, expected $ROWS and 0" \
    test "${RES[peer_${r}_relay_check]}" = "$ROWS records on the topic, 0 rows still queued"
}

# peer_debezium ROUND: slot and offsets first, then the backlog, then the timed start.
peer_debezium() {
  local r="$1" topic="$TOPIC_PREFIX-peer-debezium-$1" t0ms fill_t0 url
  url="$(url_with_db "$PEER_DB")"
  PEER_ROUND="$r"
  info "peer round $r, Debezium: replication slot and offsets on an empty outbox"
  drop_peer_slots
  recreate_db "$PEER_DB" "$PEER_TMPL"
  create_topic "$topic"
  rm -f "$OUT/peer/offsets-$r.dat"
  connect_start "setup-$r" "$topic"
  WAIT_ABORT_IF="! kill -0 $CONNECT_PID 2>/dev/null" wait_for 180 connect_task_running ||
    connect_failed "setup-$r" "had no running task within 180 s"
  # One row through the whole path: the slot streams, the router routes, and the offsets
  # file gets a WAL position to resume from (with no record at all it would start anew).
  psql_at "$url" -c "INSERT INTO outbox (event_id, event_type, aggregate_id, payload, occurred_at)
    VALUES (gen_random_uuid(), 'FundsAdded', gen_random_uuid(), '{\"primer\": true}', now())" >/dev/null
  stopwatch_start "$topic" 1 "$OUT/peer/primer-$r.watch"
  WAIT_ABORT_IF="exited $CONNECT_PID" wait_for 120 exited "$STOPWATCH_PID" ||
    connect_failed "setup-$r" "did not publish the primer row within 120 s"
  stopwatch_stop
  connect_stop
  [[ -s "$OUT/peer/offsets-$r.dat" ]] || die "peer: the worker stopped without writing its offsets ($OUT/peer/offsets-$r.dat)"
  info "peer round $r, Debezium: writing the backlog, $PEER_TX_ROWS rows per transaction"
  fill_t0=$SECONDS
  psql_at "$url" -c "SET synchronous_commit = off" -c "CALL bench_peer_fill($PEER_TX_ROWS)" -c "CHECKPOINT" >/dev/null
  RES[peer_${r}_fill_secs]=$((SECONDS - fill_t0))
  RES[peer_${r}_wal]="$(psql_at "$ADMIN_URL" -c "SELECT pg_size_pretty(pg_current_wal_lsn() - restart_lsn) FROM pg_replication_slots WHERE slot_name = '$PEER_SLOT'")"
  info "peer round $r, Debezium: timed start ($(records_now "$OUT/peer/primer-$r.watch") primer record on the topic; slot holds ${RES[peer_${r}_wal]} of WAL)"
  stopwatch_start "$topic" "$((ROWS + 1))" "$OUT/peer/debezium-$r.watch"
  t0ms="$(now_ms)"
  echo "$t0ms $(cpu_ticks "${PG_PID:--}" "${BROKER_PID:--}" -)" >"$OUT/peer/debezium-$r.cpu"
  connect_start "run-$r" "$topic"
  peer_time "debezium-$r" "$CONNECT_PID" "$t0ms" 1
  kill -0 "$CONNECT_PID" 2>/dev/null || connect_failed "run-$r" "exited during the drain"
  connect_stop
  drop_peer_slots
  peer_result debezium "$r"
  RES[peer_${r}_debezium_check]="$(topic_records "$topic") records on the topic (the backlog and the primer)"
  ((r == 1)) && sample_record "$topic" "$OUT/peer/record-debezium.txt"
  ((SMOKE)) && verify_event_ids "$topic" "$((ROWS + 1))" "Debezium, round $r"
  done_with_topic "$topic"
  psql_at "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $PEER_DB WITH (FORCE)" >/dev/null
  info "peer round $r, Debezium: $P_SENT rows in $P_ELAPSED s = $P_RATE/s (10-90%: $P_MID/s), ${RES[peer_${r}_debezium_US_TOTAL]} us CPU per event; ${RES[peer_${r}_debezium_check]}"
  bench_expect "peer round $r: Debezium did not publish the backlog in ${PEER_TIMEOUT}s ($P_SENT of $ROWS)" test "$P_DONE" = yes
  bench_expect "peer round $r, Debezium: ${RES[peer_${r}_debezium_check]}, expected $((ROWS + 1))" \
    test "${RES[peer_${r}_debezium_check]%% *}" = "$((ROWS + 1))"
}

# peer_round ROUND: both sides, the relay first in odd rounds and second in even ones (so
# neither always runs on the warmer machine); the ratios of the round.
peer_round() {
  local r="$1" k
  if ((r % 2)); then
    peer_relay "$r"
    peer_debezium "$r"
  else
    peer_debezium "$r"
    peer_relay "$r"
  fi
  for k in RATE MID; do
    RES[peer_${r}_ratio_$k]="$(awk -v a="${RES[peer_${r}_relay_$k]}" -v b="${RES[peer_${r}_debezium_$k]}" \
      'BEGIN {if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "n/a"}')"
  done
}

# peer_cleanup: for the bench's EXIT trap.
peer_cleanup() {
  [[ -z "$CONNECT_PID" ]] || stop_pid "$CONNECT_PID" 30
  stopwatch_stop
  drop_peer_slots
  psql_at "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $PEER_DB WITH (FORCE)" >/dev/null 2>&1 || true
  psql_at "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $PEER_TMPL WITH (FORCE)" >/dev/null 2>&1 || true
}

# --- report -------------------------------------------------------------------------------

# header_names FILE: the header names of the record sample_record wrote ("a, b, ...").
header_names() {
  [[ -s "$1" ]] || {
    echo "not sampled"
    return
  }
  head -n 1 "$1" | cut -f1 | tr ',' '\n' | cut -d: -f1 | paste -sd',' | sed 's/,/, /g'
}

peer_ratios() { # "1.91, 2.05, ..." of RES[peer_<r>_ratio_$1]
  local r out=""
  # shellcheck disable=SC2153 # PEER_ROUNDS: from scripts/bench-relay
  for ((r = 1; r <= PEER_ROUNDS; r++)); do out+="${out:+, }${RES[peer_${r}_ratio_$1]}"; done
  printf '%s' "$out"
}

# peer_reading: one sentence for the report's generated reading.
peer_reading() {
  local min
  min="$(tr ',' '\n' <<<"$(peer_ratios RATE)" | awk '$1 != "n/a" {if (m == "" || $1 < m) m = $1} END {print m}')"
  printf 'Peer: the relay published the backlog %sx as fast as Debezium %s over whole runs (%sx between 10%% and 90%% of the rows), so the issue-30 goal of >= 2x in every round is %s. ' \
    "$(peer_ratios RATE)" "$DBZ_VERSION" "$(peer_ratios MID)" "$(awk -v m="$min" 'BEGIN {print (m != "" && m >= 2) ? "met" : "not met"}')"
}

peer_row() { # peer_row ROUND SIDE: one row of the table
  local k="peer_$1_$2"
  printf '| %s | %s | **%s** | %s | %s s | %s (%s / %s / %s) | %s (%s) | %s, %s, %s; %s | %s |\n' "$1" "$2" \
    "${RES[${k}_RATE]}" "${RES[${k}_MID]}" "${RES[${k}_FIRST_S]}" \
    "${RES[${k}_US_TOTAL]}" "${RES[${k}_US_SIDE]}" "${RES[${k}_US_PG]}" "${RES[${k}_US_BROKER]}" \
    "${RES[${k}_US_TOTAL_FROM_FIRST]}" "${RES[${k}_US_SIDE_FROM_FIRST]}" \
    "${RES[${k}_CORES_SIDE]}" "${RES[${k}_CORES_PG]}" "${RES[${k}_CORES_BROKER]}" "${RES[${k}_CORES_OTHERS]}" \
    "${RES[peer_$1_$2_check]}; ${RES[${k}_SENT]} rows in ${RES[${k}_ELAPSED]} s"
}

# peer_report: the phase's section of the report (markdown, on stdout).
peer_report() {
  local r fills="" wal=""
  for ((r = 1; r <= PEER_ROUNDS; r++)); do
    fills+="${fills:+, }${RES[peer_${r}_fill_secs]} s"
    wal+="${wal:+, }${RES[peer_${r}_wal]}"
  done
  cat <<MD

### Peer: Debezium $DBZ_VERSION next to the relay, $PEER_ROUNDS round(s) of a $ROWS-row backlog

Both sides publish the backlog of the drain phase ($ROWS FundsAdded rows over $KEYS wallets, payload ~$PAYLOAD_BYTES bytes) into a new 3-partition topic of the same broker ($KAFKA_BROKERS), one side at a time; odd rounds start with the relay, even ones with Debezium. Each run is timed from its process's start until the topic's end offsets (polled every 100 ms, \`scripts/bench-relay.d/EndOffsets.java\`) hold every row; "10-90%" is the rate between the polls that saw 10% and 90% of the rows (start-up and tail left out). CPU is user+system time from /proc: PostgreSQL (the postmaster and every backend, Debezium's walsender included), the broker (pid ${BROKER_PID:-not found}) and the side's own process; "others" is the rest of the machine's busy time in the run (other work on this shared machine, the stopwatch and this script).

- Relay: \`wallet-hub serve --role relay\`, default configuration (relay.batch_size 5000), on a fresh copy of the backlog database; binary: ${WALLET_HUB_BENCH_BIN:-the $BUILD_PROFILE build of this tree}.
- Debezium: Kafka Connect $KAFKA_VERSION standalone worker (file offsets; \`scripts/bench-relay.d/connect-worker.properties.in\`, JVM options as Kafka's bin/connect-standalone.sh sets them: ${CONNECT_JVM_OPTS[*]:0:8}), PostgresConnector over pgoutput with the outbox EventRouter (\`scripts/bench-relay.d/debezium-outbox.properties.in\`), jars from \`scripts/kafka/debezium/pom.xml\`. Its backlog is the same rows, written back into an emptied outbox $PEER_TX_ROWS per transaction after the connector had created its slot, published one primer row and stopped (writing took $fills; the slot then held $wal of WAL), and read from the WAL when the worker starts again: Connect's start-up (JVM, plugins, connector, replication connection) is inside its time, as the relay's start is inside the relay's.

| round | side | rows/s, whole run | rows/s, 10-90% | first record after | CPU µs per event: all three (side / PostgreSQL / broker) | from the first record on: all three (side) | cores: side, PostgreSQL, broker; others | check |
|---|---|---:|---:|---:|---|---|---|---|
MD
  for ((r = 1; r <= PEER_ROUNDS; r++)); do
    peer_row "$r" relay
    peer_row "$r" debezium
    printf '| %s | relay / Debezium | **%sx** | %sx | | | | | |\n' "$r" "${RES[peer_${r}_ratio_RATE]}" "${RES[peer_${r}_ratio_MID]}"
  done
  cat <<MD

Where each side's own CPU went, by thread, over the whole run (µs per event; from /proc/PID/task at the end of the run; names as the kernel keeps them, 15 characters, numbers as N; the JVM's main thread is \`java\`):

MD
  for ((r = 1; r <= PEER_ROUNDS; r++)); do
    echo "- round $r, relay: ${RES[peer_${r}_relay_threads]:-not sampled}; Debezium: ${RES[peer_${r}_debezium_threads]:-not sampled}."
  done
  cat <<MD

What each side publishes: the same value (the payload column's text) and key (aggregate_id), one record per row. Headers of one record of round 1, relay: $(header_names "$OUT/peer/record-relay.txt"); Debezium: $(header_names "$OUT/peer/record-debezium.txt"). Debezium's ce_* come from the row's columns (EventRouter's additional placement) and from constants (InsertHeader), so ce_time is occurred_at in Debezium's text form, the event id is also in its own \`id\` header, ce_type is the event_type column where the relay maps it to its CloudEvents type, and it writes nothing for what the relay computes (ce_subject, ce_dataschema, ce_traceparent); InsertHeader's literal 1.0 reaches the header as the number 1; its records carry Connect's CreateTime, and its producer partitions keys with murmur2 where the relay's librdkafka uses its own default partitioner, so a wallet's events land on one partition on both sides, not necessarily the same one. Delivery: the relay marks rows sent in PostgreSQL after Kafka's ack; Debezium confirms its WAL position to the slot when Connect commits offsets (every 60 s and at stop).
MD
}
