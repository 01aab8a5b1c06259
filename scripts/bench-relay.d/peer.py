"""Figures of one timed run of the peer phase of scripts/bench-relay (issue 30).

    peer.py STOPWATCH CPU T0_MS BEFORE ROWS CLK_TCK

STOPWATCH: lines "epoch_ms records" of the topic (scripts/bench-relay.d/EndOffsets.java);
CPU: lines "epoch_ms machine_busy pg broker side" of CPU ticks (cumulative; the first line
is taken just before the side's process started, its side column 0); T0_MS: when the
process was started; BEFORE: records on the topic before the run; ROWS: the backlog.

Prints shell assignments (P_*) for the bench to eval: rates over the whole run (process
start to the last record) and over the middle of it (10% to 90% of the rows: the drain
without start-up and tail), and CPU per event and in cores, per process, over the whole run
and from the first record on.
"""
import sys


def read(path):
    with open(path) as f:
        return [[int(x) for x in line.split()] for line in f if line[:1].isdigit()]


def at_or_after(rows, ms):
    """The first sample taken at or after ms (the last one if none)."""
    for row in rows:
        if row[0] >= ms:
            return row
    return rows[-1]


def main():
    watch_path, cpu_path, t0, before, rows, clk = sys.argv[1:7]
    t0, before, rows, clk = int(t0), int(before), int(rows), int(clk)
    watch = [(ms, n - before) for ms, n in read(watch_path)]
    cpu = read(cpu_path)
    out = {}
    done = [ms for ms, n in watch if n >= rows]
    first = [ms for ms, n in watch if n > 0]
    t_end = done[0] if done else watch[-1][0]
    sent = min(max(n for _, n in watch), rows) if watch else 0
    elapsed = (t_end - t0) / 1000
    out["P_DONE"] = "yes" if done else "no"
    out["P_SENT"] = sent
    out["P_ELAPSED"] = f"{elapsed:.1f}"
    out["P_RATE"] = round(sent / elapsed) if elapsed > 0 else 0
    out["P_FIRST_S"] = f"{(first[0] - t0) / 1000:.1f}" if first else "n/a"
    lo = next(((ms, n) for ms, n in watch if n >= rows * 0.1), None)
    hi = next(((ms, n) for ms, n in watch if n >= rows * 0.9), None)
    if lo and hi and hi[0] > lo[0]:
        out["P_MID"] = round((hi[1] - lo[1]) / ((hi[0] - lo[0]) / 1000))
    else:
        out["P_MID"] = "n/a"
    # CPU: whole run (from the sample before the start) and from the first record on.
    us_per_tick = 1e6 / clk
    names = ["machine", "pg", "broker", "side"]
    end = at_or_after(cpu, t_end)
    windows = {"": (cpu[0], end, elapsed)}
    if first:
        start = at_or_after(cpu, first[0])
        windows["_FROM_FIRST"] = (start, end, (end[0] - start[0]) / 1000)
    for suffix, (a, b, secs) in windows.items():
        ticks = {name: b[i + 1] - a[i + 1] for i, name in enumerate(names)}
        ours = ticks["pg"] + ticks["broker"] + ticks["side"]
        ticks["others"] = max(ticks["machine"] - ours, 0)
        ticks["total"] = ours
        for name, t in ticks.items():
            key = name.upper()
            out[f"P_US_{key}{suffix}"] = f"{t * us_per_tick / rows:.1f}" if rows else "n/a"
            out[f"P_CORES_{key}{suffix}"] = f"{t / clk / secs:.2f}" if secs > 0 else "n/a"
    for key, value in out.items():
        print(f"{key}={value}")


if __name__ == "__main__":
    main()
