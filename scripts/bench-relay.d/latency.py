#!/usr/bin/env python3
"""Per-event latency from the console consumer's output.

    latency.py CONSUMED_FILE FROM_MS TO_MS [--commits COMMITS_FILE] [--trend]

CONSUMED_FILE holds lines `<TimestampType>:<epoch ms>\t<record value>` (ConsoleConsumer
with print.timestamp=true, print.key=false). The value is the event's JSON payload; its
`occurred_at` is when the API request built the event, before its transaction committed.
COMMITS_FILE holds lines `<event_id>\t<epoch ms>`: when the transaction that wrote the
event's outbox row committed (pg_xact_commit_timestamp). Latency = Kafka record timestamp
- that commit time (or - occurred_at without COMMITS_FILE, which then also counts the rest
of the API transaction), for the events whose occurred_at lies in [FROM_MS, TO_MS) (the
measured load window; warm-up events are left out). Percentiles are nearest-rank. Prints shell-readable `KEY=value` lines, or with
--trend one line: the median latency per 4 s of the window ("0-4s 26 ms, 4-8s 30 ms, ...").
"""
import json
import math
import re
import sys
from datetime import datetime

LINE = re.compile(r"^(CreateTime|LogAppendTime|NoTimestampType):(-?\d+)\t(.*)$")


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def main() -> int:
    path, lo, hi = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    rest = sys.argv[4:]
    trend = "--trend" in rest
    commits = None
    if "--commits" in rest:
        commits = {}
        with open(rest[rest.index("--commits") + 1], encoding="utf-8") as f:
            for line in f:
                event_id, _, at = line.strip().partition("\t")
                if at:
                    commits[event_id] = float(at)
    missing = 0
    kinds, lat, total, bad, ids, buckets = {}, [], 0, 0, set(), {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.match(line.rstrip("\n"))
            if not m:
                continue
            total += 1
            try:
                payload = json.loads(m.group(3))
                occurred = datetime.fromisoformat(payload["occurred_at"].replace("Z", "+00:00"))
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            ids.add(payload.get("event_id"))
            occurred_ms = occurred.timestamp() * 1000.0
            if lo <= occurred_ms < hi:
                start_ms = occurred_ms
                if commits is not None:
                    start_ms = commits.get(payload.get("event_id"))
                    if start_ms is None:
                        missing += 1
                        continue
                kinds[m.group(1)] = kinds.get(m.group(1), 0) + 1
                lat.append(int(m.group(2)) - start_ms)
                buckets.setdefault(int((occurred_ms - lo) // 4000), []).append(lat[-1])
    if trend:
        parts = []
        for k in sorted(buckets):
            values = sorted(buckets[k])
            parts.append(f"{4 * k}-{4 * k + 4}s {pct(values, 50):.0f} ms")
        print(", ".join(parts) or "no events")
        return 0
    lat.sort()
    print(f"L_RECORDS={total}")
    print(f"L_DISTINCT={len(ids)}")
    print(f"L_UNPARSED={bad}")
    print(f"L_NO_COMMIT={missing}")
    print("L_FROM=" + ("commit" if commits is not None else "occurred_at"))
    print(f"L_N={len(lat)}")
    print("L_TSTYPE=" + ("+".join(sorted(kinds)) or "none"))
    for name, p in (("P50", 50), ("P90", 90), ("P99", 99), ("P999", 99.9)):
        print(f"L_{name}={pct(lat, p):.1f}")
    print(f"L_MIN={(lat[0] if lat else float('nan')):.1f}")
    print(f"L_MAX={(lat[-1] if lat else float('nan')):.1f}")
    print(f"L_MEAN={(sum(lat) / len(lat) if lat else float('nan')):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
