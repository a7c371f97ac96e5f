"""deploy/k8s: the worker manifests for a port's Kubernetes cluster.

No cluster runs here, so the manifests are checked the way the API server and the Prometheus
Operator would see them, and against the project itself:

* every built-in object is valid against the Kubernetes JSON schemas kubernetes-validate ships
  (strict: an unknown field is an error), for the oldest and newest Kubernetes it knows;
* the ServiceMonitor, a CRD those schemas do not cover, against a schema of the fields it uses
  written here, and cross-checked with the Service and the shipped Prometheus config;
* the worker's arguments parse with the project's own argparse parser, name an address the other
  workers reach, and agree with the ports, probes and scrape annotations;
* settings are variables the project reads, with valid values; credentials only by Secret reference;
* the optional catalogue patch, applied, still gives a valid Deployment reading a real catalogue.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from crossing_monitor.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
PATCH = K8S / "catalogue-patch.yaml"
DNS_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|CREDENTIAL")
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    """Every object the kustomization applies, in its order."""
    found = []
    for resource in _kustomization()["resources"]:
        found += _load(K8S / resource)
    return found


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (found,) = deployment["spec"]["template"]["spec"]["containers"]
    return found


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def option(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def mount_for(deployment: dict[str, Any], path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(volumeMount, volume) under which `path` lies in the worker container."""
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    target = PurePosixPath(path)
    for mount in container(deployment)["volumeMounts"]:
        where = PurePosixPath(mount["mountPath"])
        if target == where or where in target.parents:
            return mount, volumes[mount["name"]]
    pytest.fail(f"{path} is on no volume of the worker", pytrace=False)


# ---- the files and the kustomization ----------------------------------------------------------


def test_kustomization_lists_every_manifest():
    kustomization = _kustomization()
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert DNS_1123.fullmatch(kustomization["namespace"])
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {KUSTOMIZATION.name, PATCH.name}
    assert listed == on_disk, "every manifest is applied, and every applied file exists"
    # The optional patch is offered, commented out, with the path that exists.
    assert re.search(rf"^#\s+- path: {PATCH.name}$", KUSTOMIZATION.read_text(encoding="utf-8"), re.M)
    (image,) = kustomization["images"]
    assert image["name"] == "crossing-monitor"


def test_objects_are_well_formed(objects):
    seen = set()
    for obj in objects:
        name = obj["metadata"]["name"]
        assert DNS_1123.fullmatch(name) and len(name) <= 63, name
        assert "namespace" not in obj["metadata"], "the kustomization sets the namespace"
        assert (obj["kind"], name) not in seen
        seen.add((obj["kind"], name))
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "crossing-monitor"
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == ["ConfigMap", "Deployment", "Namespace", "PodDisruptionBudget", "Service", "ServiceMonitor"]
    assert one(objects, "Namespace")["metadata"]["name"] == _kustomization()["namespace"]


# ---- the Kubernetes schemas ------------------------------------------------------------------


def _k8s_versions() -> list[str]:
    from kubernetes_validate.utils import all_versions

    versions = sorted(set(all_versions()), key=lambda v: tuple(int(x) for x in v.split(".")))
    return [versions[0], versions[-1]]


def _validate(obj: dict[str, Any], version: str) -> None:
    import kubernetes_validate

    problem = None
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        problem = f"at {'.'.join(str(p) for p in exc.path)}: {exc.message}"
    if problem:  # outside the except block: the schema dump of the exception stays out of the report
        pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} (Kubernetes {version}) {problem}", pytrace=False)


@pytest.mark.parametrize("version", _k8s_versions())
def test_built_in_objects_are_valid_kubernetes(objects, version: str):
    import kubernetes_validate

    validated = []
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(obj, version, strict=True)
            continue
        _validate(obj, version)
        validated.append(obj["kind"])
    assert len(validated) == len(objects) - 1


