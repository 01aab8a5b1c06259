#!/usr/bin/env python3
"""Prints one SQL statement of the outbox relay, taken from crates/outbox/src/store.rs.

    relay_sql.py STORE_RS fetch|mark|lock-key

fetch: the query of `fetch_pending` (the relay's batch read), `$1` kept, `$2` (rows in
       flight) an empty array;
mark: the DELETE of `mark_sent`, `$1` kept;
lock-key: the value of RELAY_LOCK_KEY as a decimal integer.

Read from the source at run time so the benchmark runs the relay's SQL as it is now, even
while others edit it. Exits 1 with a message when the source no longer has that shape.
"""
import re
import sys


def rust_string(body: str) -> str:
    """The first string literal in `body`, with Rust's line-continuation escapes applied."""
    m = re.search(r'"((?:[^"\\]|\\.)*)"', body, re.S)
    if not m:
        raise ValueError("no string literal")
    s = m.group(1)
    s = re.sub(r"\\\n\s*", "", s)  # `\` + newline + indentation: removed by rustc
    if "\\" in s:
        raise ValueError("unexpected escape in SQL literal: " + s)
    return " ".join(s.split())


def function_body(src: str, name: str) -> str:
    m = re.search(r"pub async fn " + re.escape(name) + r"\b(.*?)\n}\n", src, re.S)
    if not m:
        raise ValueError("function " + name + " not found")
    return m.group(1)


def main() -> int:
    path, what = sys.argv[1], sys.argv[2]
    src = open(path, encoding="utf-8").read()
    try:
        if what == "fetch":
            body = function_body(src, "fetch_pending")
            sql = rust_string(body[body.index("query_as(") :])
            if not sql.startswith("SELECT o.id") or "FROM outbox_pending" not in sql or "$1" not in sql or "$3" in sql:
                raise ValueError("fetch_pending query has an unexpected shape: " + sql)
            # $2: rows in flight, which the relay excludes; none in a serial batch.
            sql = sql.replace("$2", "'{}'::bigint[]")
        elif what == "mark":
            body = function_body(src, "mark_sent")
            sql = rust_string(body[body.index("query(") :])
            if not sql.startswith("DELETE FROM outbox_pending") or "ANY($1)" not in sql or "$2" in sql:
                raise ValueError("mark_sent query has an unexpected shape: " + sql)
        elif what == "lock-key":
            m = re.search(r"const RELAY_LOCK_KEY: i64 = ([0-9a-fA-Fx_]+);", src)
            if not m:
                raise ValueError("RELAY_LOCK_KEY not found")
            sql = str(int(m.group(1).replace("_", ""), 0))
        else:
            raise ValueError("unknown item " + what)
    except ValueError as e:
        print(f"relay_sql.py: {path}: {e}", file=sys.stderr)
        return 1
    print(sql)
    return 0


if __name__ == "__main__":
    sys.exit(main())
