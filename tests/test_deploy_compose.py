"""docker-compose.yml, Dockerfile, .dockerignore and .env.example: the deployment a port runs.

Docker cannot run where the tests run, so the files are checked the way Compose and Docker would
read them, without running them:

* the Compose file, interpolated as Compose does (with .env.example, and with nothing set), is
  valid against the Compose Specification's JSON schema (the copy check-jsonschema vendors);
* every `${VAR}` is documented in .env.example with the same default, and nothing secret is in
  the file;
* every bind mount is a path of this repository, every state directory a named volume;
* every command run in the project's image is a real command line of the project (parsed by
  its own argparse parser), and the workers, Prometheus targets, health checks and published
  ports agree on host names and port numbers;
* Kafka's KRaft listeners are consistent, Prometheus and Grafana get the project's own config;
* the image runs as a non-root user on the Python the project is tested with, and holds the
  compiled fold (native/), built into a wheel in a stage with Rust that stays out of the image.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from crossing_monitor.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"

PROJECT_IMAGE_VAR = "CROSSING_MONITOR_IMAGE"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|CREDENTIAL")
# What must be given in .env: a placeholder stands in for it here.
REQUIRED_PLACEHOLDER = "placeholder-for-the-test"
LONG_RUNNING_RESTART = {"always", "unless-stopped", "on-failure"}


# ---- reading the files as Compose does -----------------------------------------------------

_REF = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<escaped>\$)|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.S)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blank lines aside); every other line is an error."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(\S*)", line)
        assert match, f"{path.name}:{number}: not a plain KEY=value line: {line!r}"
        assert match.group(1) not in values, f"{path.name}:{number}: {match.group(1)} given twice"
        values[match.group(1)] = match.group(2)
    return values


def references(value: str) -> Iterator[tuple[str, str | None, str | None]]:
    """(name, operator, argument) of every `${...}` in a string."""
    for match in _REF.finditer(value):
        if match.group("escaped"):
            continue
        assert match.group("bare") is None, f"write ${{{match.group('bare')}}}, not ${match.group('bare')}: {value!r}"
        braced = _BRACED.match(match.group("braced"))
        assert braced, f"not a Compose variable reference: {match.group(0)!r}"
        yield braced.group("name"), braced.group("op"), braced.group("arg")


def interpolate_str(value: str, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        braced = _BRACED.match(match.group("braced") or "")
        assert braced, f"not a Compose variable reference: {match.group(0)!r}"
        name, op, arg = braced.group("name"), braced.group("op"), braced.group("arg")
        current = env.get(name)
        if op == ":-":
            return current if current else arg
        if op == "-":
            return current if current is not None else arg
        if op in (":?", "?"):
            if current is None or (op == ":?" and not current):
                raise LookupError(f"{name}: {arg}")
            return current
        if op == ":+":
            return arg if current else ""
        if op == "+":
            return arg if current is not None else ""
        return current or ""

    return _REF.sub(substitute, value)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """The model with every string value interpolated (Compose does not interpolate keys)."""
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if isinstance(node, str):
        return interpolate_str(node, env)
    return node


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)
    elif isinstance(node, str):
        yield node


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


def _required(raw: dict[str, Any]) -> dict[str, str]:
    return {name: REQUIRED_PLACEHOLDER for s in strings(raw) for name, op, _ in references(s) if op in (":?", "?")}


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    """The model with nothing set but what is required: every default as written."""
    return interpolate(raw, _required(raw))


@pytest.fixture(scope="module")
def compose_env(raw: dict[str, Any], env_example: dict[str, str]) -> dict[str, Any]:
    """The model with .env.example copied to .env, as the README says (required values filled in)."""
    env = {k: v for k, v in env_example.items() if v}  # empty = unset
    return interpolate(raw, {**_required(raw), **env})


def services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return model["services"]


def is_project_image(raw_service: dict[str, Any]) -> bool:
    return PROJECT_IMAGE_VAR in str(raw_service.get("image", ""))


def project_services(raw: dict[str, Any], model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services(model).items() if is_project_image(services(raw)[name])}


def option(command: list[str], flag: str) -> str:
    assert flag in command, f"{flag} missing from {command}"
    return command[command.index(flag) + 1]


def flag_value(args: list[str], flag: str) -> str:
    """The value of --flag=value in a list of arguments."""
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(flag + "=")]
    return value


def volume_mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Every volume of a service in the long form: type, source, target, read_only."""
    mounts = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            mounts.append({"read_only": False, **entry})
            continue
        parts = entry.split(":")
        source, target, mode = (parts + [""])[:3] if len(parts) > 1 else (None, parts[0], "")
        kind = "bind" if source and source.startswith((".", "/", "~")) else "volume"
        mounts.append({"type": kind, "source": source, "target": target, "read_only": "ro" in mode.split(",")})
    return mounts


