"""Offline checks of the ops files, run by scripts/check-deploy inside its venv.

Each subcommand checks one thing. On success it prints a one-line summary on stdout and
exits 0; on failure it prints one problem per line and exits 1. Paths are relative to the
repository root (the working directory).

  compose-schema SCHEMA COMPOSE      validate COMPOSE against the Compose Specification schema
  consistency MODEL_JSON K8S_YAML    compose model, k8s, Dockerfile, Prometheus vs config/default.toml
  k8s K8S_YAML VERSION...            validate rendered manifests against Kubernetes schemas
  alerts                             alert metadata, runbook anchors, firing + quiet test per alert
  otel                               collector pipelines reference defined components
  dashboard RULES_OUT                dashboard structure; its queries as rules for promtool
  metrics OUT MM2_OUT                metric names queried by alerts + dashboard: the service's
                                     into OUT, MirrorMaker's (kafka_connect_*) into MM2_OUT
  mirror-maker K8S_YAML MODEL_JSON   the KafkaMirrorMaker2 example against Strimzi's CRD schema,
                                     and it and compose's MirrorMaker agree with the local one
  config-docs                        docs/operations.md documents every key of config/default.toml
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import yaml

CONFIG = Path("config/default.toml")
COMPOSE = Path("docker-compose.yml")
DOCKERFILE = Path("Dockerfile")
ALERTS = Path("deploy/prometheus/alerts.yml")
ALERT_TESTS = Path("deploy/prometheus/alerts_test.yml")
PROMETHEUS = Path("deploy/prometheus/prometheus.yml")
RUNBOOK = Path("docs/runbook.md")
OPERATIONS = Path("docs/operations.md")
OTEL = Path("deploy/otel-collector.yaml")
DASHBOARD = Path("deploy/grafana/dashboards/wallet-hub.json")
GRAFANA_DATASOURCES = Path("deploy/grafana/provisioning/datasources/prometheus.yml")
GRAFANA_DASHBOARDS = Path("deploy/grafana/provisioning/dashboards/wallet-hub.yml")
METRIC_CONSTANTS = Path("crates/telemetry/src/metrics.rs")
KMM2_CRD = Path("deploy/k8s/crds/048-Crd-kafkamirrormaker2.yaml")
MM2_METRICS_CONFIG = Path("deploy/k8s/mirror-maker/jmx-exporter.yaml")
MM2_COMPOSE_PROPERTIES = Path("deploy/mirror-maker/mm2.properties")
MM2_NAMES = Path("scripts/kafka/mirror-maker/names.py")
KAFKA_POM = Path("scripts/kafka/pom.xml")
IDENTITY_POLICY = "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
# MirrorMaker's metrics (its JMX exporter), not the service's.
MM2_METRIC_PREFIX = "kafka_connect_"

ENV_PREFIX = "WALLET_HUB__"
# Variables the service reads besides WALLET_HUB__SECTION__KEY (README, "Running it").
OTHER_SERVICE_ENV = {"DATABASE_URL", "DATABASE_MIGRATE_URL", "KAFKA_BROKERS", "RUST_LOG", "WALLET_HUB_CONFIG"}
# Values with a closed set of choices, as documented in config/default.toml.
CHOICES = {
    ("env",): {"development", "production"},
    ("log", "format"): {"text", "json"},
    ("telemetry", "otlp_protocol"): {"grpc", "http"},
    ("kafka", "security_protocol"): {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"},
    ("kafka", "sasl_mechanism"): {"SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"},
}
OTLP_PORTS = {"grpc": 4317, "http": 4318}
IMAGE_NAME = "wallet-hub"
DB_SECRET = ("wallet-hub-db", "url")


class Problems:
    """Collects problems; `finish` prints them or the summary and exits."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def check(self, ok: bool, message: str) -> bool:
        if not ok:
            self.add(message)
        return ok

    def finish(self, summary: str) -> None:
        if self.items:
            for item in self.items:
                print(item)
            sys.exit(1)
        print(summary)
        sys.exit(0)


