"""The real Prometheus (and Alertmanager) on loopback, with the shipped rules and dashboards.

What is scraped here is NOT the crossing-monitor worker: it is `FakeWorkerExporter`, a few lines
of prometheus_client serving the SPEC §3 metric names with made-up, moving values. That is
enough to prove the scrape config, that the rules load and evaluate in a real Prometheus, that
every PromQL expression of every dashboard panel returns data, that the generated opening-hours
rules agree with the catalogue, and that an alert travels Prometheus → Alertmanager → the
project's webhook receiver. The same checks against a real worker fed through Kafka are the
lead's integration test (see the report of issue 5).

Durations of the rules are scaled by 1/60 (a minute of rules is a second here).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from workers import free_port
from workers import wait_until as wait_for

from crossing_monitor.core.catalogue import load_catalogue
from crossing_monitor.core.events import DIRECTIONS, EVENT_TYPES, REJECT_REASONS, VEHICLE_CLASSES
from crossing_monitor.core.metrics import INSPECTION_BUCKETS
from dashboards.generate import CATALOGUE_RULES, JSON_DIR
from dashboards.promconfig import render_alertmanager, render_prometheus
from dashboards.webhook import WebhookReceiver

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package prometheus)")

TIME_SCALE = 1 / 60
GROWING = ("khorgos", "outbound")  # the queue the fake exporter makes grow past its target


class FakeWorkerExporter:
    """A stand-in for the worker's /metrics: SPEC metric names, invented values that move with time."""

    def __init__(self) -> None:
        self.ports = list(load_catalogue())
        self.started = time.time()

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator:
        t = time.time() - self.started
        vehicles = CounterMetricFamily("crossing_vehicles", "", labels=["port", "direction", "vehicle_class"])
        events = CounterMetricFamily("crossing_events", "", labels=["port", "type"])
        gauges = {
            name: GaugeMetricFamily(name, "", labels=["port"])
            for name in (
                "crossing_throughput_vehicles_per_hour",
                "crossing_day_vehicles",
                "crossing_peak_day_vehicles",
                "crossing_peak_day_timestamp_seconds",
                "crossing_wait_avg_seconds",
                "crossing_watermark_timestamp_seconds",
            )
        }
        inspection = GaugeMetricFamily("crossing_inspection_avg_seconds", "", labels=["port", "vehicle_class"])
        queue = GaugeMetricFamily("crossing_queue_vehicles", "", labels=["port", "direction"])
        forecast = {  # the forecast's gauges (SPEC §3; docs/forecast.md)
            name: GaugeMetricFamily(name, "", labels=["port", "direction"])
            for name in (
                "crossing_wait_predicted_seconds",
                "crossing_queue_clear_seconds",
                "crossing_queue_clear_one_more_lane_seconds",
            )
        }
        histogram = HistogramMetricFamily("crossing_inspection_seconds", "", labels=["port", "vehicle_class"])
        for i, port in enumerate(self.ports):
            for direction in DIRECTIONS:
                for cls in VEHICLE_CLASSES:
                    vehicles.add_metric([port, direction, cls], 100 + i + (2 * t if cls == "truck" else 0))
                q = 100 + 2 * t if (port, direction) == GROWING else 3
                queue.add_metric([port, direction], q)
                forecast["crossing_wait_predicted_seconds"].add_metric([port, direction], 900 + 30 * q)
                forecast["crossing_queue_clear_seconds"].add_metric([port, direction], 60 * q)
                forecast["crossing_queue_clear_one_more_lane_seconds"].add_metric([port, direction], 45 * q)
            for etype in EVENT_TYPES:
                events.add_metric([port, etype], 1000 + 10 * t)
            gauges["crossing_throughput_vehicles_per_hour"].add_metric([port], 60 + i)
            gauges["crossing_day_vehicles"].add_metric([port], 500 + int(t))
            gauges["crossing_peak_day_vehicles"].add_metric([port], 1927 if port == "khorgos" else 800)
            gauges["crossing_peak_day_timestamp_seconds"].add_metric([port], 1695744000)  # 2023-09-27 +08:00
            gauges["crossing_wait_avg_seconds"].add_metric([port], 600)
            gauges["crossing_watermark_timestamp_seconds"].add_metric([port], self.started + t)
            for cls in VEHICLE_CLASSES:
                inspection.add_metric([port, cls], 600)
                n = int(10 + t)
                buckets = [(str(float(b)), n * (k + 1)) for k, b in enumerate(INSPECTION_BUCKETS)]
                buckets.append(("+Inf", n * (len(INSPECTION_BUCKETS) + 1)))
                histogram.add_metric([port, cls], buckets, sum_value=600.0 * buckets[-1][1])
        rejected = CounterMetricFamily("crossing_events_rejected", "", labels=["reason"])
        for reason in REJECT_REASONS:
            rejected.add_metric([reason], 5 + (t / 10 if reason == "duplicate" else 0))
        yield from [vehicles, events, *gauges.values(), inspection, queue, *forecast.values(), histogram, rejected]


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def start_alertmanager(tmp: Path, webhook_url: str, procs: list[subprocess.Popen]) -> str:
    """Debian's Alertmanager on a free loopback port, every receiver pointed at webhook_url; its address."""
    address = f"127.0.0.1:{free_port()}"
    config = render_alertmanager(tmp / "am", webhook_url, group_wait="1s", group_interval="1s")
    procs.append(
        _start(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={tmp / 'am-data'}",
                f"--web.listen-address={address}",
                "--cluster.listen-address=",
            ],
            tmp / "alertmanager.log",
        )
    )
    wait_for(lambda: httpx.get(f"http://{address}/-/ready", timeout=2).status_code == 200, 30, "alertmanager")
    return address


