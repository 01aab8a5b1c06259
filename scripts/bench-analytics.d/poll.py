#!/usr/bin/env python3
"""The delay phase of scripts/bench-analytics: watch GET /v1/analytics/volume, and report.

  poll.py API TOKEN CURRENCY SINCE SEEN_TSV
      every 250 ms, reads the volume of CURRENCY from SINCE's minute on (every page) and
      appends "wall-clock seconds<TAB>minute<TAB>deposit count" to SEEN_TSV whenever a
      minute's count changes; runs until killed.
  poll.py --complete LEDGER_TSV SEEN_TSV SINCE
      exit 0 when every minute of LEDGER_TSV ("minute<TAB>count", the ledger's deposits per
      minute) from SINCE's minute on has been seen with exactly that count.
  poll.py --report LEDGER_TSV SEEN_TSV DEPOSITS_TSV RATE MAX FAILED
      one Markdown table: each deposit of DEPOSITS_TSV ("minute<TAB>commit epoch seconds")
      waited from its commit until its minute was first seen complete; exit 1 when a minute
      never was.
"""
import json
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone


def minute_of(instant: str) -> str:
    at = datetime.fromisoformat(instant.replace(" ", "T")).astimezone(timezone.utc)
    return at.replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def poll(api: str, token: str, currency: str, since: str, seen_path: str) -> None:
    start = minute_of(since)
    last: dict[str, int] = {}
    with open(seen_path, "a", encoding="utf-8") as seen:
        while True:
            cursor = None
            while True:
                query = {"currency": currency, "from": start, "to": "2999-01-01T00:00:00Z", "limit": "200"}
                if cursor:
                    query["cursor"] = cursor
                request = urllib.request.Request(
                    f"{api}/v1/analytics/volume?{urllib.parse.urlencode(query)}",
                    headers={"Authorization": f"Bearer {token}"},
                )
                try:
                    with urllib.request.urlopen(request, timeout=5) as reply:
                        page = json.load(reply)
                except OSError as error:
                    print(f"poll: {error}", file=sys.stderr)
                    break
                now = time.time()
                for item in page["items"]:
                    minute = item["minute"].replace("+00:00", "Z")
                    count = item["deposits"]["count"]
                    if last.get(minute) != count:
                        last[minute] = count
                        seen.write(f"{now:.3f}\t{minute_of(minute)}\t{count}\n")
                        seen.flush()
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            time.sleep(0.25)


def ledger_minutes(path: str) -> dict[str, int]:
    with open(path, encoding="utf-8") as f:
        return {m: int(c) for m, c in (line.rstrip("\n").split("\t") for line in f if line.strip())}


def complete_at(ledger: dict[str, int], seen_path: str) -> dict[str, float]:
    """When each minute was first seen with the ledger's count."""
    first: dict[str, float] = {}
    try:
        with open(seen_path, encoding="utf-8") as f:
            for line in f:
                at, minute, count = line.rstrip("\n").split("\t")
                if ledger.get(minute) == int(count) and minute not in first:
                    first[minute] = float(at)
    except FileNotFoundError:
        pass
    return first


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def main() -> int:
    if sys.argv[1] == "--complete":
        ledger = ledger_minutes(sys.argv[2])
        start = minute_of(sys.argv[4])
        wanted = {m for m in ledger if m >= start}
        return 0 if wanted <= complete_at(ledger, sys.argv[3]).keys() else 1
    if sys.argv[1] == "--report":
        ledger = ledger_minutes(sys.argv[2])
        first = complete_at(ledger, sys.argv[3])
        rate, maximum, failed = sys.argv[5], sys.argv[6], sys.argv[7]
        delays, after_end, missing = [], [], set()
        with open(sys.argv[4], encoding="utf-8") as f:
            for line in f:
                minute, committed = line.rstrip("\n").split("\t")
                if minute not in first:
                    missing.add(minute)
                    continue
                delays.append(first[minute] - float(committed))
        for minute, at in first.items():
            end = datetime.strptime(minute, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp() + 60
            after_end.append(at - end)
        print(f"| commit-to-API delay at {rate} deposits/s (50% of the measured maximum {maximum}/s) | |")
        print("| --- | --- |")
        if delays:
            print(f"| deposits measured | {len(delays)} (requests failed: {failed}) |")
            print(f"| delay p50 / p99 / max, s | {percentile(delays, 50):.1f} / {percentile(delays, 99):.1f} / {max(delays):.1f} |")
            print(f"| a minute's end to its complete volume in the API, median / max, s | "
                  f"{percentile(after_end, 50):.1f} / {max(after_end):.1f} ({len(after_end)} minutes) |")
        if missing or not delays:
            print(f"| minutes never complete in the API | {', '.join(sorted(missing)) or 'no deposit measured'} |")
            return 1
        return 0
    poll(*sys.argv[1:6])
    return 0


if __name__ == "__main__":
    sys.exit(main())
