#!/usr/bin/env python3
"""What MirrorMaker 2 replicates, from config/default.toml, in one place.

    names.py [CONFIG_TOML]    prints two lines: the topics (a comma-separated regex list)
                              and the consumer groups (one regex)

The topics are every binding's topic and its dead-letter topic
("<topic><consumer.dead_letter_suffix>"); the groups are consumer.group_id and the
per-consumer groups named after it ("<group_id>-activity", crates/wallet-hub/src/topology.rs).
scripts/mirror-maker renders its config with them, and scripts/check_deploy.py checks that
the KafkaMirrorMaker2 example and docker-compose's MirrorMaker config say the same.
"""
import re
import sys
import tomllib
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[3] / "config" / "default.toml"


def escape(name: str) -> str:
    """A topic or group name as a Java regex matching only itself."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ValueError(f"{name!r} is not a Kafka topic or group name of [A-Za-z0-9._-]")
    return name.replace(".", r"\.")


def mirrored(config_path: Path = DEFAULT) -> tuple[list[str], str]:
    with open(config_path, "rb") as f:
        cfg = tomllib.load(f)
    suffix = cfg["consumer"]["dead_letter_suffix"]
    topics = sorted(set(cfg["bindings"].values()))
    patterns = [escape(t) for t in topics] + [escape(t + suffix) for t in topics]
    groups = escape(cfg["consumer"]["group_id"]) + "(-.+)?"
    return patterns, groups


if __name__ == "__main__":
    topics, groups = mirrored(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT)
    print(", ".join(topics))
    print(groups)
