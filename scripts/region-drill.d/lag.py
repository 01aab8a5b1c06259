#!/usr/bin/env python3
"""Replication lag percentiles from observer.py's output, for scripts/region-drill.

    lag.py RECORDS_FILE FROM_MS TO_MS

Takes the records whose timestamp lies in [FROM_MS, TO_MS) (the steady load while region a
was up: MirrorMaker copied them) and prints shell-readable lines
LAG_N, LAG_P50, LAG_P99, LAG_MAX (ms; nearest-rank percentiles) and MIRRORED_RATE (records/s on b in
that window). Records seen twice (a re-send) count once, at their first sighting.
"""
import math
import sys


def pct(values, p):
    if not values:
        return -1
    return values[max(1, math.ceil(p / 100.0 * len(values))) - 1]


def main() -> int:
    path, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    first = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 6 or not parts[3]:
                continue
            ce_id, ts, seen = parts[3], int(parts[4]), int(parts[5])
            if lo <= ts < hi and ce_id not in first:
                first[ce_id] = seen - ts
    lags = sorted(first.values())
    secs = max(1e-9, (hi - lo) / 1000.0)
    print(f"LAG_N={len(lags)}")
    print(f"LAG_P50={pct(lags, 50)}")
    print(f"LAG_P99={pct(lags, 99)}")
    print(f"LAG_MAX={lags[-1] if lags else -1}")
    print(f"MIRRORED_RATE={len(lags) / secs:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
