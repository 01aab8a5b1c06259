#!/usr/bin/env python3
"""Reads every Wallet Hub topic of one Kafka cluster as it fills, for scripts/region-drill.

    observer.py BOOTSTRAP TOPIC_REGEX OUT_FILE

Subscribes (a group of its own, from the earliest offset, never committing) to the topics
matching TOPIC_REGEX, picking up new ones within a second, and appends one line per record
to OUT_FILE:

    topic <TAB> partition <TAB> offset <TAB> ce_id <TAB> record timestamp (ms) <TAB> seen (ms)

The record timestamp is the one the relay's producer set on region a (MirrorMaker 2 keeps
it), so `seen - timestamp` is how long an event took from the relay to a reader of region b:
the replication lag, plus this reader's own fetch wait (fetch.wait.max.ms=10). Runs until
SIGTERM or SIGINT, then flushes and exits 0.
"""
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaError

stop = False


def on_signal(_signum, _frame):
    global stop
    stop = True


def main() -> int:
    bootstrap, regex, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
    if not bootstrap.startswith("127.0.0.1:"):
        print("observer: only 127.0.0.1 brokers", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"region-drill-observer-{int(time.time() * 1000)}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 1000,
            "fetch.wait.max.ms": 10,
            "session.timeout.ms": 10000,
            # The broker of region a may vanish while we read b; b never does.
            "reconnect.backoff.max.ms": 1000,
        }
    )
    consumer.subscribe([regex if regex.startswith("^") else "^" + regex])
    last_flush = time.monotonic()
    with open(out_path, "a", encoding="utf-8") as out:
        while not stop:
            messages = consumer.consume(num_messages=500, timeout=0.2)
            seen = int(time.time() * 1000)
            for m in messages:
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        print(f"observer: {m.error()}", file=sys.stderr)
                    continue
                ce_id = ""
                for key, value in m.headers() or []:
                    if key == "ce_id" and value is not None:
                        ce_id = value.decode("utf-8", "replace")
                        break
                _kind, ts = m.timestamp()
                out.write(f"{m.topic()}\t{m.partition()}\t{m.offset()}\t{ce_id}\t{ts}\t{seen}\n")
            if time.monotonic() - last_flush >= 0.5:
                out.flush()
                last_flush = time.monotonic()
        out.flush()
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
