"""Submits Wallet Hub's analytics job (analytics/sql/analytics.sql) to a Flink cluster.

Run by scripts/flink with the venv's Python (PyFlink carries Flink's runtime and its client):

    python analytics/job.py submit   # fill in the settings, submit the INSERTs as one job
    python analytics/job.py ensure   # submit unless a job of that name runs (compose)
    python analytics/job.py run      # the same inside an application cluster (Kubernetes)
    python analytics/job.py print    # print the filled-in statements (for review, docs)
    python analytics/job.py sql-script   # the whole job as one SQL client script (compose,
                                         # the Kubernetes operator's SQL runner)

Settings come from WH_ANALYTICS_* environment variables (see SETTINGS); each is checked
before anything is submitted, so a typo fails here with a clear message, not in the job.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
NAME = re.compile(r"^[A-Za-z0-9._/:-]{1,200}$")
DECIMAL = re.compile(r"^[0-9]{1,30}(\.[0-9]{1,4})?$")
BROKERS = re.compile(r"^[A-Za-z0-9.:,_-]+$")
URL = re.compile(r"^https?://[A-Za-z0-9.:/_-]+$")
INTEGER = re.compile(r"^[0-9]{1,9}$")

# name -> (default, pattern). Every value ends up inside SQL string literals or numbers,
# so each is held to a pattern without quotes.
SETTINGS: dict[str, tuple[str, re.Pattern[str]]] = {
    "brokers": ("127.0.0.1:9092", BROKERS),
    "funds_added_topic": ("funds-added-events", TOPIC),
    "funds_withdrawn_topic": ("funds-withdrawn-events", TOPIC),
    "funds_transferred_topic": ("funds-transferred-events", TOPIC),
    "volume_topic": ("analytics-volume-events", TOPIC),
    "velocity_topic": ("wallet-velocity-events", TOPIC),
    "rejected_topic": ("analytics-rejected-events", TOPIC),
    "group_id": ("wallet-hub-analytics", NAME),
    "transactional_id_prefix": ("wallet-hub-analytics", NAME),
    # The broker caps a transaction's timeout (transaction.max.timeout.ms, 15 min default).
    "transaction_timeout_ms": ("600000", INTEGER),
    "trusted_source": ("/wallet-hub", NAME),
    "output_source": ("/wallet-hub/analytics", NAME),
    "schema_base": ("http://127.0.0.1:8080", URL),
    "lateness_seconds": ("5", INTEGER),
    "idle_timeout_seconds": ("10", INTEGER),
    "velocity_window_seconds": ("300", INTEGER),
    "velocity_slide_seconds": ("60", INTEGER),
    "velocity_max_count": ("10", INTEGER),
    "velocity_max_amount": ("10000", DECIMAL),
    "checkpoint_interval_ms": ("10000", INTEGER),
    "parallelism": ("1", INTEGER),
    "job_name": ("wallet-hub-analytics", NAME),
    # How long the job remembers a CloudEvent id to drop a re-sent copy.
    "dedupe_ttl_hours": ("24", INTEGER),
}


class SettingError(ValueError):
    pass


def settings(environ: dict[str, str]) -> dict[str, str]:
    values = {}
    for name, (default, pattern) in SETTINGS.items():
        value = environ.get(f"WH_ANALYTICS_{name.upper()}", default)
        if not pattern.match(value):
            raise SettingError(
                f"WH_ANALYTICS_{name.upper()}={value!r} does not match {pattern.pattern}"
            )
        values[name] = value
    window = int(values["velocity_window_seconds"])
    slide = int(values["velocity_slide_seconds"])
    if slide <= 0 or window % slide != 0:
        raise SettingError(
            "the velocity window must be a whole number of slides "
            f"(window {window} s, slide {slide} s)"
        )
    for name in ("velocity_window", "velocity_slide", "lateness"):
        values[f"{name}_interval"] = interval(int(values[f"{name}_seconds"]))
    values["movement_topics"] = ";".join(
        values[t]
        for t in ("funds_added_topic", "funds_withdrawn_topic", "funds_transferred_topic")
    )
    return values


def interval(seconds: int) -> str:
    """A SQL interval literal of `seconds` (SECOND alone allows only two digits)."""
    hours, rest = divmod(seconds, 3600)
    return f"INTERVAL '{hours}:{rest // 60:02}:{rest % 60:02}' HOUR TO SECOND"


def statements(values: dict[str, str]) -> list[str]:
    text = (HERE / "sql" / "analytics.sql").read_text()
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise SettingError(f"analytics.sql names an unknown setting ${{{name}}}")
        return values[name]

    # Only ${name}: the SQL's JSON paths start with `$.`.
    filled = re.sub(r"\$\{([a-z_]+)\}", fill, text)
    parts = re.split(r"^;\s*$", filled, flags=re.MULTILINE)
    return [p.strip() for p in parts if strip_comments(p).strip()]


def strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def job_config(values: dict[str, str]) -> dict[str, str]:
    """The job's Flink configuration (besides where it is submitted)."""
    return {
        "pipeline.name": values["job_name"],
        "parallelism.default": values["parallelism"],
        "execution.checkpointing.interval": f"{values['checkpoint_interval_ms']} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "table.local-time-zone": "UTC",
        "table.exec.state.ttl": f"{values['dedupe_ttl_hours']} h",
        "table.exec.source.idle-timeout": f"{values['idle_timeout_seconds']} s",
    }