def test_the_schemas_catch_mistakes(objects):
    """Strict validation rejects an unknown field and a wrong type, so the test above means something."""
    import kubernetes_validate

    version = _k8s_versions()[-1]
    broken = copy.deepcopy(one(objects, "Deployment"))
    container(broken)["livenessProbe"]["httpGet"]["paht"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)
    broken = copy.deepcopy(one(objects, "Deployment"))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


# The fields of monitoring.coreos.com/v1 ServiceMonitor this project uses (a subset of the CRD;
# written here because no package ships the Operator's schemas). Unknown fields are errors.
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "labels": _LABELS, "annotations": _LABELS},
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"matchLabels": _LABELS},
                },
                "namespaceSelector": {"type": "object"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", duration))


def test_service_monitor_scrapes_every_worker_as_the_alerts_expect(objects):
    import jsonschema

    monitor, service = one(objects, "ServiceMonitor"), one(objects, "Service")
    jsonschema.Draft202012Validator(SERVICE_MONITOR_SCHEMA).validate(monitor)
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items(), "selects the worker Service"
    port_names = {p["name"] for p in service["spec"]["ports"]}
    shipped = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = [j for j in shipped["scrape_configs"] if j["job_name"] == "crossing-worker"]
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == job["metrics_path"]
        assert endpoint["interval"] == shipped["global"]["scrape_interval"]
        assert _seconds(endpoint["scrapeTimeout"]) <= _seconds(endpoint["interval"])
    # The Operator's job label is the Service name unless jobLabel says otherwise; the alert rules
    # (CrossingWorkerDown) match job="crossing-worker".
    job_name = service["metadata"]["labels"][monitor["spec"]["jobLabel"]] if "jobLabel" in monitor["spec"] else None
    assert (job_name or service["metadata"]["name"]) == job["job_name"]
    alerts = (REPO / "deploy" / "prometheus" / "rules" / "crossing_alerts.rules.yml").read_text(encoding="utf-8")
    assert f'job="{job["job_name"]}"' in alerts


def test_service_monitor_schema_rejects_unknown_fields(objects):
    import jsonschema

    broken = copy.deepcopy(one(objects, "ServiceMonitor"))
    broken["spec"]["endpoints"][0]["intervall"] = "10s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SERVICE_MONITOR_SCHEMA)


# ---- the worker ------------------------------------------------------------------------------


def test_worker_arguments_are_a_real_command_line(objects):
    c = container(one(objects, "Deployment"))
    assert "command" not in c, "the image's entry point is crossing-monitor"
    args = c["args"]
    env = env_of(c)
    # Kubernetes expands $(VAR) in args only for variables of `env` (not envFrom).
    for name in VAR_REF.findall(" ".join(args)):
        assert name in env, f"$({name}) in args is not defined in the container's env"
    concrete = [VAR_REF.sub("10.1.2.3", a) for a in args]
    try:
        parsed = build_parser().parse_args(concrete)
    except SystemExit:
        pytest.fail(f"`crossing-monitor {' '.join(concrete)}` does not parse", pytrace=False)
    assert parsed.command == "worker" and parsed.handler == "crossing_monitor.cli.worker:main"


def test_worker_advertises_an_address_its_peers_reach(objects):
    deployment = one(objects, "Deployment")
    c = container(deployment)
    host = option(c["args"], "--web-host")
    (name,) = VAR_REF.fullmatch(host).groups()
    assert env_of(c)[name]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"


def test_ports_probes_and_scrape_annotations_agree(objects):
    deployment = one(objects, "Deployment")
    c = container(deployment)
    web_port = int(option(c["args"], "--web-port"))
    (port,) = c["ports"]
    assert port["containerPort"] == web_port and port["name"] == "http"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz" and get["port"] in (port["name"], web_port), probe
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == web_port
    assert annotations["prometheus.io/path"] == "/metrics"
    service = one(objects, "Service")
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in (port["name"], web_port)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_worker_runs_unprivileged_and_writes_only_to_volumes(objects):
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment)
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    (user,) = re.findall(r"^USER (\d+)", dockerfile, re.M)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == user, "the uid of the image's user"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    for path in (option(c["args"], "--data-dir"), "/tmp"):
        mount, volume = mount_for(deployment, path)
        assert "emptyDir" in volume and not mount.get("readOnly"), f"{path} is a writable volume"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def test_replicas_do_not_outnumber_the_partitions_holding_ports(objects):
    """Ports are the unit of parallelism: a worker beyond the partitions that hold ports has nothing to do."""
    from aiokafka.partitioner import murmur2

    from crossing_monitor.core.catalogue import load_catalogue

    settings = one(objects, "ConfigMap")["data"]
    partitions = int(settings["CROSSING_MONITOR_PARTITIONS"])
    used = {(murmur2(slug.encode()) & 0x7FFFFFFF) % partitions for slug in load_catalogue()}
    deployment = one(objects, "Deployment")
    assert 2 <= deployment["spec"]["replicas"] <= len(used)
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] < deployment["spec"]["replicas"]
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