def _mount_at(service: dict[str, Any], container_path: str, kind: str) -> tuple[dict[str, Any], PurePosixPath] | None:
    """The mount of `kind` (bind or volume) that holds container_path, and the path inside it."""
    path = PurePosixPath(container_path)
    for mount in volume_mounts(service):
        target = PurePosixPath(mount["target"])
        if mount["type"] == kind and (path == target or target in path.parents):
            return mount, path.relative_to(target)
    return None


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository path a bind mount puts at container_path, or None if none does."""
    found = _mount_at(service, container_path, "bind")
    return None if found is None else (COMPOSE_FILE.parent / found[0]["source"] / found[1]).resolve()


def named_volume_for(service: dict[str, Any], container_path: str) -> str | None:
    found = _mount_at(service, container_path, "volume")
    return None if found is None else found[0]["source"]


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of every published port (short syntax)."""
    result = []
    for entry in service.get("ports", []):
        assert isinstance(entry, str), f"use the short syntax HOST_IP:HOST_PORT:CONTAINER_PORT: {entry!r}"
        match = re.fullmatch(r"(?P<ip>[0-9.]+|\[[0-9a-f:]+\]):(?P<host>\d+):(?P<container>\d+)(?:/tcp)?", entry)
        assert match, f"a published port names its host address, host port and container port: {entry!r}"
        result.append((match.group("ip"), int(match.group("host")), int(match.group("container"))))
    return result


def workers(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services(model).items() if s.get("command", [None])[0] == "worker"}


def kafka_env(model: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in services(model)["kafka"]["environment"].items()}


def listeners(spec: str) -> dict[str, tuple[str, int]]:
    """'PLAINTEXT://kafka:9092,EXTERNAL://:9094' -> {name: (host, port)}."""
    found = {}
    for item in spec.split(","):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        found[name] = (host, int(port))
    return found


# ---- the Compose Specification ---------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    """The Compose Specification schema as check-jsonschema vendors it (read without importing its CLI)."""
    spec = importlib.util.find_spec("check_jsonschema")
    if spec is None or spec.origin is None:
        pytest.fail("check-jsonschema is not installed: pip install -e '.[test]'", pytrace=False)
    path = Path(spec.origin).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("variant", ["defaults", "env_example"])