def start_prometheus(tmp: Path, targets: list[str], alertmanager: str | None, procs: list[subprocess.Popen]) -> str:
    """Debian's Prometheus with the project's rules (durations scaled), 1 s scrapes; its URL once ready."""
    address = f"127.0.0.1:{free_port()}"
    config = render_prometheus(
        tmp / "prom",
        targets,
        alertmanager=alertmanager,
        scrape_interval="1s",
        evaluation_interval="1s",
        time_scale=TIME_SCALE,
    )
    procs.append(
        _start(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'prom-data'}",
                f"--web.listen-address={address}",
            ],
            tmp / "prometheus.log",
        )
    )
    url = f"http://{address}"
    wait_for(lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200, 30, "prometheus")
    return url


class Stack:
    """Exporter, webhook receiver, Alertmanager (if installed) and Prometheus, all on loopback."""

    prometheus_url: str
    alertmanager_url: str | None
    webhook: WebhookReceiver

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr} | ({"time": str(at)} if at is not None else {})
        answer = httpx.post(f"{self.prometheus_url}/api/v1/query", data=params, timeout=10).json()
        assert answer["status"] == "success", f"{expr}: {answer}"
        return answer["data"]["result"]

    def query_range(self, expr: str, start: float, length: float, step: float) -> list[float]:
        """The values of a single-series expression at start, start + step, ... start + length."""
        params = {"query": expr, "start": str(start), "end": str(start + length), "step": str(step)}
        answer = httpx.post(f"{self.prometheus_url}/api/v1/query_range", data=params, timeout=30).json()
        assert answer["status"] == "success", f"{expr}: {answer}"
        (series,) = answer["data"]["result"]
        values = [float(v) for _, v in series["values"]]
        assert len(values) == int(length // step) + 1, f"{expr}: gaps in the answer"
        return values


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prometheus")
    s = Stack()
    registry = CollectorRegistry()
    registry.register(FakeWorkerExporter())
    exporter_port = free_port()
    exporter, _ = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    s.webhook = WebhookReceiver().start()
    procs: list[subprocess.Popen] = []
    try:
        s.alertmanager_url = None
        am_address = None
        if ALERTMANAGER:
            am_address = start_alertmanager(tmp, s.webhook.url, procs)
            s.alertmanager_url = f"http://{am_address}"
        s.prometheus_url = start_prometheus(tmp, [f"127.0.0.1:{exporter_port}"], am_address, procs)
        yield s
    finally:
        for proc in reversed(procs):
            _stop(proc)
        s.webhook.stop()
        exporter.shutdown()


def _dashboard_exprs() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expr) of every query of every panel and annotation."""
    out = []
    for path in sorted(JSON_DIR.glob("*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        for panel in d["panels"]:
            for t in panel.get("targets", []):
                out.append((path.name, panel["title"], t["expr"]))
        for ann in d.get("annotations", {}).get("list", []):
            if "expr" in ann:
                out.append((path.name, f"annotation {ann['name']}", ann["expr"]))
    return out


def _grafana_variables(expr: str) -> str:
    """What Grafana would send: variables at 'All', the rate interval at a few scrapes."""
    for name, value in (("$__rate_interval", "20s"), ("$__interval", "5s"), ("$port", ".*"), ("$class", ".*")):
        expr = expr.replace(name, value)
    return expr


def test_every_dashboard_query_returns_data(stack: Stack):
    exprs = _dashboard_exprs()
    assert len(exprs) > 50

    def empty() -> list[str]:
        return [f"{d} / {title}: {e}" for d, title, e in exprs if not stack.query(_grafana_variables(e))]

    missing: list[str] = []

    def all_answer() -> bool:
        missing[:] = empty()
        return not missing

    try:
        wait_for(all_answer, 45, "every dashboard query to return data", interval=1)
    except AssertionError:
        raise AssertionError("queries without data:\n" + "\n".join(missing)) from None


def _open_rules() -> dict[str, dict[str, str]]:
    rules = yaml.safe_load(CATALOGUE_RULES.read_text(encoding="utf-8"))["groups"][0]["rules"]
    out: dict[str, dict[str, str]] = {}
    for r in rules:
        out.setdefault(r["record"], {})[r["labels"]["port"]] = r["expr"]
    return out


def test_generated_opening_hours_agree_with_the_catalogue(stack: Stack):
    """crossing:port_open and crossing:port_open_seconds, as Prometheus evaluates their generated
    PromQL minute by minute over whole days, say what Hours.is_open says."""
    catalogue = load_catalogue()
    rules = _open_rules()
    # Ordinary days, days of round-the-clock clearance (khorgos 2023-08-14..09-30, irkeshtam from
    # 2025-06-01) and the days at the edges of those ranges.
    days = [date(2023, 8, 14), date(2023, 9, 30), date(2023, 10, 1), date(2024, 1, 10), date(2025, 6, 1)]
    wrong = []
    for slug, port in catalogue.items():
        for day in days:
            start = datetime.combine(day, datetime.min.time(), port.tz)
            open_ = stack.query_range(rules["crossing:port_open"][slug], start.timestamp(), 86340, 60)
            seconds = stack.query_range(rules["crossing:port_open_seconds"][slug], start.timestamp(), 86340, 60)
            for minute in range(1440):
                local = start + timedelta(minutes=minute)
                expected = port.hours.is_open(local)
                # Open seconds: 0 when closed, > 0 when open except at the very minute of opening.
                just_opened = not port.hours.is_open(local - timedelta(minutes=1))
                seconds_ok = (seconds[minute] > 0 or just_opened) if expected else seconds[minute] == 0
                if open_[minute] != int(expected) or not seconds_ok:
                    wrong.append(f"{slug} {local:%Y-%m-%d %H:%M}: open={open_[minute]} seconds={seconds[minute]}")
    assert not wrong, f"{len(wrong)} minutes wrong, e.g.\n" + "\n".join(wrong[:20])
    # Open seconds count from the opening (daily) or from the start of round-the-clock clearance.
    khorgos = catalogue["khorgos"]
    noon = datetime(2024, 1, 10, 12, 0, tzinfo=khorgos.tz).timestamp()
    assert float(stack.query(rules["crossing:port_open_seconds"]["khorgos"], noon)[0]["value"][1]) == 3 * 3600
    rtc = datetime(2023, 9, 27, 3, 0, tzinfo=khorgos.tz)
    since = datetime(2023, 8, 14, 0, 0, tzinfo=khorgos.tz)
    got = float(stack.query(rules["crossing:port_open_seconds"]["khorgos"], rtc.timestamp())[0]["value"][1])
    assert got == (rtc - since) / timedelta(seconds=1)


@pytest.mark.skipif(ALERTMANAGER is None, reason="prometheus-alertmanager not installed")
def test_queue_build_up_fires_in_prometheus_and_reaches_the_webhook(stack: Stack):
    port, direction = GROWING

    def delivered() -> list[dict]:
        return [
            a
            for a in stack.webhook.recorder.alerts()
            if a["labels"].get("alertname") == "CrossingQueueBuildUp"
            and a["labels"].get("port") == port
            and a["status"] == "firing"
        ]

    alerts = wait_for(delivered, 90, "CrossingQueueBuildUp to reach the webhook", interval=1)
    alert = alerts[0]
    assert alert["path"] == "/room"  # a warning about a port: the operations room
    assert alert["labels"]["direction"] == direction and alert["labels"]["signal"] == "queue"
    assert alert["labels"]["severity"] == "warning"
    assert set(alert["annotations"]) >= {"summary", "description", "runbook"}
    assert re.search(r"khorgos: outbound queue of \d+ vehicles and growing", alert["annotations"]["summary"])
    firing = stack.query('ALERTS{alertname="CrossingQueueBuildUp", alertstate="firing"}')
    assert {(a["metric"]["port"], a["metric"]["direction"]) for a in firing} == {GROWING}
    # Nothing else fired on the fake exporter's otherwise ordinary figures.
    others = stack.query('ALERTS{alertstate="firing", alertname!="CrossingQueueBuildUp"}')
    assert others == [], others


@pytest.mark.skipif(ALERTMANAGER is None, reason="prometheus-alertmanager not installed")
def test_a_silent_port_does_not_also_page_for_stalled_crossings(stack: Stack):
    """Inhibition in the real Alertmanager: alerts posted to its API as Prometheus would."""
    assert stack.alertmanager_url is not None

    def alert(name: str, port: str) -> dict:
        return {
            "labels": {"alertname": name, "port": port, "severity": "critical", "test": "inhibition"},
            "annotations": {"summary": f"{port}: {name}"},
        }

    posted = [
        alert("CrossingSensorsSilent", "burang"),
        alert("CrossingStalled", "burang"),
        alert("CrossingStalled", "zhangmu"),
    ]
    # The source alert first, so that the inhibition is in place when the target arrives.
    httpx.post(f"{stack.alertmanager_url}/api/v2/alerts", json=posted[:1], timeout=5).raise_for_status()
    time.sleep(0.5)
    httpx.post(f"{stack.alertmanager_url}/api/v2/alerts", json=posted[1:], timeout=5).raise_for_status()

    def received() -> set[tuple[str, str, str]]:
        return {
            (a["labels"]["alertname"], a["labels"]["port"], a["path"])
            for a in stack.webhook.recorder.alerts()
            if a["labels"].get("test") == "inhibition"
        }

    expected = {("CrossingSensorsSilent", "burang", "/page"), ("CrossingStalled", "zhangmu", "/page")}
    wait_for(lambda: received() >= expected, 30, "the silent and the stalled pages")
    time.sleep(3)  # several group intervals: an uninhibited stalled page for burang would be here now
    assert ("CrossingStalled", "burang", "/page") not in received()
    assert received() == expected
