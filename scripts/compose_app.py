"""How docker-compose.yml runs one service, for scripts/image-smoke.

  compose_app.py COMPOSE SERVICE env       NAME=VALUE entries, NUL-terminated
  compose_app.py COMPOSE SERVICE command   the command's arguments, NUL-terminated
  compose_app.py COMPOSE SERVICE volumes   the container paths of its named volumes,
                                           NUL-terminated; a bind mount, a read-only or
                                           an undeclared volume is an error
  compose_app.py COMPOSE SERVICE sandbox   fails unless the service runs with a read-only
                                           root, a tmpfs on /tmp, no capabilities and
                                           no-new-privileges (what image-smoke emulates)

Values are interpolated as `docker compose` does with no `.env` file and none of the
caller's variables set, i.e. with the file's own defaults: `${NAME:-default}` and
`${NAME-default}` give the default, `${NAME}` and `$NAME` give "", `$$` gives `$`. The
exception are required variables, the secrets: `${NAME:?message}` and `${NAME?message}` take
NAME from the caller's environment and, when it is unset (or empty, with `:?`), stop with
the message, as compose does. Any other form is an error rather than a guess. Runs with
Debian's python3 and python3-yaml.
"""

from __future__ import annotations

import os
import re
import sys

import yaml

VARIABLE = re.compile(
    r"\$(?:(?P<dollar>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}$]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<other>))"
)


def interpolate(value: str, where: str) -> str:
    def one(match: re.Match) -> str:
        if match["dollar"]:
            return "$"
        if match["braced"] is not None and (match["op"] or "").endswith("?"):
            value = os.environ.get(match["braced"])
            if value is None or (value == "" and match["op"] == ":?"):
                sys.exit(f"{where}: required variable {match['braced']} is missing a value: {match['default']}")
            return value
        if match["braced"] is not None:
            return match["default"] or ""
        if match["bare"] is not None:
            return ""
        sys.exit(f"{where}: unsupported interpolation at {value[match.start():][:20]!r}")

    return VARIABLE.sub(one, value)


def load(compose: str) -> dict:
    with open(compose, encoding="utf-8") as f:
        return yaml.safe_load(f)


def service(model: dict, compose: str, name: str) -> dict:
    services = model.get("services") or {}
    if name not in services:
        sys.exit(f"{compose}: no service {name!r}")
    return services[name]


def environment(svc: dict, where: str) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: interpolate("" if v is None else str(v), f"{where}.{k}") for k, v in env.items()}


def command(svc: dict, where: str) -> list[str]:
    cmd = svc.get("command")
    if not isinstance(cmd, list):
        sys.exit(f"{where}.command: expected a list (exec form), got {cmd!r}")
    return [interpolate(str(arg), f"{where}.command") for arg in cmd]


def volumes(model: dict, svc: dict, where: str) -> list[str]:
    declared = model.get("volumes") or {}
    targets = []
    for entry in svc.get("volumes") or []:
        if isinstance(entry, str):
            parts = interpolate(entry, f"{where}.volumes").split(":")
            if len(parts) not in (2, 3):
                sys.exit(f"{where}.volumes: expected SOURCE:TARGET[:MODE], got {entry!r}")
            if parts[2:] not in ([], ["rw"], ["ro"]):
                sys.exit(f"{where}.volumes: unsupported mode in {entry!r}")
            kind = "bind" if parts[0].startswith((".", "/", "~")) else "volume"
            entry = {"type": kind, "source": parts[0], "target": parts[1], "read_only": parts[2:] == ["ro"]}
        source = str(entry.get("source", ""))
        if entry.get("type") != "volume":
            sys.exit(f"{where}.volumes: only named volumes are supported, got {entry!r}")
        if source not in declared:
            sys.exit(f"{where}.volumes: volume {source!r} is not declared under the top-level volumes")
        if entry.get("read_only"):
            sys.exit(f"{where}.volumes: read-only volume {source!r} is not supported")
        targets.append(interpolate(str(entry["target"]), f"{where}.volumes"))
    return targets


def sandbox(svc: dict, where: str) -> list[str]:
    problems = []
    if svc.get("read_only") is not True:
        problems.append(f"{where}: read_only is not true")
    if "/tmp" not in (svc.get("tmpfs") or []):
        problems.append(f"{where}: no tmpfs on /tmp")
    if "ALL" not in (svc.get("cap_drop") or []) or svc.get("cap_add"):
        problems.append(f"{where}: capabilities are not all dropped")
    if "no-new-privileges:true" not in (svc.get("security_opt") or []):
        problems.append(f"{where}: no-new-privileges is not set")
    if "user" in svc:
        problems.append(f"{where}: sets user {svc['user']!r}; image-smoke runs the image's USER")
    return problems


def main(compose: str, name: str, what: str) -> None:
    model = load(compose)
    svc = service(model, compose, name)
    where = f"{compose}: services.{name}"
    if what == "env":
        items = [f"{k}={v}" for k, v in environment(svc, f"{where}.environment").items()]
    elif what == "command":
        items = command(svc, where)
    elif what == "volumes":
        items = volumes(model, svc, where)
    elif what == "sandbox":
        problems = sandbox(svc, where)
        if problems:
            sys.exit("\n".join(problems))
        return
    else:
        sys.exit(f"unknown request {what!r} (env, command, volumes or sandbox)")
    sys.stdout.write("".join(item + "\0" for item in items))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