def load_yaml(path: Path):
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_yaml_all(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


# --- compose-schema ----------------------------------------------------------------------


def cmd_compose_schema(schema_path: str, compose_path: str) -> None:
    from jsonschema import Draft202012Validator

    problems = Problems()
    schema = json.loads(Path(schema_path).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    document = load_yaml(Path(compose_path))
    validator = Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        problems.add(f"{compose_path}: {where}: {error.message}")
    services = len(document.get("services", {})) if isinstance(document, dict) else 0
    problems.finish(f"{services} services valid against the Compose Specification schema")


# --- consistency -------------------------------------------------------------------------


class ServiceConfig:
    """config/default.toml: which WALLET_HUB__SECTION__KEY names exist, and their defaults."""

    def __init__(self, path: Path) -> None:
        with path.open("rb") as f:
            self.tree = tomllib.load(f)

    def lookup(self, env_name: str):
        """(key path, default) for a WALLET_HUB__ variable, or raise KeyError with why."""
        parts = env_name[len(ENV_PREFIX) :].lower().split("__")
        node = self.tree
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                known = ", ".join(sorted(node)) if isinstance(node, dict) else "nothing"
                where = ".".join(parts[:depth]) or "the top level"
                raise KeyError(f"no key '{part}' in {where} of {CONFIG} (known: {known})")
            node = node[part]
        if isinstance(node, dict):
            raise KeyError(f"{'.'.join(parts)} is a table in {CONFIG}, not a key")
        return tuple(parts), node

    def port(self, section: str) -> int:
        return port_of(self.tree[section]["listen"])


def port_of(address: str) -> int:
    return int(str(address).rsplit(":", 1)[1])


def check_value(problems: Problems, where: str, name: str, key: tuple, default, value) -> None:
    value = str(value)
    if isinstance(default, bool):
        ok = value in ("true", "false")
    elif isinstance(default, int):
        ok = re.fullmatch(r"-?\d+", value) is not None
    elif isinstance(default, float):
        ok = re.fullmatch(r"-?\d+(\.\d+)?", value) is not None
    else:
        ok = True
    problems.check(ok, f"{where}: {name}={value!r} is not a {type(default).__name__} like the default {default!r}")
    choices = CHOICES.get(key)
    if choices is not None:
        problems.check(value in choices, f"{where}: {name}={value!r}, expected one of {sorted(choices)}")
    if key == ("telemetry", "sampling_ratio") and ok:
        problems.check(0.0 <= float(value) <= 1.0, f"{where}: {name}={value} is outside 0.0-1.0")


def check_env(problems: Problems, config: ServiceConfig, where: str, env: dict) -> None:
    """Every variable is one the service reads; WALLET_HUB__ ones name a key and fit its type."""
    for name, value in env.items():
        if name.startswith(ENV_PREFIX):
            try:
                key, default = config.lookup(name)
            except KeyError as why:
                problems.add(f"{where}: {name}: {why.args[0]}")
                continue
            if value is not None:
                check_value(problems, where, name, key, default, value)
        else:
            problems.check(
                name in OTHER_SERVICE_ENV,
                f"{where}: {name} is not a variable the service reads "
                f"({ENV_PREFIX}SECTION__KEY or one of {sorted(OTHER_SERVICE_ENV)})",
            )
    api, admin = env.get(f"{ENV_PREFIX}API__LISTEN"), env.get(f"{ENV_PREFIX}ADMIN__LISTEN")
    for name, value, section in (("API", api, "api"), ("ADMIN", admin, "admin")):
        if value is not None:
            problems.check(
                str(value).startswith("0.0.0.0:"),
                f"{where}: {ENV_PREFIX}{name}__LISTEN={value} must listen on 0.0.0.0 in a container",
            )
            problems.check(
                port_of(value) == config.port(section),
                f"{where}: {ENV_PREFIX}{name}__LISTEN={value} does not use the default port "
                f"{config.port(section)} of [{section}] listen in {CONFIG}",
            )
    endpoint = env.get(f"{ENV_PREFIX}TELEMETRY__OTLP_ENDPOINT")
    protocol = env.get(f"{ENV_PREFIX}TELEMETRY__OTLP_PROTOCOL", config.tree["telemetry"]["otlp_protocol"])
    if endpoint and protocol in OTLP_PORTS:
        problems.check(
            urlsplit(str(endpoint)).port == OTLP_PORTS[protocol],
            f"{where}: OTLP endpoint {endpoint} does not use the collector's {protocol} port {OTLP_PORTS[protocol]}",
        )


def wallet_hub_services(model: dict) -> dict:
    """The services that run the service's image (the analytics job's Flink services build
    their own, analytics/Dockerfile, and read other variables)."""
    return {
        name: service
        for name, service in model["services"].items()
        if str(service.get("image", "")).split(":")[0].endswith(IMAGE_NAME)
        or ("build" in service and service["build"].get("dockerfile", "Dockerfile") == "Dockerfile")
    }


def check_compose(problems: Problems, config: ServiceConfig, model: dict) -> None:
    services = model["services"]
    api_port, admin_port = config.port("api"), config.port("admin")

    # Dependencies: targets exist, healthy-waits have health checks, completion-waits end.
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            if not problems.check(dep in services, f"{COMPOSE}: {name} depends on undefined service {dep}"):
                continue
            condition = spec.get("condition", "service_started")
            target = services[dep]
            if condition == "service_healthy":
                problems.check(
                    bool(target.get("healthcheck", {}).get("test")),
                    f"{COMPOSE}: {name} waits for {dep} to be healthy, but {dep} has no healthcheck",
                )
            if condition == "service_completed_successfully":
                problems.check(
                    target.get("restart", "no") == "no",
                    f"{COMPOSE}: {name} waits for {dep} to complete, but {dep} restarts",
                )
        for volume in service.get("volumes") or []:
            if volume.get("type") == "volume":
                problems.check(
                    volume.get("source") in (model.get("volumes") or {}),
                    f"{COMPOSE}: {name} uses undeclared volume {volume.get('source')}",
                )
            elif volume.get("type") == "bind":
                source = Path(volume["source"])
                problems.check(source.exists(), f"{COMPOSE}: {name} mounts {source}, which does not exist")

    for name, service in services.items():
        build = service.get("build")
        if build:
            dockerfile = Path(build["context"]) / build.get("dockerfile", "Dockerfile")
            problems.check(dockerfile.exists(), f"{COMPOSE}: {name} builds from {dockerfile}, which does not exist")

    ours = wallet_hub_services(model)
    problems.check(
        {"migrate", "wallet-hub"} <= set(ours),
        f"{COMPOSE}: expected services 'migrate' and 'wallet-hub' on the {IMAGE_NAME} image, found {sorted(ours)}",
    )
    for name, service in ours.items():
        check_env(problems, config, f"{COMPOSE} service {name}", service.get("environment") or {})
        env = service.get("environment") or {}
        hosts = [("KAFKA_BROKERS", b.rsplit(":", 1)[0]) for b in str(env.get("KAFKA_BROKERS", "")).split(",") if b]
        if env.get("DATABASE_URL"):
            hosts.append(("DATABASE_URL", urlsplit(str(env["DATABASE_URL"])).hostname))
        for variable, host in hosts:
            problems.check(
                host in services,
                f"{COMPOSE} service {name}: {variable} points at {host}, which is not a compose service",
            )

    if "wallet-hub" in ours:
        service = ours["wallet-hub"]
        targets = {int(p["target"]) for p in service.get("ports") or []}
        problems.check(
            {api_port, admin_port} <= targets,
            f"{COMPOSE}: wallet-hub publishes container ports {sorted(targets)}, expected the API "
            f"port {api_port} and the admin port {admin_port} of {CONFIG}",
        )
        test = " ".join(service.get("healthcheck", {}).get("test") or [])
        problems.check(
            f":{admin_port}/health/ready" in test,
            f"{COMPOSE}: wallet-hub healthcheck should probe :{admin_port}/health/ready, is: {test!r}",
        )


def check_dockerfile(problems: Problems, config: ServiceConfig) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    stages = re.split(r"(?im)^FROM\s", text)
    final = stages[-1]
    exposed = {int(p.split("/")[0]) for line in re.findall(r"(?im)^EXPOSE\s+(.+)$", final) for p in line.split()}
    expected = {config.port("api"), config.port("admin")}
    problems.check(exposed == expected, f"{DOCKERFILE}: EXPOSE {sorted(exposed)}, expected {sorted(expected)}")
    env: dict[str, str] = {}
    for block in re.findall(r"(?ims)^ENV\s+((?:[^\n]*\\\n)*[^\n]*)", final):
        for name, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", block.replace("\\\n", " ")):
            env[name] = value
    check_env(problems, config, f"{DOCKERFILE} ENV", env)


def check_prometheus(problems: Problems, config: ServiceConfig) -> None:
    prometheus = load_yaml(PROMETHEUS)
    jobs = {job["job_name"]: job for job in prometheus.get("scrape_configs", [])}
    if not problems.check(IMAGE_NAME in jobs, f"{PROMETHEUS}: no scrape job named {IMAGE_NAME} (the alerts use it)"):
        return
    targets = [t for sc in jobs[IMAGE_NAME].get("static_configs", []) for t in sc.get("targets", [])]
    expected = f"wallet-hub:{config.port('admin')}"
    problems.check(expected in targets, f"{PROMETHEUS}: job {IMAGE_NAME} scrapes {targets}, expected {expected}")


MONITORING_NAMESPACE = "monitoring"


def check_network_policies(problems: Problems, admin_port: int, docs: list[dict]) -> None:
    """Every rule that opens the admin port admits only the monitoring namespace, and some
    policy selecting the pods opens it to that namespace."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    opened = False
    for policy in policies:
        name = policy["metadata"]["name"]
        spec = policy.get("spec") or {}
        for rule in spec.get("ingress") or []:
            ports = [p.get("port") for p in rule.get("ports") or []]
            if ports and not ({"admin", admin_port} & set(ports)):
                continue
            peers = rule.get("from") or []
            only_monitoring = bool(peers) and all(
                set(peer) == {"namespaceSelector"}
                and (peer["namespaceSelector"].get("matchLabels") or {})
                == {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}
                for peer in peers
            )
            problems.check(
                only_monitoring,
                f"k8s NetworkPolicy {name}: a rule opens the admin port ({ports or 'all ports'}) "
                f"to more than the namespace {MONITORING_NAMESPACE}",
            )
            opened = opened or only_monitoring
    problems.check(opened, f"k8s: no NetworkPolicy lets the namespace {MONITORING_NAMESPACE} reach the admin port")


def check_k8s(problems: Problems, config: ServiceConfig, docs: list[dict]) -> None:
    api_port, admin_port = config.port("api"), config.port("admin")
    for secret in (d for d in docs if d["kind"] == "Secret"):
        problems.add(
            f"k8s Secret {secret['metadata']['name']}: credentials come from the installation's "
            "secret manager, never from a file in the repository"
        )
    check_network_policies(problems, admin_port, docs)
    configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
    workloads = [d for d in docs if d["kind"] in ("Deployment", "Job")]
    roles = {}
    for workload in workloads:
        name = workload["metadata"]["name"]
        template = workload["spec"]["template"]
        for container in template["spec"]["containers"]:
            where = f"k8s {workload['kind']} {name}"
            env: dict = {}
            for source in container.get("envFrom") or []:
                ref = (source.get("configMapRef") or {}).get("name")
                if ref is not None and problems.check(
                    ref in configmaps, f"{where}: envFrom ConfigMap {ref} is not rendered"
                ):
                    env.update(configmaps[ref])
            for var in container.get("env") or []:
                env[var["name"]] = var.get("value")
                if var["name"] == "DATABASE_URL":
                    ref = (var.get("valueFrom") or {}).get("secretKeyRef") or {}
                    problems.check(
                        (ref.get("name"), ref.get("key")) == DB_SECRET,
                        f"{where}: DATABASE_URL must come from Secret {DB_SECRET[0]} key {DB_SECRET[1]}",
                    )
            problems.check("DATABASE_URL" in env, f"{where}: no DATABASE_URL")
            check_env(problems, config, where, env)
            args = container.get("args") or []
            if workload["kind"] == "Job":
                problems.check(args == ["migrate"], f"{where}: args {args}, expected ['migrate']")
                continue
            match = args[:2] == ["serve", "--role"] and len(args) == 3
            if problems.check(match, f"{where}: args {args}, expected ['serve', '--role', ROLE]"):
                roles[args[2]] = name
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}
            problems.check(
                ports.get("admin") == admin_port,
                f"{where}: container port 'admin' is {ports.get('admin')}, expected {admin_port}",
            )
            if args[-1:] == ["api"]:
                problems.check(
                    ports.get("http") == api_port,
                    f"{where}: container port 'http' is {ports.get('http')}, expected {api_port}",
                )
            for probe, path in (("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")):
                get = (container.get(probe) or {}).get("httpGet") or {}
                port = ports.get(get.get("port"), get.get("port"))
                problems.check(
                    get.get("path") == path and port == admin_port,
                    f"{where}: {probe} should GET {path} on the admin port {admin_port}, is {get}",
                )
            annotations = template["metadata"].get("annotations") or {}
            problems.check(
                annotations.get("prometheus.io/scrape") == "true"
                and annotations.get("prometheus.io/port") == str(admin_port),
                f"{where}: pod annotations should be prometheus.io/scrape 'true' and prometheus.io/port '{admin_port}'",
            )
            security = container.get("securityContext") or {}
            pod_security = template["spec"].get("securityContext") or {}
            problems.check(
                security.get("readOnlyRootFilesystem") is True
                and (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")) is True,
                f"{where}: needs runAsNonRoot and readOnlyRootFilesystem",
            )
    problems.check(
        set(roles) == {"api", "relay", "consumer"},
        f"k8s: Deployments cover roles {sorted(roles)}, expected api, relay and consumer",
    )
    # Services point at named ports the selected pods have.
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"].get("selector") or {}
        pods = [
            w["spec"]["template"]
            for w in workloads
            if w["kind"] == "Deployment"
            and selector.items() <= (w["spec"]["template"]["metadata"].get("labels") or {}).items()
        ]
        name = service["metadata"]["name"]
        if not problems.check(bool(pods), f"k8s Service {name}: selector {selector} matches no Deployment"):
            continue
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for pod in pods:
                names = {p.get("name") for c in pod["spec"]["containers"] for p in c.get("ports") or []}
                numbers = {p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports") or []}
                problems.check(
                    target in names or target in numbers,
                    f"k8s Service {name}: targetPort {target} is not a port of pods {pod['metadata'].get('labels')}",
                )
    for pdb in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"].get("matchLabels") or {}
        problems.check(
            any(
                selector.items() <= (w["spec"]["template"]["metadata"].get("labels") or {}).items()
                for w in workloads
                if w["kind"] == "Deployment"
            ),
            f"k8s PodDisruptionBudget {pdb['metadata']['name']}: selector {selector} matches no Deployment",
        )


def check_names_in_text(problems: Problems, config: ServiceConfig, label: str, text: str) -> None:
    """Every WALLET_HUB__ name anywhere in the file (variables, interpolations, comments) is a key."""
    names = set(re.findall(rf"\b{ENV_PREFIX}[A-Z0-9_]*[A-Z0-9]", text))
    names.discard(f"{ENV_PREFIX}SECTION__KEY")  # the pattern itself, in comments
    for name in sorted(names):
        try:
            config.lookup(name)
        except KeyError as why:
            problems.add(f"{label}: {name}: {why.args[0]}")


def cmd_consistency(model_json: str, k8s_yaml: str) -> None:
    problems = Problems()
    config = ServiceConfig(CONFIG)
    for section in ("api", "admin"):
        try:
            config.port(section)
        except (KeyError, IndexError, ValueError):
            problems.add(f"{CONFIG}: [{section}] listen is missing or has no port")
            problems.finish("")
    for label, path in (
        (COMPOSE, COMPOSE),
        (DOCKERFILE, DOCKERFILE),
        ("rendered k8s manifests", Path(k8s_yaml)),
    ):
        check_names_in_text(problems, config, str(label), path.read_text(encoding="utf-8"))
    model = json.loads(Path(model_json).read_text(encoding="utf-8"))
    check_compose(problems, config, model)
    check_dockerfile(problems, config)
    check_prometheus(problems, config)
    check_k8s(problems, config, load_yaml_all(Path(k8s_yaml)))
    problems.finish(
        f"compose, k8s, Dockerfile and Prometheus agree with {CONFIG} "
        f"(api port {config.port('api')}, admin port {config.port('admin')})"
    )


# --- k8s ---------------------------------------------------------------------------------


def cmd_k8s(k8s_yaml: str, *versions: str) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import (
        InvalidSchemaError,
        SchemaNotFoundError,
        VersionNotSupportedError,
        all_versions,
    )

    problems = Problems()
    docs = load_yaml_all(Path(k8s_yaml))
    supported = set(all_versions())
    for version in versions:
        if not problems.check(version in supported, f"Kubernetes {version}: no schemas (have {sorted(supported)})"):
            continue
        for doc in docs:
            name = f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}"
            if is_strimzi(doc):
                continue  # a custom resource: `mirror-maker` validates it against its CRD
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(p) for p in error.path)
                problems.add(f"Kubernetes {version}: {name}: {path}: {error.message}")
            except (SchemaNotFoundError, VersionNotSupportedError, InvalidSchemaError) as error:
                problems.add(f"Kubernetes {version}: {name}: {error}")
    kinds = sorted({d["kind"] for d in docs if not is_strimzi(d)})
    problems.finish(
        f"{sum(1 for d in docs if not is_strimzi(d))} manifests ({', '.join(kinds)}) valid for Kubernetes "
        f"{', '.join(versions)}"
    )


def is_strimzi(doc: dict) -> bool:
    return str(doc.get("apiVersion", "")).startswith("kafka.strimzi.io/")


# --- mirror-maker ------------------------------------------------------------------------


def mirrored_names() -> tuple[list[str], str]:
    """The topic patterns and group pattern MirrorMaker replicates (names.py, one place)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mm2_names", MM2_NAMES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.mirrored(CONFIG)


def split_list(value: str) -> list[str]:
    return [part.strip() for part in str(value).split(",") if part.strip()]


def check_mirror_settings(problems: Problems, where: str, settings: dict, topics: list[str], groups: str) -> None:
    """One MirrorMaker's settings (flattened keys) say what the local one does."""
    problems.check(
        split_list(settings.get("topics", "")) == topics,
        f"{where}: topics are {settings.get('topics')!r}, expected {', '.join(topics)!r} ({MM2_NAMES})",
    )
    problems.check(
        str(settings.get("groups", "")).strip() == groups,
        f"{where}: groups are {settings.get('groups')!r}, expected {groups!r} ({MM2_NAMES})",
    )
    for key, expected in (
        ("replication.policy.class", IDENTITY_POLICY),
        ("sync.group.offsets.enabled", "true"),
    ):
        value = str(settings.get(key, "")).strip().lower() if key.endswith("enabled") else settings.get(key)
        problems.check(value == expected, f"{where}: {key} is {settings.get(key)!r}, expected {expected!r}")


def strict(schema):
    """The CRD's schema refusing unknown fields, as the API server's pruning would drop them
    silently: every object type with `properties` and no `additionalProperties` or
    `x-kubernetes-preserve-unknown-fields` gets `additionalProperties: false`."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", KAFKA_POM.read_text(encoding="utf-8"))
    return match.group(1) if match else ""


def cmd_mirror_maker(k8s_yaml: str, model_json: str) -> None:
    import jsonschema

    problems = Problems()
    topics, groups = mirrored_names()
    crd = load_yaml(KMM2_CRD)
    versions = {v["name"]: v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v.get("served")}
    docs = load_yaml_all(Path(k8s_yaml))
    found = [d for d in docs if d.get("kind") == "KafkaMirrorMaker2"]
    problems.check(bool(found), f"{k8s_yaml}: no KafkaMirrorMaker2 in the example overlay")
    configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
    for doc in found:
        where = f"KafkaMirrorMaker2 {doc['metadata']['name']}"
        group, _, version = doc["apiVersion"].partition("/")
        schema = versions.get(version)
        if not problems.check(
            group == crd["spec"]["group"] and schema is not None,
            f"{where}: apiVersion {doc['apiVersion']} is not served by {KMM2_CRD} ({sorted(versions)})",
        ):
            continue
        for error in jsonschema.Draft7Validator(strict(schema)).iter_errors(doc):
            problems.add(f"{where}: {'.'.join(str(p) for p in error.path)}: {error.message}")
        spec = doc.get("spec") or {}
        problems.check(
            spec.get("version") == kafka_version(),
            f"{where}: version {spec.get('version')!r} is not our broker's Kafka {kafka_version()!r} ({KAFKA_POM})",
        )
        for mirror in spec.get("mirrors") or []:
            for connector in ("sourceConnector", "checkpointConnector"):
                config = (mirror.get(connector) or {}).get("config") or {}
                problems.check(
                    config.get("replication.policy.class") == IDENTITY_POLICY,
                    f"{where}: {connector} does not use {IDENTITY_POLICY}",
                )
            checkpoint = (mirror.get("checkpointConnector") or {}).get("config") or {}
            settings = {
                "topics": mirror.get("topicsPattern", ""),
                "groups": mirror.get("groupsPattern", ""),
                "replication.policy.class": checkpoint.get("replication.policy.class"),
                "sync.group.offsets.enabled": checkpoint.get("sync.group.offsets.enabled"),
            }
            check_mirror_settings(problems, where, settings, topics, groups)
        ref = (((spec.get("metricsConfig") or {}).get("valueFrom") or {}).get("configMapKeyRef")) or {}
        data = configmaps.get(ref.get("name"), {})
        problems.check(
            data.get(ref.get("key")) == MM2_METRICS_CONFIG.read_text(encoding="utf-8"),
            f"{where}: metricsConfig names ConfigMap {ref.get('name')!r} key {ref.get('key')!r}, which is not "
            f"{MM2_METRICS_CONFIG} in the render",
        )

    # docker-compose's MirrorMaker: its properties say the same, for its a -> b flow.
    model = json.loads(Path(model_json).read_text(encoding="utf-8"))
    service = model["services"].get("mirror-maker")
    if problems.check(service is not None, f"{COMPOSE}: no mirror-maker service"):
        mounts = {str(v.get("source", "")).rsplit("/", 1)[-1] for v in service.get("volumes") or []}
        for name in (MM2_COMPOSE_PROPERTIES.name, MM2_METRICS_CONFIG.name):
            problems.check(name in mounts, f"{COMPOSE}: mirror-maker does not mount {name}")
        props = {}
        for line in MM2_COMPOSE_PROPERTIES.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                props[key.strip()] = value.strip()
        flows = [k[: -len(".enabled")] for k, v in props.items() if k.endswith(".enabled") and "->" in k and v == "true"]
        if problems.check(len(flows) == 1, f"{MM2_COMPOSE_PROPERTIES}: {len(flows)} enabled flows, expected one"):
            flow = flows[0]
            settings = {
                "topics": props.get(f"{flow}.topics", ""),
                "groups": props.get(f"{flow}.groups", ""),
                "replication.policy.class": props.get("replication.policy.class"),
                "sync.group.offsets.enabled": props.get("sync.group.offsets.enabled"),
            }
            check_mirror_settings(problems, str(MM2_COMPOSE_PROPERTIES), settings, topics, groups)
    problems.finish(
        f"{len(found)} KafkaMirrorMaker2 valid for Strimzi's CRD ({', '.join(sorted(versions))}); it and compose's "
        f"mirror-maker replicate {len(topics)} topic patterns and {groups} with identity names, as scripts/mirror-maker does"
    )


# --- alerts ------------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def cmd_alerts() -> None:
    problems = Problems()
    rules = [r for g in load_yaml(ALERTS)["groups"] for r in g["rules"] if "alert" in r]
    anchors = {
        github_anchor(m.group(1))
        for m in re.finditer(r"(?m)^#{1,6}\s+(.+?)\s*#*\s*$", RUNBOOK.read_text(encoding="utf-8"))
    }
    for rule in rules:
        name = rule["alert"]
        labels, annotations = rule.get("labels") or {}, rule.get("annotations") or {}
        problems.check(
            labels.get("severity") in ("critical", "warning", "info"),
            f"{ALERTS}: {name}: severity label missing or not critical/warning/info",
        )
        for key in ("summary", "description", "runbook"):
            problems.check(bool(annotations.get(key)), f"{ALERTS}: {name}: no {key} annotation")
        runbook = str(annotations.get("runbook", ""))
        path, _, anchor = runbook.partition("#")
        if problems.check(path == str(RUNBOOK), f"{ALERTS}: {name}: runbook {runbook!r} should point into {RUNBOOK}"):
            problems.check(
                anchor in anchors, f"{ALERTS}: {name}: runbook anchor #{anchor} is not a heading of {RUNBOOK}"
            )
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in load_yaml(ALERT_TESTS).get("tests", []):
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {r["alert"] for r in rules}
    for name in sorted(names):
        problems.check(name in firing, f"{ALERT_TESTS}: no test case where {name} fires")
        problems.check(name in quiet, f"{ALERT_TESTS}: no test case where {name} must not fire")
    for name in sorted((firing | quiet) - names):
        problems.add(f"{ALERT_TESTS}: tests alert {name}, which {ALERTS} does not define")
    problems.finish(
        f"{len(rules)} alerts have severity, summary, description, a runbook section and firing + quiet tests"
    )


# --- otel --------------------------------------------------------------------------------


def cmd_otel() -> None:
    problems = Problems()
    config = load_yaml(OTEL)
    service = config.get("service") or {}
    for kind in ("receivers", "processors", "exporters"):
        defined = set(config.get(kind) or {})
        for pipeline, spec in (service.get("pipelines") or {}).items():
            for component in spec.get(kind) or []:
                problems.check(
                    component in defined,
                    f"{OTEL}: pipeline {pipeline} uses {kind[:-1]} {component}, which is not defined",
                )
    for extension in service.get("extensions") or []:
        problems.check(extension in (config.get("extensions") or {}), f"{OTEL}: extension {extension} is not defined")
    protocols = ((config.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}
    for protocol, port in OTLP_PORTS.items():
        endpoint = str((protocols.get(protocol) or {}).get("endpoint", ""))
        problems.check(
            endpoint == f"0.0.0.0:{port}",
            f"{OTEL}: otlp receiver {protocol} should listen on 0.0.0.0:{port}, is {endpoint!r}",
        )
    exporters = config.get("exporters") or {}
    jaeger = [
        e
        for name, e in exporters.items()
        if name.split("/")[0] == "otlp" and (e or {}).get("endpoint") == "jaeger:4317"
    ]
    problems.check(
        len(jaeger) == 1 and (jaeger[0].get("tls") or {}).get("insecure") is True,
        f"{OTEL}: expected one otlp exporter to jaeger:4317 with tls.insecure: true",
    )
    pipelines = service.get("pipelines") or {}
    problems.check("traces" in pipelines, f"{OTEL}: no traces pipeline")
    problems.finish(
        f"collector pipelines {sorted(pipelines)} use only defined components; OTLP in on 4317/4318, out to jaeger:4317"
    )


# --- dashboard ---------------------------------------------------------------------------

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def dashboard_panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel/ref label, expr) for every Prometheus query of the dashboard."""
    return [
        (f"panel {panel.get('id')} ({panel.get('title')}) {target.get('refId')}", target["expr"])
        for panel in dashboard_panels(dashboard)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def cmd_dashboard(rules_out: str) -> None:
    problems = Problems()
    try:
        dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        problems.add(f"{DASHBOARD}: not JSON: {error}")
        problems.finish("")
    problems.check(
        dashboard.get("uid") == "wallet-hub",
        f"{DASHBOARD}: uid is {dashboard.get('uid')!r}, expected 'wallet-hub'",
    )
    problems.check(bool(dashboard.get("title")), f"{DASHBOARD}: no title")
    panels = dashboard_panels(dashboard)
    ids = [p.get("id") for p in panels]
    problems.check(
        len(ids) == len(set(ids)) and None not in ids,
        f"{DASHBOARD}: panel ids must be present and unique: {ids}",
    )
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    datasources = load_yaml(GRAFANA_DATASOURCES).get("datasources", [])
    prometheus_uids = {d.get("uid") for d in datasources if d.get("type") == "prometheus"}
    default = ((variables.get("datasource") or {}).get("current") or {}).get("value")
    problems.check(
        default in prometheus_uids,
        f"{DASHBOARD}: the datasource variable's default {default!r} is not a provisioned Prometheus uid {sorted(prometheus_uids)}",
    )
    for panel in panels:
        if panel.get("type") == "row":
            continue
        where = f"{DASHBOARD}: panel {panel.get('id')} ({panel.get('title')})"
        problems.check(bool(panel.get("targets")), f"{where}: no queries")
        problems.check(set(panel.get("gridPos", {})) >= {"h", "w", "x", "y"}, f"{where}: incomplete gridPos")
        for target in panel.get("targets", []):
            uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
            problems.check(
                uid == "${datasource}" or uid in prometheus_uids,
                f"{where}: datasource {uid!r} is neither ${{datasource}} nor provisioned",
            )
            problems.check(bool(target.get("expr", "").strip()), f"{where}: target {target.get('refId')} has no expr")
    providers = load_yaml(GRAFANA_DASHBOARDS).get("providers", [])
    paths = {(p.get("options") or {}).get("path") for p in providers}
    problems.check(
        "/etc/grafana/dashboards" in paths,
        f"{GRAFANA_DASHBOARDS}: no provider reads /etc/grafana/dashboards (where compose mounts the dashboards)",
    )

    # promtool parses the queries when they are written as recording rules.
    rules = []
    for index, (label, expr) in enumerate(dashboard_queries(dashboard)):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        problems.check("$" not in expr, f"{DASHBOARD}: {label}: unknown Grafana variable in {expr!r}")
        rules.append({"record": f"dashboard:query_{index}", "expr": expr, "labels": {"query": label}})
    Path(rules_out).write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}), encoding="utf-8"
    )
    problems.finish(f"{len(panels)} panels, {len(rules)} queries; uid wallet-hub; provisioning agrees")


