#!/usr/bin/env python3
"""Per-event latency from the console consumer's output.

    latency.py CONSUMED_FILE FROM_MS TO_MS [--trend]

CONSUMED_FILE holds lines `<TimestampType>:<epoch ms>\t<record value>` (ConsoleConsumer
with print.timestamp=true, print.key=false). The value is the event's JSON payload; its
`occurred_at` is when the API request built the event, just before its transaction
committed. Latency = Kafka record timestamp - occurred_at, for the events whose
occurred_at lies in [FROM_MS, TO_MS) (the measured load window; warm-up events are left
out). Percentiles are nearest-rank. Prints shell-readable `KEY=value` lines, or with
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
    trend = len(sys.argv) > 4 and sys.argv[4] == "--trend"
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
                kinds[m.group(1)] = kinds.get(m.group(1), 0) + 1
                lat.append(int(m.group(2)) - occurred_ms)
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