# ---- settings and credentials ----------------------------------------------------------------


def _known_variables() -> set[str]:
    """Variables the worker reads: the project's, and the Faust setting the manifests use."""
    from faust.types.settings import Settings

    from crossing_monitor.kafka.security import ENV

    settings_py = (REPO / "streams" / "settings.py").read_text(encoding="utf-8")
    ours = set(re.findall(r'env\(\s*"(CROSSING_MONITOR_[A-Z_]+)"', settings_py)) | set(ENV.values())
    # Faust reads TOPIC_REPLICATION_FACTOR itself, as long as streams/app.py does not set it.
    assert Settings.topic_replication_factor.env_name == "TOPIC_REPLICATION_FACTOR"
    assert "topic_replication_factor" not in (REPO / "streams" / "app.py").read_text(encoding="utf-8")
    return ours | {"TOPIC_REPLICATION_FACTOR"}


def test_settings_are_variables_the_project_reads_with_valid_values(objects, tmp_path: Path):
    from crossing_monitor.kafka.security import ENV, KafkaSecurity

    deployment = one(objects, "Deployment")
    c = container(deployment)
    settings = one(objects, "ConfigMap")
    assert c["envFrom"] == [{"configMapRef": {"name": settings["metadata"]["name"]}}]
    data = settings["data"]
    assert set(data) <= _known_variables(), sorted(set(data) - _known_variables())
    assert int(data["CROSSING_MONITOR_PARTITIONS"]) >= 1
    assert int(data["TOPIC_REPLICATION_FACTOR"]) >= 1
    # The CA bundle is a key of the TLS Secret mounted where the setting points.
    cafile = data[ENV["ssl_cafile"]]
    mount, volume = mount_for(deployment, cafile)
    assert mount.get("readOnly") and "secret" in volume
    assert PurePosixPath(cafile).parent == PurePosixPath(mount["mountPath"]) and PurePosixPath(cafile).name == "ca.crt"
    # With the Secrets in place (stand-ins here), the settings are ones the workers accept.
    certifi = pytest.importorskip("certifi")
    ca = tmp_path / "ca.crt"
    ca.write_bytes(Path(certifi.where()).read_bytes())
    env = {**data, ENV["ssl_cafile"]: str(ca), ENV["sasl_username"]: "monitor", ENV["sasl_password"]: "pw"}
    security = KafkaSecurity.from_env(env)
    assert security.protocol == "SASL_SSL" and security.mechanism == "SCRAM-SHA-512"


def test_credentials_only_by_secret_reference(objects):
    from crossing_monitor.kafka.security import ENV

    assert not [o for o in objects if o["kind"] == "Secret"], "no Secret (and no secret value) in the manifests"
    for key in one(objects, "ConfigMap")["data"]:
        assert not SECRET_NAME.search(key), f"{key} belongs in a Secret"
    env = env_of(container(one(objects, "Deployment")))
    for name in (ENV["sasl_username"], ENV["sasl_password"]):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert "value" not in env[name] and ref["name"] == "crossing-monitor-kafka"
    for name, entry in env.items():
        if SECRET_NAME.search(name):
            assert "value" not in entry, f"{name} must come from a Secret"