def test_valid_against_the_compose_specification(variant: str, compose, compose_env):
    import jsonschema

    schema = compose_schema()
    assert schema.get("title") == "Compose Specification"
    validator = jsonschema.Draft7Validator(schema)
    model = compose if variant == "defaults" else compose_env
    errors = sorted(validator.iter_errors(model), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_catches_mistakes(compose):
    """The schema is strict where it matters: a misspelt key is an error, not ignored."""
    import jsonschema

    broken = json.loads(json.dumps(compose))
    broken["services"]["worker-1"]["healthcheck"]["intervall"] = "10s"
    broken["services"]["grafana"]["depends_on"]["prometheus"]["condition"] = "service_ready"
    validator = jsonschema.Draft7Validator(compose_schema())
    messages = [e.message for e in validator.iter_errors(broken)]
    assert any("intervall" in m for m in messages) and any("service_ready" in m for m in messages), messages


# ---- variables and secrets -------------------------------------------------------------------


def test_every_variable_is_documented_in_env_example(raw, env_example):
    used = {name for s in strings(raw) for name, _, _ in references(s)}
    assert used, "docker-compose.yml uses no variables?"
    assert sorted(used - set(env_example)) == [], "used in docker-compose.yml, missing from .env.example"
    assert sorted(set(env_example) - used) == [], "in .env.example, but docker-compose.yml never uses it"


def test_env_example_gives_the_defaults_of_the_compose_file(raw, env_example):
    for s in strings(raw):
        for name, op, arg in references(s):
            if op == ":-":
                assert env_example[name] == arg, (
                    f"{name}: .env.example says {env_example[name]!r}, the default is {arg!r}"
                )
            elif op in (":?", "?"):
                assert env_example[name] == "", f"{name} is required: .env.example must leave it empty"
            else:
                assert op is None or op == "-", f"${{{name}{op}...}}: use :- defaults or :? for required values"
                assert op is not None, f"${{{name}}} has no default: write ${{{name}:-...}} or ${{{name}:?...}}"


def test_no_secret_in_the_compose_file(raw, env_example):
    for name, service in services(raw).items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                refs = list(references(str(value)))
                assert len(refs) == 1 and str(value).startswith("${") and str(value).endswith("}"), (
                    f"{name}: {key} must come from a variable, not be written in docker-compose.yml"
                )
                (_, op, arg) = refs[0]
                assert op in (":?", "?") or not arg, f"{name}: {key} must not have a default value"
    for key, value in env_example.items():
        if SECRET_NAME.search(key):
            assert value == "", f".env.example: {key} is a secret and must be left empty"
    assert "GF_SECURITY_ADMIN_PASSWORD" in services(raw)["grafana"]["environment"]


def test_every_default_works_without_an_env_file(raw):
    """Only the secrets are required: `docker compose config` with no .env fails on them alone."""
    with pytest.raises(LookupError, match="GRAFANA_ADMIN_PASSWORD"):
        interpolate(raw, {})
    assert set(_required(raw)) == {"GRAFANA_ADMIN_PASSWORD"}


# ---- files the Compose file reads from the repository ------------------------------------------


def test_bind_mounts_are_paths_of_this_repository(compose):
    binds = 0
    for name, service in services(compose).items():
        for mount in volume_mounts(service):
            if mount["type"] != "bind":
                assert mount["source"] in compose["volumes"], f"{name}: volume {mount['source']} is not declared"
                continue
            binds += 1
            source = (COMPOSE_FILE.parent / mount["source"]).resolve()
            assert mount["source"].startswith("./"), f"{name}: bind mounts are relative to the repository"
            assert REPO in source.parents, f"{name}: {mount['source']} is outside the repository"
            assert source.exists(), f"{name}: {mount['source']} does not exist in the repository"
            assert mount["read_only"], f"{name}: configuration is mounted read-only ({mount['source']})"
    assert binds >= 4


def test_build_context_and_configs_exist(raw, compose):
    for name, service in project_services(raw, compose).items():
        build = service["build"]
        assert (COMPOSE_FILE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name
    for name, config in compose.get("configs", {}).items():
        assert "content" in config or (COMPOSE_FILE.parent / config["file"]).exists(), name


def test_state_lives_in_named_volumes(compose):
    svc = services(compose)
    declared = set(compose["volumes"])
    assert named_volume_for(svc["kafka"], kafka_env(compose)["KAFKA_LOG_DIRS"]) in declared
    tsdb = flag_value(svc["prometheus"]["command"], "--storage.tsdb.path")
    assert named_volume_for(svc["prometheus"], tsdb) in declared
    assert (
        named_volume_for(svc["alertmanager"], flag_value(svc["alertmanager"]["command"], "--storage.path")) in declared
    )
    assert named_volume_for(svc["grafana"], "/var/lib/grafana") in declared
    volumes = [named_volume_for(w, option(w["command"], "--data-dir")) for w in workers(compose).values()]
    assert None not in volumes and len(set(volumes)) == len(volumes), "each worker has a data volume of its own"


# ---- the project's image ---------------------------------------------------------------------


def _project_packages() -> list[str]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject["tool"]["setuptools"]["packages"]


def test_project_services_share_one_image_and_build(raw, compose):
    found = project_services(raw, compose)
    assert {"worker-1", "worker-2", "simulator"} <= set(found)
    images = {(s["image"], json.dumps(s["build"], sort_keys=True), s["pull_policy"]) for s in found.values()}
    assert len(images) == 1, images
    assert next(iter(images))[2] == "build", "by default the project's image is built here, never pulled by name"


def test_every_command_in_the_project_image_is_a_real_command_line(raw, compose):
    """No entrypoint: the image's `crossing-monitor`, so the command must parse with its own parser."""
    parsed = {}
    for name, service in project_services(raw, compose).items():
        if "entrypoint" in service:
            continue
        command = service["command"]
        assert isinstance(command, list) and all(isinstance(a, str) for a in command), f"{name}: exec form"
        try:
            args = build_parser().parse_args(command)
        except SystemExit:
            pytest.fail(f"{name}: `crossing-monitor {' '.join(command)}` does not parse", pytrace=False)
        module, _, func = args.handler.partition(":")
        assert callable(getattr(importlib.import_module(module), func)), f"{name}: {args.handler}"
        parsed[name] = args
    assert sorted(a.command for a in parsed.values()) == ["simulate", "worker", "worker"]
    sim = parsed["simulator"]
    assert sim.out is None and sim.days == 0 and sim.start == "now", "the simulator publishes live, without end"
    assert sim.speed == "1"


def test_the_other_entry_points_are_project_modules(raw, compose, monkeypatch: pytest.MonkeyPatch):
    """A service that runs `python -m MODULE` runs a module of this project, with arguments it takes."""
    import dashboards.webhook

    started = []

    class FakeReceiver:
        def __init__(self, host: str, port: int, out: Any) -> None:
            started.append((host, port))
            self.url = f"http://{host}:{port}"
            self.server = self

        def serve_forever(self) -> None:
            pass

        def server_close(self) -> None:
            pass

    monkeypatch.setattr(dashboards.webhook, "WebhookReceiver", FakeReceiver)
    others = {n: s for n, s in project_services(raw, compose).items() if "entrypoint" in s}
    assert set(others) == {"alert-webhook"}
    webhook = others["alert-webhook"]
    assert webhook["entrypoint"][:2] == ["python", "-m"]
    module = webhook["entrypoint"][2]
    assert module.rpartition(".")[0] in _project_packages(), f"{module} is not a module of this project"
    assert module == "dashboards.webhook"
    assert dashboards.webhook.main(webhook["command"]) == 0
    # ... listening where alertmanager.yml delivers, inside Alertmanager's network namespace.
    alertmanager = yaml.safe_load((REPO / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    urls = {h["url"] for r in alertmanager["receivers"] for h in r.get("webhook_configs", [])}
    assert urls and {(urlsplit(u).hostname, urlsplit(u).port) for u in urls} == set(started)
    assert webhook["network_mode"] == "service:alertmanager"


# ---- workers, Prometheus, Grafana: the same names and ports everywhere --------------------------


def test_two_workers_that_can_reach_each_other(compose):
    found = workers(compose)
    assert sorted(found) == ["worker-1", "worker-2"]
    ports, data_dirs = set(), set()
    for name, service in found.items():
        command = service["command"]
        host, port = option(command, "--web-host"), int(option(command, "--web-port"))
        # A worker advertises http://<web-host>:<web-port> to its group: peers fetch its ports there.
        assert host == service["hostname"] == name, f"{name}: --web-host must be the name the others resolve"
        assert [c for _, _, c in published(service)] == [port], f"{name}: publishes its web port"
        assert service["healthcheck"]["test"][-1] == f"http://{host}:{port}/healthz"
        ports.add(port)
        data_dirs.add(option(command, "--data-dir"))
        assert service["environment"]["CROSSING_MONITOR_BOOTSTRAP"] == "kafka:9092"
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert service["stop_grace_period"], f"{name}: time to write a last checkpoint on stop"
    assert len(ports) == 2 and len(data_dirs) == 2, "each worker has its own web port and data directory"


def test_workers_reach_the_bundled_broker(compose):
    advertised = listeners(kafka_env(compose)["KAFKA_ADVERTISED_LISTENERS"])
    host, port = advertised[kafka_env(compose)["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    clients = 0
    for name, service in services(compose).items():
        bootstrap = (service.get("environment") or {}).get("CROSSING_MONITOR_BOOTSTRAP")
        if bootstrap is not None:
            clients += 1
            assert bootstrap == f"{host}:{port}", f"{name}: bootstrap {bootstrap} is not a listener of kafka"
    assert clients == 3, "both workers and the simulator"


def test_worker_settings_and_kafka_security_variables_reach_every_kafka_client(raw, compose):
    from crossing_monitor.kafka.security import ENV, KafkaSecurity

    for name, service in project_services(raw, compose).items():
        if name == "alert-webhook":
            continue
        environment = {k: str(v) for k, v in service["environment"].items()}
        assert set(ENV.values()) <= set(environment), f"{name}: misses Kafka security variables"
        assert KafkaSecurity.from_env(environment) == KafkaSecurity(), "the bundled broker speaks PLAINTEXT"
        assert environment["TOPIC_REPLICATION_FACTOR"] == "1", "one broker: Faust's topics with one replica"


def test_prometheus_scrapes_the_workers_with_the_projects_config(compose):
    shipped = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    svc = services(compose)["prometheus"]
    config_file = host_path(svc, flag_value(svc["command"], "--config.file"))
    assert config_file == PROMETHEUS_DIR / "prometheus.compose.yml"
    ours = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    # Everything but addresses is the shipped config: the same rules files, jobs and intervals.
    assert ours["global"] == shipped["global"] and ours["rule_files"] == shipped["rule_files"]
    for rule_file in ours["rule_files"]:
        assert (config_file.parent / rule_file).is_file()
    assert [j["job_name"] for j in ours["scrape_configs"]] == [j["job_name"] for j in shipped["scrape_configs"]]
    jobs = {j["job_name"]: j for j in ours["scrape_configs"]}
    shipped_worker_job = next(j for j in shipped["scrape_configs"] if j["job_name"] == "crossing-worker")
    assert jobs["crossing-worker"]["metrics_path"] == shipped_worker_job["metrics_path"]
    assert jobs["crossing-worker"]["file_sd_configs"] == shipped_worker_job["file_sd_configs"]
    # ... pointed at the workers this Compose file runs, and at its Alertmanager.
    (static,) = jobs["crossing-worker"]["static_configs"]
    expected = {
        f"{option(w['command'], '--web-host')}:{option(w['command'], '--web-port')}" for w in workers(compose).values()
    }
    assert set(static["targets"]) == expected
    am_port = flag_value(services(compose)["alertmanager"]["command"], "--web.listen-address").rpartition(":")[2]
    assert ours["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [f"alertmanager:{am_port}"]
    prom_port = flag_value(svc["command"], "--web.listen-address").rpartition(":")[2]
    assert jobs["prometheus"]["static_configs"][0]["targets"] == [f"localhost:{prom_port}"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_accepts_the_compose_prometheus_config():
    result = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS_DIR / "prometheus.compose.yml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool not installed (Debian package prometheus-alertmanager)"
)
def test_amtool_accepts_the_mounted_alertmanager_config(compose):
    svc = services(compose)["alertmanager"]
    path = host_path(svc, flag_value(svc["command"], "--config.file"))
    assert path == REPO / "deploy" / "alertmanager" / "alertmanager.yml"
    result = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_gets_the_projects_data_source_and_dashboards(compose):
    from dashboards.push import datasource_body

    grafana = services(compose)["grafana"]
    env = grafana["environment"]
    # Dashboards: the provider file of deploy/grafana, reading the committed JSON from where it is mounted.
    provider_file = host_path(grafana, "/etc/grafana/provisioning/dashboards/crossing-monitor.yml")
    assert provider_file == REPO / "deploy" / "grafana" / "provisioning" / "dashboards" / "crossing-monitor.yml"
    (provider,) = yaml.safe_load(provider_file.read_text(encoding="utf-8"))["providers"]
    assert provider["options"]["path"] == "${CROSSING_MONITOR_DASHBOARDS}"
    assert host_path(grafana, env["CROSSING_MONITOR_DASHBOARDS"]) == REPO / "dashboards" / "json"
    # The wall display is the home dashboard.
    home = host_path(grafana, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home == REPO / "dashboards" / "json" / "wall.json" and home.is_file()
    # The data source: the shipped one, with Prometheus's address inside Compose.
    (mount,) = grafana["configs"]
    assert mount["target"].startswith("/etc/grafana/provisioning/datasources/")
    content = yaml.safe_load(compose["configs"][mount["source"]]["content"])
    (ours,) = content["datasources"]
    shipped_file = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "crossing-monitor.yml"
    (shipped,) = yaml.safe_load(shipped_file.read_text(encoding="utf-8"))["datasources"]
    prom_port = flag_value(services(compose)["prometheus"]["command"], "--web.listen-address").rpartition(":")[2]
    assert ours == {**shipped, "url": f"http://prometheus:{prom_port}"}
    pushed = datasource_body(ours["url"])
    assert {k: ours[k] for k in pushed} == pushed
    uids = {p["datasource"]["uid"] for p in json.loads(home.read_text())["panels"] if p.get("datasource")}
    assert uids == {ours["uid"]}
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == REQUIRED_PLACEHOLDER
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"


# ---- running: health, restarts, ordering, ports ------------------------------------------------


def test_every_service_has_a_health_check(compose):
    for name, service in services(compose).items():
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name}: no health check"
        test = check["test"]
        assert isinstance(test, list) and test[0] == "CMD", f"{name}: exec-form health check"
        for key in ("interval", "timeout", "retries", "start_period"):
            assert key in check, f"{name}: healthcheck.{key}"
        if test[1:3] == ["python", "-c"]:
            compile(test[3], f"<{name} healthcheck>", "exec")


def test_health_checks_ask_the_right_endpoint(compose):
    svc = services(compose)

    def url_of(name: str) -> str:
        (url,) = [a for a in svc[name]["healthcheck"]["test"] if a.startswith("http://")]
        return url

    prom_port = flag_value(svc["prometheus"]["command"], "--web.listen-address").rpartition(":")[2]
    am_port = flag_value(svc["alertmanager"]["command"], "--web.listen-address").rpartition(":")[2]
    assert url_of("prometheus") == f"http://localhost:{prom_port}/-/healthy"
    assert url_of("alertmanager") == f"http://localhost:{am_port}/-/healthy"
    assert url_of("grafana") == "http://localhost:3000/api/health"
    kafka = svc["kafka"]["healthcheck"]["test"]
    assert kafka[1] == "/opt/kafka/bin/kafka-broker-api-versions.sh"
    host, port = listeners(kafka_env(compose)["KAFKA_ADVERTISED_LISTENERS"])["PLAINTEXT"]
    assert option(kafka, "--bootstrap-server") == f"{host}:{port}"
    webhook = svc["alert-webhook"]
    assert f"('127.0.0.1', {option(webhook['command'], '--port')})" in webhook["healthcheck"]["test"][-1]


def test_restart_policies(compose):
    for name, service in services(compose).items():
        assert service.get("restart") in LONG_RUNNING_RESTART, f"{name}: restart policy"


def test_start_order_waits_for_health_where_it_matters(compose):
    svc = services(compose)
    for name, service in svc.items():
        for target, dependency in (service.get("depends_on") or {}).items():
            assert target in svc, f"{name} depends on unknown {target}"
            assert dependency["condition"] == "service_healthy", f"{name} waits for {target} to be healthy"
            assert "healthcheck" in svc[target]
    for name in ("worker-1", "worker-2", "simulator"):
        assert "kafka" in svc[name]["depends_on"], f"{name} starts after Kafka answers"
    assert "prometheus" in svc["grafana"]["depends_on"]
    assert "alertmanager" in svc["alert-webhook"]["depends_on"]


def test_published_ports_are_the_servers_ports_on_loopback_by_default(compose):
    svc = services(compose)
    prom_port = int(flag_value(svc["prometheus"]["command"], "--web.listen-address").rpartition(":")[2])
    am_port = int(flag_value(svc["alertmanager"]["command"], "--web.listen-address").rpartition(":")[2])
    external = listeners(kafka_env(compose)["KAFKA_LISTENERS"])["EXTERNAL"][1]
    expected = {
        "kafka": [external],
        "worker-1": [int(option(svc["worker-1"]["command"], "--web-port"))],
        "worker-2": [int(option(svc["worker-2"]["command"], "--web-port"))],
        "prometheus": [prom_port],
        "alertmanager": [am_port],
        "grafana": [3000],
        "simulator": [],
        "alert-webhook": [],
    }
    assert set(expected) == set(svc)
    host_ports = []
    for name, service in svc.items():
        ports = published(service)
        assert [c for _, _, c in ports] == expected[name], f"{name} publishes {ports}"
        for ip, host_port, _ in ports:
            assert ip == "127.0.0.1", f"{name}: published on {ip} unless .env says otherwise"
            host_ports.append(host_port)
    assert len(host_ports) == len(set(host_ports)), "two services on one host port"
    # Kafka's internal and controller listeners stay inside Compose.
    internal = {p for n, (_, p) in listeners(kafka_env(compose)["KAFKA_LISTENERS"]).items() if n != "EXTERNAL"}
    assert not internal & {c for _, _, c in published(svc["kafka"])}


def test_kafka_external_listener_advertises_the_published_port(raw, env_example):
    env = {**{k: v for k, v in env_example.items() if v}, **_required(raw)}
    env |= {
        "KAFKA_EXTERNAL_HOST": "gate-gw.example",
        "KAFKA_EXTERNAL_PORT": "19094",
        "KAFKA_PUBLISH_ADDRESS": "0.0.0.0",
    }
    model = interpolate(raw, env)
    assert published(services(model)["kafka"]) == [("0.0.0.0", 19094, 9094)]
    assert listeners(kafka_env(model)["KAFKA_ADVERTISED_LISTENERS"])["EXTERNAL"] == ("gate-gw.example", 19094)


def test_the_simulator_runs_only_under_its_profile(compose):
    for name, service in services(compose).items():
        if name == "simulator":
            assert service["profiles"] == ["simulator"]
        else:
            assert "profiles" not in service, f"{name} must run in production"
        command = service.get("command") or []
        if isinstance(command, list) and command[:1] in (["simulate"], ["replay"]):
            assert name == "simulator"


def test_kafka_is_a_consistent_single_kraft_node(compose):
    from streams.settings import DEFAULT_PARTITIONS

    env = kafka_env(compose)
    kafka = services(compose)["kafka"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    listen = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listen) == set(protocols) and set(advertised) <= set(listen)
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listen and controller not in advertised
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    for name, (_host, port) in advertised.items():
        assert port == listen[name][1] or name == "EXTERNAL", f"{name} advertises another port than it listens on"
    assert advertised["PLAINTEXT"][0] == kafka["hostname"] == "kafka"
    (voter,) = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert voter == f"{env['KAFKA_NODE_ID']}@{kafka['hostname']}:{listen[controller][1]}"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"]), "a base64 UUID"
    assert int(env["KAFKA_NUM_PARTITIONS"]) == DEFAULT_PARTITIONS
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1", "one broker: replication factor 1"
    assert kafka["image"].startswith("apache/kafka:")


def test_official_images_with_pinned_versions(compose):
    for name, service in services(compose).items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: pin a version, not {image!r}"
    svc = services(compose)
    assert svc["prometheus"]["image"].startswith("prom/prometheus:")
    assert svc["alertmanager"]["image"].startswith("prom/alertmanager:")
    assert svc["grafana"]["image"].startswith("grafana/grafana:")


# ---- Dockerfile and .dockerignore ----------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        keyword, _, rest = current.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


def dockerfile_args() -> dict[str, str]:
    return dict(a.split("=", 1) for k, a in dockerfile_instructions() if k == "ARG" and "=" in a)


def dockerfile_stages() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Stage name -> (base image with the ARG defaults filled in, its instructions); the last one is named ''."""
    args, stages = dockerfile_args(), {}
    name, base, body = None, "", []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            if name is not None:
                stages[name] = (base, body)
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name, body = (words[2] if len(words) == 3 and words[1].upper() == "AS" else ""), []
        elif name is not None:
            body.append((keyword, rest))
    assert name == "", "the last stage, the image itself, is not named"
    stages[name] = (base, body)
    return stages


def copies_from(body: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """(stage, [source, ..., destination]) of each `COPY --from=stage`."""
    found = []
    for keyword, rest in body:
        words = rest.split()
        if keyword == "COPY" and words and words[0].startswith("--from="):
            found.append((words[0].removeprefix("--from="), words[1:]))
    return found


def test_dockerfile_builds_on_the_projects_python_slim():
    instructions = dockerfile_instructions()
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: the build tools stay out of the image"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    rust = {name for name, (base, _) in stages.items() if base.startswith("rust:")}
    for name, (base, _) in stages.items():
        if name in rust:  # the official Rust image, slim: only its toolchain is copied out
            assert re.fullmatch(r"rust:[0-9.]+-slim", base), f"{name}: {base} is the official Rust image, slim"
        else:
            assert base == f"python:{python}-slim", f"{name}: the Python the project is tested with ({python}), slim"
    assert "" not in rust and not {src for src, _ in copies_from(stages[""][1])} & rust, "no Rust in the image"
    runs = " ".join(a for k, a in instructions if k == "RUN")
    assert re.search(r"pip install \.(\s|$)", runs), "installs the project with `pip install .`"


def test_dockerfile_builds_the_compiled_fold_and_installs_it_in_the_image():
    """native/ is compiled to a wheel in a stage with Rust, and the wheel goes into the venv the image runs."""
    crate = tomllib.loads((REPO / "native" / "pyproject.toml").read_text(encoding="utf-8"))
    wheel = re.sub(r"[-_.]+", "_", crate["project"]["name"]).lower() + "-*.whl"  # the wheel's file name
    module = crate["tool"]["maturin"]["module-name"]
    assert module == "crossing_monitor_native"  # the name crossing_monitor/logs/native.py imports
    stages = dockerfile_stages()
    rust = {name for name, (base, _) in stages.items() if base.startswith("rust:")}

    def builds_the_wheel(body: list[tuple[str, str]]) -> str | None:
        for keyword, rest in body:
            found = re.search(r"pip wheel .*--wheel-dir[ =](\S+) .*\./native(\s|$)", rest)
            if keyword == "RUN" and found:
                return found.group(1)
        return None

    (native,) = [name for name, (_, body) in stages.items() if builds_the_wheel(body)]
    base, body = stages[native]
    wheels = builds_the_wheel(body)
    has_rust = native in rust or {
        "/usr/local/cargo",
        "/usr/local/rustup",
    } <= {paths[0] for src, paths in copies_from(body) if src in rust}
    assert has_rust, f"stage {native} has the Rust toolchain (FROM a rust image or its /usr/local/cargo and rustup)"
    env = " ".join(rest for keyword, rest in body if keyword == "ENV")
    assert native in rust or ("CARGO_HOME=/usr/local/cargo" in env and "RUSTUP_HOME=/usr/local/rustup" in env)
    assert native in rust or "PATH=/usr/local/cargo/bin:" in env, "cargo on the PATH maturin searches"
    assert ("COPY", "native/ native/") in body, "the crate's sources, and nothing else of the project"

    (venv,) = [paths[-1] for src, paths in copies_from(stages[""][1])]
    (build,) = [src for src, _ in copies_from(stages[""][1])]
    assert venv == "/opt/crossing-monitor" and build != native
    build_body = stages[build][1]
    assert (native, [wheels, wheels]) in copies_from(build_body), f"{build} takes the wheel from {native}"
    runs = " && ".join(rest for keyword, rest in build_body if keyword == "RUN")
    assert f"{venv}/bin/pip install --no-deps {wheels}/{wheel}" in runs, "the wheel goes into the image's venv"
    assert f'{venv}/bin/python -c "import {module}"' in runs, "and imports there"
    # The wheel is built for the image's Python: both stages stand on the same base.
    assert base == stages[build][0] == stages[""][0]


def test_dockerfile_runs_crossing_monitor_as_a_non_root_user():
    stage = final_stage()
    users = [a for k, a in stage if k == "USER"]
    assert users, "the image sets a USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0", ""), f"USER {users[-1]} is root"
    runs = " ".join(a for k, a in stage if k == "RUN")
    created = re.search(r"useradd .*--uid (\d+)", runs)
    assert created and created.group(1) == user, "USER is the uid of the user the image creates"
    (entrypoint,) = [a for k, a in stage if k == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["crossing-monitor"]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "crossing-monitor" in pyproject["project"]["scripts"]
    exposed = [a for k, a in stage if k == "EXPOSE"]
    assert exposed == [str(build_parser().parse_args(["worker"]).web_port)]


def test_dockerignore_keeps_the_build_context_small_but_complete():
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not [p for p in patterns if p.startswith("!")], "no exceptions: keep it simple to read"

    def ignored(path: str) -> bool:
        return any(fnmatch(path, p) or fnmatch(path, p.removeprefix("**/")) for p in patterns)

    for path in (".venv", "var", "artifacts", ".git", ".pytest_cache", ".ruff_cache", ".hypothesis", "__pycache__"):
        assert ignored(path), f".dockerignore must exclude {path}"
    assert ignored("crossing_monitor/__pycache__") or ignored("__pycache__")
    needed = ["pyproject.toml", "README.md", *{p.split(".")[0] for p in _project_packages()}]
    for path in needed:
        assert not ignored(path), f".dockerignore excludes {path}, which `pip install .` needs"
    crate = REPO / "native"
    files = [f for f in crate.rglob("*") if f.is_file() and f.relative_to(crate).parts[0] != "target"]
    sources = sorted(f.relative_to(REPO).as_posix() for f in files)
    assert "native/Cargo.toml" in sources and "native/src/lib.rs" in sources, sources
    for path in ["native", *sources]:
        assert not ignored(path), f".dockerignore excludes {path}, which the compiled fold's build needs"
    assert ignored("native/target"), "cargo's build directory (100 MB and more) stays out of the context"