# --- metrics -----------------------------------------------------------------------------

PROMQL_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (a small PromQL scanner, enough for our queries)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_KEYWORDS:
            continue
        names.add(name)
    return names


def base_name(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def cmd_metrics(out: str, mm2_out: str) -> None:
    problems = Problems()
    exprs = [str(r["expr"]) for g in load_yaml(ALERTS)["groups"] for r in g["rules"]]
    try:
        exprs += [expr for _, expr in dashboard_queries(json.loads(DASHBOARD.read_text(encoding="utf-8")))]
    except json.JSONDecodeError as error:
        problems.add(f"{DASHBOARD}: not JSON: {error}")
        problems.finish("")
    raw = {n for expr in exprs for n in metric_names(expr)} - {"up"}
    # MirrorMaker's (its JMX exporter): listed apart and whole (its `_count` names are gauges,
    # not histogram parts), checked against a running MirrorMaker by scripts/region-drill, as
    # the service's are by a Rust test.
    mm2_names = {n for n in raw if n.startswith(MM2_METRIC_PREFIX)}
    names = {base_name(n) for n in raw - mm2_names}
    mm2_path = Path(mm2_out)
    mm2_content = "".join(f"{n}\n" for n in sorted(mm2_names))
    if (mm2_path.read_text(encoding="utf-8") if mm2_path.exists() else None) != mm2_content:
        mm2_path.write_text(mm2_content, encoding="utf-8")
    # The Rust side names every metric in one file; a typo here shows up without a running service.
    known = f"all named in {METRIC_CONSTANTS}"
    if METRIC_CONSTANTS.exists():
        exported = set(
            re.findall(r'pub const \w+: &str = "([a-z_:][a-z0-9_:]*)";', METRIC_CONSTANTS.read_text(encoding="utf-8"))
        )
        for name in sorted(names - exported):
            problems.add(
                f"{name} is queried by the alerts or the dashboard but is not a metric name in {METRIC_CONSTANTS}"
            )
    else:
        known = f"not compared: {METRIC_CONSTANTS} is missing"
    path = Path(out)
    content = "".join(f"{n}\n" for n in sorted(names))
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if old != content and not problems.items:
        path.write_text(content, encoding="utf-8")
    state = "unchanged" if old == content else "updated"
    problems.finish(
        f"{len(names)} metric names queried ({known}); {out} {state}; {len(mm2_names)} MirrorMaker names in {mm2_out}"
    )


# --- config-docs -------------------------------------------------------------------------

# Tables whose entries are free-form (librdkafka properties): they are documented by
# mentioning the table, not entry by entry. `[bindings]` is not one: default.toml names
# every binding, and each is documented with its environment variable like any key.
FREE_FORM_TABLES = {("kafka", "producer"), ("kafka", "consumer")}
# Keys that also have a variable of their own, named on the same line as the key.
KEY_ALIASES = {
    ("database", "url"): "DATABASE_URL",
    ("database", "migrate_url"): "DATABASE_MIGRATE_URL",
    ("kafka", "brokers"): "KAFKA_BROKERS",
}


def config_leaves(node: dict, path: tuple = ()):
    """(path, value) of every key, and (path, None) of every free-form table, walking tables."""
    for key, value in node.items():
        here = (*path, key)
        if here in FREE_FORM_TABLES:
            yield here, None
        elif isinstance(value, dict):
            yield from config_leaves(value, here)
        else:
            yield here, value


def env_name(path: tuple) -> str:
    return ENV_PREFIX + "__".join(part.upper() for part in path)


def default_forms(value) -> set[str]:
    """How a default may be written in the doc: `1.0`, `true`, `"text"`, `text` or `["a", "b"]`."""
    if isinstance(value, list):
        return {f"`[{', '.join(json.dumps(item) for item in value)}]`"}
    if isinstance(value, bool):
        return {f"`{str(value).lower()}`"}
    if isinstance(value, str):
        return {f'`"{value}"`'} | ({f"`{value}`"} if value else set())
    return {f"`{value}`"}


def resolve_doc_env(config: ServiceConfig, name: str) -> str | None:
    """None if a WALLET_HUB__ name in the doc is a key (or an entry of a free-form table), else why not."""
    parts = name[len(ENV_PREFIX) :].lower().split("__")
    node = config.tree
    for depth, part in enumerate(parts):
        table = tuple(parts[:depth])
        if table in FREE_FORM_TABLES and isinstance(node, dict):
            entries = {k.lower() for k in node}
            rest = "__".join(parts[depth:])
            # Empty free-form tables take any property; listed ones only their entries.
            if entries and rest not in entries:
                return f"no entry '{rest}' in [{'.'.join(table)}] of {CONFIG} (known, any case: {', '.join(sorted(node))})"
            return None
        if not isinstance(node, dict) or part not in node:
            known = ", ".join(sorted(node)) if isinstance(node, dict) else "nothing"
            return f"no key '{part}' in {'.'.join(parts[:depth]) or 'the top level'} of {CONFIG} (known: {known})"
        node = node[part]
    if isinstance(node, dict):
        return f"{'.'.join(parts)} is a table in {CONFIG}, not a key"
    return None


def cmd_config_docs() -> None:
    problems = Problems()
    config = ServiceConfig(CONFIG)
    if not OPERATIONS.exists():
        problems.add(f"{OPERATIONS} is missing")
        problems.finish("")
    text = OPERATIONS.read_text(encoding="utf-8")
    lines = text.splitlines()
    keys = tables = 0
    for path, value in config_leaves(config.tree):
        dotted = ".".join(path)
        if value is None:
            tables += 1
            problems.check(
                f"[{dotted}]" in text,
                f"{OPERATIONS}: the free-form table [{dotted}] of {CONFIG} is not mentioned",
            )
            continue
        keys += 1
        env = env_name(path)
        alias = KEY_ALIASES.get(path)
        key_forms = (f"`{path[-1]}`", f"`{dotted}`")
        rows = [
            line
            for line in lines
            if re.search(rf"(?<![\w]){re.escape(env)}(?![\w])", line) and any(f in line for f in key_forms)
        ]
        if not rows:
            problems.add(f"{OPERATIONS}: {dotted} is not documented: no line names `{path[-1]}` together with {env}")
            continue
        if alias:
            problems.check(
                any(alias in line for line in rows),
                f"{OPERATIONS}: the line documenting {dotted} does not name {alias} as well",
            )
        forms = default_forms(value)
        problems.check(
            any(form in line for line in rows for form in forms),
            f"{OPERATIONS}: the line documenting {dotted} does not show its default {' or '.join(sorted(forms))} "
            f"from {CONFIG}",
        )
    names = set(re.findall(rf"\b{ENV_PREFIX}[A-Za-z0-9_.\-]*[A-Za-z0-9]", text))
    names.discard(f"{ENV_PREFIX}SECTION__KEY")  # the pattern itself
    for name in sorted(names):
        why = resolve_doc_env(config, name)
        if why:
            problems.add(f"{OPERATIONS}: {name}: {why}")
    problems.finish(
        f"{keys} keys of {CONFIG} documented in {OPERATIONS} with env name and default, "
        f"{tables} free-form tables mentioned; the doc's {len(names)} {ENV_PREFIX} names all exist"
    )


# --- flink (the analytics job, docs/analytics.md) -----------------------------------------

FLINK_DEPLOYMENT = Path("deploy/k8s/analytics/flink-deployment.yaml")
FLINK_SCRIPT = Path("scripts/flink")
FLINK_DOCKERFILE = Path("analytics/Dockerfile")
FLINK_ALERTS = Path("deploy/prometheus/flink-alerts.yml")


def shell_assignment(path: Path, name: str) -> str:
    match = re.search(rf"(?m)^{name}=([^\s#]+)", path.read_text(encoding="utf-8"))
    if not match:
        raise SystemExit(f"{path}: no {name}=")
    return match.group(1)


def cmd_flink_deployment() -> None:
    """The FlinkDeployment (a custom resource, which the Kubernetes schemas do not know):
    its shape as the operator's v1beta1 CRD has it, the versions against scripts/flink and
    analytics/Dockerfile, exactly-once state handling, and its job settings as
    analytics/job.py validates them; and the Flink alerts' runbook sections."""
    sys.path.insert(0, str(Path("analytics").resolve()))
    import job  # analytics/job.py: the settings and their patterns

    problems = Problems()
    version = shell_assignment(FLINK_SCRIPT, "FLINK_VERSION")
    connector = shell_assignment(FLINK_SCRIPT, "CONNECTOR_VERSION")
    docs = load_yaml_all(FLINK_DEPLOYMENT)
    problems.check(len(docs) == 1, f"{FLINK_DEPLOYMENT}: expected one document, got {len(docs)}")
    doc = docs[0]
    where = f"{FLINK_DEPLOYMENT}"
    problems.check(doc.get("apiVersion") == "flink.apache.org/v1beta1", f"{where}: apiVersion is not flink.apache.org/v1beta1")
    problems.check(doc.get("kind") == "FlinkDeployment", f"{where}: kind is not FlinkDeployment")
    spec = doc.get("spec") or {}
    allowed = {"image", "imagePullPolicy", "flinkVersion", "serviceAccount", "flinkConfiguration",
               "jobManager", "taskManager", "podTemplate", "job", "logConfiguration", "ingress",
               "mode", "restartNonce"}
    for key in sorted(set(spec) - allowed):
        problems.add(f"{where}: spec.{key} is not a FlinkDeployment field")
    major_minor = "_".join(version.split(".")[:2])
    problems.check(spec.get("flinkVersion") == f"v{major_minor}", f"{where}: flinkVersion {spec.get('flinkVersion')!r}, scripts/flink runs {version} (v{major_minor})")
    problems.check(str(spec.get("image", "")).endswith(f":{version}"), f"{where}: image {spec.get('image')!r} is not tagged {version}")
    config = {str(k): str(v) for k, v in (spec.get("flinkConfiguration") or {}).items()}
    problems.check(bool(config.get("execution.checkpointing.dir")), f"{where}: no execution.checkpointing.dir (exactly once needs checkpoints that outlive a pod)")
    for part in ("jobManager", "taskManager"):
        resource = (spec.get(part) or {}).get("resource") or {}
        problems.check({"memory", "cpu"} <= set(resource), f"{where}: spec.{part}.resource needs memory and cpu")
    job_spec = spec.get("job") or {}
    problems.check(job_spec.get("jarURI") == f"local:///opt/flink/opt/flink-python-{version}.jar", f"{where}: job.jarURI is not Flink {version}'s flink-python jar")
    problems.check(job_spec.get("entryClass") == "org.apache.flink.client.python.PythonDriver", f"{where}: job.entryClass is not the PythonDriver")
    problems.check(job_spec.get("args") == ["-py", "/opt/analytics/job.py", "run"], f"{where}: job.args do not run /opt/analytics/job.py run")
    problems.check(job_spec.get("upgradeMode") in ("last-state", "savepoint"), f"{where}: job.upgradeMode {job_spec.get('upgradeMode')!r} would drop the job's state on upgrade")
    problems.check(job_spec.get("state") in ("running", "suspended"), f"{where}: job.state {job_spec.get('state')!r}")
    env = {}
    for container in ((spec.get("podTemplate") or {}).get("spec") or {}).get("containers") or []:
        for item in container.get("env") or []:
            env[item["name"]] = str(item.get("value", ""))
    known = {f"WH_ANALYTICS_{name.upper()}" for name in job.SETTINGS}
    for name in sorted(n for n in env if n.startswith("WH_ANALYTICS_")):
        problems.check(name in known, f"{where}: {name} is not a setting of analytics/job.py")
    try:
        values = job.settings(env)
        problems.check(str(job_spec.get("parallelism")) == values["parallelism"], f"{where}: job.parallelism {job_spec.get('parallelism')} differs from WH_ANALYTICS_PARALLELISM {values['parallelism']}")
        job.statements(values)
    except job.SettingError as error:
        problems.add(f"{where}: {error}")
    dockerfile = FLINK_DOCKERFILE.read_text(encoding="utf-8")
    problems.check(f"FROM flink:{version}-java17" in dockerfile, f"{FLINK_DOCKERFILE}: not FROM flink:{version}-java17")
    problems.check(f"ARG CONNECTOR_VERSION={connector}" in dockerfile, f"{FLINK_DOCKERFILE}: CONNECTOR_VERSION is not scripts/flink's {connector}")
    problems.check(f"apache-flink=={version}" in dockerfile, f"{FLINK_DOCKERFILE}: apache-flink is not {version}")
    anchors = {
        github_anchor(m.group(1))
        for m in re.finditer(r"(?m)^#{1,6}\s+(.+?)\s*#*\s*$", RUNBOOK.read_text(encoding="utf-8"))
    }
    rules = [r for g in load_yaml(FLINK_ALERTS)["groups"] for r in g["rules"] if "alert" in r]
    for rule in rules:
        runbook = str((rule.get("annotations") or {}).get("runbook", ""))
        problems.check(runbook.partition("#")[2] in anchors, f"{FLINK_ALERTS}: {rule['alert']}: runbook {runbook!r} is not a heading of {RUNBOOK}")
        problems.check((rule.get("labels") or {}).get("severity") in ("critical", "warning", "info"), f"{FLINK_ALERTS}: {rule['alert']}: severity")
    problems.finish(f"FlinkDeployment for Flink {version} (connector {connector}), {len(env)} job settings valid; {len(rules)} Flink alerts have runbook sections")


COMMANDS = {
    "flink-deployment": cmd_flink_deployment,
    "compose-schema": cmd_compose_schema,
    "consistency": cmd_consistency,
    "k8s": cmd_k8s,
    "alerts": cmd_alerts,
    "otel": cmd_otel,
    "dashboard": cmd_dashboard,
    "metrics": cmd_metrics,
    "config-docs": cmd_config_docs,
    "mirror-maker": cmd_mirror_maker,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(COMMANDS)}}} ARGS...")
    COMMANDS[sys.argv[1]](*sys.argv[2:])