# ---- the optional catalogue patch ------------------------------------------------------------

_MERGE_KEYS = {"containers": "name", "env": "name", "volumeMounts": "mountPath", "volumes": "name"}


def strategic_merge(base: Any, patch: Any, key: str | None = None) -> Any:
    """Kubernetes' strategic merge for the lists this patch touches (merged by their merge key)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for k, v in patch.items():
            merged[k] = strategic_merge(base[k], v, k) if k in base else v
        return merged
    if isinstance(base, list) and key in _MERGE_KEYS:
        field = _MERGE_KEYS[key]
        merged = [dict(item) for item in base]
        for item in patch:
            same = [i for i, b in enumerate(merged) if b[field] == item[field]]
            if same:
                merged[same[0]] = strategic_merge(merged[same[0]], item)
            else:
                merged.append(item)
        return merged
    return patch


def test_catalogue_patch_gives_a_valid_deployment_reading_a_real_catalogue(objects, tmp_path: Path):
    from crossing_monitor.core.catalogue import load_catalogue

    (patch,) = _load(PATCH)
    deployment = one(objects, "Deployment")
    assert (patch["apiVersion"], patch["kind"], patch["metadata"]["name"]) == (
        deployment["apiVersion"],
        deployment["kind"],
        deployment["metadata"]["name"],
    )
    assert [c["name"] for c in patch["spec"]["template"]["spec"]["containers"]] == [container(deployment)["name"]]
    patched = strategic_merge(deployment, patch)
    for version in _k8s_versions():
        _validate(patched, version)
    path = env_of(container(patched))["CROSSING_MONITOR_CATALOGUE"]["value"]
    assert "CROSSING_MONITOR_CATALOGUE" in _known_variables()
    mount, volume = mount_for(patched, path)
    assert mount.get("readOnly") and volume["configMap"]["name"] == "crossing-monitor-catalogue"
    # The file the ConfigMap key becomes is a catalogue the project loads (here: the shipped one).
    shipped = REPO / "crossing_monitor" / "core" / "data" / "ports.toml"
    copy_at = tmp_path / PurePosixPath(path).name
    copy_at.write_bytes(shipped.read_bytes())
    assert list(load_catalogue(str(copy_at))) == list(load_catalogue())
    # The patch leaves everything else of the worker as it was.
    assert container(patched)["args"] == container(deployment)["args"]
    assert len(container(patched)["env"]) == len(container(deployment)["env"]) + 1


# ---- kustomize itself, where kubectl is installed --------------------------------------------


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
@pytest.mark.parametrize("with_patch", [False, True])
def test_kubectl_kustomize_renders_valid_objects(tmp_path: Path, with_patch: bool):
    source = K8S
    if with_patch:
        source = tmp_path / "k8s"
        shutil.copytree(K8S, source)
        text = (source / KUSTOMIZATION.name).read_text(encoding="utf-8")
        text = text.replace("# patches:", "patches:").replace(f"#   - path: {PATCH.name}", f"  - path: {PATCH.name}")
        (source / KUSTOMIZATION.name).write_text(text, encoding="utf-8")
    result = subprocess.run(["kubectl", "kustomize", str(source)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    namespace = _kustomization()["namespace"]
    for obj in rendered:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace
        if not obj["apiVersion"].startswith("monitoring.coreos.com/"):
            _validate(obj, _k8s_versions()[-1])
    deployment = one(rendered, "Deployment")
    assert container(deployment)["image"] == "crossing-monitor:0.1.0"
    assert ("CROSSING_MONITOR_CATALOGUE" in env_of(container(deployment))) is with_patch
