#!/usr/bin/env python3
"""Samples and summarizes the sustained run of scripts/bench-relay.

    sustained.py sample PSQL DB_URL ADMIN_URL OUT_TSV SECONDS [EVERY]
        every EVERY seconds (10) until SECONDS passed: one TSV line with the elapsed seconds, rows written
        (the outbox id sequence), rows queued, the queue's and the log's size in bytes, the
        queue's dead tuples, and the relay's outbox_publish_latency_seconds buckets
        (cumulative, all topics) from /metrics.
    sustained.py summary OUT_TSV
        a Markdown table per minute, then a line of shell assignments (S_FIRST, S_LAST:
        published/s of the first and last full minute; S_MAXQ: largest queue seen).
"""
import json
import subprocess
import sys
import time
import urllib.request


def psql(psql_bin, url, sql):
    out = subprocess.run([psql_bin, "-X", "-q", "-A", "-t", "-F", "\t", "-d", url, "-c", sql],
                         check=True, capture_output=True, text=True, timeout=30).stdout
    return out.strip().split("\t")


def buckets(admin):
    """{le: cumulative count} of outbox_publish_latency_seconds, summed over topics."""
    text = urllib.request.urlopen(admin + "/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("outbox_publish_latency_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[le] = out.get(le, 0) + float(line.rsplit(" ", 1)[1])
    return out


def sample(psql_bin, url, admin, path, seconds, every):
    t0 = time.monotonic()
    with open(path, "w", encoding="utf-8") as f:
        while True:
            elapsed = time.monotonic() - t0
            row = psql(psql_bin, url,
                       "SELECT (SELECT last_value FROM outbox_id_seq), (SELECT count(*) FROM outbox_pending), "
                       "pg_total_relation_size('outbox_pending'), pg_total_relation_size('outbox'), "
                       "(SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'outbox_pending')")
            try:
                b = buckets(admin)
            except OSError:
                b = {}
            f.write("%.1f\t%s\t%s\n" % (elapsed, "\t".join(row), json.dumps(b)))
            f.flush()
            if elapsed >= seconds:
                return
            time.sleep(max(0.0, every - (time.monotonic() - t0 - elapsed)))


def quantile(delta, q):
    """Upper bound (ms) of the bucket holding quantile q of a bucket-count delta."""
    total = delta.get("+Inf", 0)
    if total <= 0:
        return None
    for le, count in sorted(((k, v) for k, v in delta.items() if k != "+Inf"), key=lambda kv: float(kv[0])):
        if count >= q * total:
            return float(le) * 1000
    return float("inf")


def summary(path):
    rows = []
    for line in open(path, encoding="utf-8"):
        t, written, queued, qsize, lsize, dead, b = line.rstrip("\n").split("\t")
        rows.append((float(t), int(written), int(queued), int(qsize), int(lsize), int(dead or 0), json.loads(b)))
    print("| minute | written/s | published/s | queued at the end | relay commit-to-ack p50 / p99 (bucket bound) | queue table | dead tuples in the queue | outbox (log) |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|")
    rates = []
    maxq = max(r[2] for r in rows)
    by_minute = {}
    for r in rows:
        by_minute.setdefault(int(r[0] // 60), r)  # first sample at or after each minute mark
    marks = sorted(by_minute)
    for a, b in zip(marks, marks[1:]):
        ra, rb = by_minute[a], by_minute[b]
        dt = rb[0] - ra[0]
        written = (rb[1] - ra[1]) / dt
        published = ((rb[1] - rb[2]) - (ra[1] - ra[2])) / dt
        delta = {k: rb[6].get(k, 0) - ra[6].get(k, 0) for k in rb[6]}
        p50, p99 = quantile(delta, 0.5), quantile(delta, 0.99)
        fmt = lambda v: "n/a" if v is None else ("> 60 s" if v == float("inf") else "%g ms" % v)
        rates.append(published)
        print("| %d | %.0f | %.0f | %d | %s / %s | %.1f MB | %d | %.0f MB |" % (
            b, written, published, rb[2], fmt(p50), fmt(p99), rb[3] / 1e6, rb[5], rb[4] / 1e6))
    print("S_FIRST=%.0f S_LAST=%.0f S_MAXQ=%d" % (rates[0] if rates else 0, rates[-1] if rates else 0, maxq))


def main():
    if sys.argv[1] == "sample":
        every = float(sys.argv[7]) if len(sys.argv) > 7 else 10.0
        sample(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]), every)
    elif sys.argv[1] == "summary":
        summary(sys.argv[2])
    else:
        sys.exit("usage: see the docstring")


if __name__ == "__main__":
    main()