def sql_script(values: dict[str, str]) -> str:
    """The whole job as one SQL script for Flink's SQL client or the Kubernetes operator's
    SQL runner: SET statements, the DDL, and the INSERTs as one statement set (one job)."""
    lines = [f"SET '{key}' = '{value}';" for key, value in job_config(values).items()]
    inserts = []
    for statement in statements(values):
        if strip_comments(statement).lstrip().upper().startswith("INSERT"):
            inserts.append(statement + ";")
        else:
            lines.append(statement + ";")
    lines.append("EXECUTE STATEMENT SET\nBEGIN\n" + "\n".join(inserts) + "\nEND;")
    return "\n\n".join(lines) + "\n"


def submit(values: dict[str, str], remote: bool = True):
    """Submits the job: to the cluster at WH_FLINK_REST_ADDRESS:WH_FLINK_REST_PORT with the
    connector jar at WH_FLINK_CONNECTOR_JAR_URL (`submit`), or, inside an application
    cluster (Kubernetes, where Flink's PythonDriver runs this file), to the cluster it runs
    in, the connector being in its lib/ (`run`). Returns the TableResult."""
    from pyflink.common import Configuration
    from pyflink.table import EnvironmentSettings, TableEnvironment

    config = Configuration()
    if remote:
        config.set_string("execution.target", "remote")
        config.set_string("rest.address", os.environ.get("WH_FLINK_REST_ADDRESS", "127.0.0.1"))
        config.set_string("rest.port", os.environ.get("WH_FLINK_REST_PORT", "8081"))
        config.set_string("pipeline.jars", os.environ["WH_FLINK_CONNECTOR_JAR_URL"])
    for key, value in job_config(values).items():
        config.set_string(key, value)
    env = TableEnvironment.create(
        EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(config).build()
    )
    statement_set = env.create_statement_set()
    for statement in statements(values):
        if strip_comments(statement).lstrip().upper().startswith("INSERT"):
            statement_set.add_insert_sql(statement)
        else:
            env.execute_sql(statement)
    return statement_set.execute()


def running_job(name: str) -> str:
    """The id of a job named `name` that runs (or is about to) on the cluster, if any."""
    import json
    import urllib.request

    address = os.environ.get("WH_FLINK_REST_ADDRESS", "127.0.0.1")
    port = os.environ.get("WH_FLINK_REST_PORT", "8081")
    with urllib.request.urlopen(f"http://{address}:{port}/jobs/overview", timeout=30) as reply:
        jobs = json.load(reply).get("jobs", [])
    alive = ("RUNNING", "CREATED", "RESTARTING", "INITIALIZING", "RECONCILING")
    return next((j["jid"] for j in jobs if j["name"] == name and j["state"] in alive), "")


def job_id(result) -> str:
    job = result.get_job_client()
    return str(job.get_job_id()) if job is not None else ""


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "submit"
    try:
        values = settings(dict(os.environ))
    except SettingError as error:
        print(f"[analytics] ERROR: {error}", file=sys.stderr)
        return 2
    if command == "print":
        print("\n;\n".join(statements(values)))
        return 0
    if command == "sql-script":
        print(sql_script(values), end="")
        return 0
    if command == "submit":
        print(job_id(submit(values)))
        return 0
    if command == "ensure":
        running = running_job(values["job_name"])
        if running:
            print(running)
        else:
            print(job_id(submit(values)))
        return 0
    if command == "run":
        submit(values, remote=False).wait()
        return 0
    print(f"[analytics] ERROR: unknown command {command!r} (submit | ensure | run | print | sql-script)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
