"""`crossing-monitor demo`: the whole monitor on one machine, started and stopped with one command.

Starts what is missing and wires it together: a local Kafka broker (unless --bootstrap names one),
a worker, live traffic for every catalogue port from the calibrated simulator (`producers`: opening
hours, lanes, scanners, queues), and Prometheus + Alertmanager + the alert webhook where Debian's
packages are installed. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from math import inf
from pathlib import Path

from crossing_monitor.children import die_with_parent
from crossing_monitor.console import speaker
from crossing_monitor.errors import UserError
from crossing_monitor.kafka.broker import free_port

ROOT = Path(__file__).resolve().parent.parent
HISTORY_SECONDS = 30.0


_say = speaker("demo: ")


class Children:
    """The processes the demo started, stopped in reverse order (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        out = open(log, "ab")  # noqa: SIM115 - the child holds it
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops its children in order
            preexec_fn=die_with_parent(),  # and a demo killed outright takes them with it
        )
        out.close()
        self.procs.append((name, proc))
        return proc

    def check(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise UserError(f"{name} stopped unexpectedly (exit {proc.returncode}); see its log")

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                _say(f"stopping {name}")
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait(10)  # the others are stopped even if this one will not go
                except ProcessLookupError:
                    pass
        self.procs.clear()


def stdout_closed() -> bool:
    """True once nobody reads our standard output any more (`demo | head -n 3` after head exits).

    A pipe whose reader has gone polls as an error on the writing end; a terminal that goes away
    sends SIGHUP instead, and a file never closes under us.
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _stdout_to_devnull() -> None:
    """Nothing more reaches a closed stdout: not even Python's flush at exit (no BrokenPipe noise)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the demo's children: never via a proxy


def _answers(url: str) -> bool:
    """Whether the server at `url` is up: any answer but a server error (the standard library, so that
    the demo runs from a plain `pip install`)."""
    try:
        with _LOCAL.open(url, timeout=1) as response:
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, http.client.HTTPException):
        return False


def _wait_http(url: str, timeout: float, proc: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"{name} exited with {proc.returncode} while starting; see its log")
        if _answers(url):
            return
        time.sleep(0.3)
    raise UserError(f"{name} did not answer at {url} within {timeout:.0f} s")


def _instant(text: str | None) -> datetime | None:
    """`--now`: an ISO 8601 instant with its offset (None: the real now)."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise UserError(f"--now must be an ISO 8601 instant with its offset (2026-12-01T11:00+08:00), not {text!r}")
    return when.replace(microsecond=0)


def _incident(now: datetime, hours_back: float, speed: float) -> tuple[str, str]:
    """The incident the demo schedules (lanes out at a busy port, so that its queue passes the port's target
    within the first minutes and the queue alert can fire), as a --faults value and a line for the banner."""
    from crossing_monitor.core.catalogue import load_catalogue
    from producers.incidents import plan

    catalogue = load_catalogue()
    within = min(60.0, 9 * speed)  # event minutes: the queue passes the target within 9 minutes of the demo
    found = plan(catalogue, now - timedelta(hours=hours_back), now, within_minutes=within)
    if found is None:
        return "", "none scheduled (no busy port can build a queue past its target now)"
    return f"incident={found.incident}", found.describe(now, speed)


async def _feed(
    bootstrap: str, topic: str, speed: float, hours_back: float, stop: asyncio.Event,
    now: datetime | None = None, faults: str = "",
) -> None:  # fmt: skip
    """The calibrated simulator (producers) for every catalogue port, from `hours_back` hours ago with no
    end: those hours within the first HISTORY_SECONDS, so the screens start full, then `speed`× real time;
    `faults` (the demo's incident) as `simulate --faults` takes them."""
    from crossing_monitor.core.catalogue import load_catalogue
    from producers.faults import parse_faults
    from producers.pacing import Pacer
    from producers.run import Run
    from producers.simulate import publish

    catalogue = load_catalogue()
    ports = list(catalogue)
    now = now or datetime.now(catalogue[ports[0]].tz).replace(microsecond=0)
    run = Run(catalogue, ports, now - timedelta(hours=hours_back), days=inf, faults=parse_faults(faults))
    now_ms = int(now.timestamp() * 1000)
    pacer = Pacer(speed, int(run.start_s * 1000), history_until_ms=now_ms, history_seconds=HISTORY_SECONDS)
    print(
        f"simulating {', '.join(ports)} from {run.start.isoformat(timespec='minutes')}: {hours_back:g} h of history "
        f"within {HISTORY_SECONDS:g} s, then {speed:g}x real time → {bootstrap} topic {topic}",
        flush=True,
    )
    sent = await publish(run, bootstrap, topic, None, False, pacer=pacer, stop=stop)
    print(f"stopped after {sent:,} events", flush=True)


def _prometheus(children: Children, workdir: Path, worker_port: int, am_port: int | None = None) -> list[str]:
    """Prometheus, Alertmanager and the webhook from Debian's packages, or why they are skipped."""
    prometheus = shutil.which("prometheus")
    alertmanager = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if prometheus is None:
        _say("Prometheus skipped: not installed (Debian: apt-get install prometheus prometheus-alertmanager)")
        return []
    try:
        from dashboards.promconfig import render_prometheus
    except ImportError:
        _say("Prometheus skipped: dashboards.promconfig is not available")
        return []
    lines = []
    am_url = None
    if alertmanager:
        from dashboards.promconfig import render_alertmanager

        hook_port, am_port = free_port(), am_port or free_port()
        hook = children.start(
            "alert webhook",
            [
                sys.executable,
                "-m",
                "dashboards.webhook",
                "--port",
                str(hook_port),
                "--out",
                str(workdir / "alerts.jsonl"),
            ],
            workdir / "webhook.log",
        )
        am_config = render_alertmanager(workdir / "am", webhook_url=f"http://127.0.0.1:{hook_port}")
        am = children.start(
            "alertmanager",
            [
                alertmanager,
                f"--config.file={am_config}",
                f"--storage.path={workdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            workdir / "alertmanager.log",
        )
        _wait_http(f"http://127.0.0.1:{am_port}/-/ready", 30, am, "alertmanager")
        am_url = f"127.0.0.1:{am_port}"
        lines.append(f"Alertmanager  http://127.0.0.1:{am_port}  (alerts land in {workdir / 'alerts.jsonl'})")
        del hook
    else:
        _say("Alertmanager skipped: not installed (Debian: apt-get install prometheus-alertmanager)")
    prom_port = free_port()
    config = render_prometheus(workdir / "prom", [f"127.0.0.1:{worker_port}"], alertmanager=am_url)
    prom = children.start(
        "prometheus",
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        workdir / "prometheus.log",
    )
    _wait_http(f"http://127.0.0.1:{prom_port}/-/ready", 60, prom, "prometheus")
    lines.insert(0, f"Prometheus    http://127.0.0.1:{prom_port}  (rules and alerts of deploy/prometheus)")
    return lines


def main(args: argparse.Namespace) -> int:
    from crossing_monitor.cli import bootstrap_of

    try:
        speed = float(args.speed)
        if speed <= 0:
            raise ValueError
    except ValueError:
        raise UserError(f"--speed must be a positive number, not {args.speed!r}") from None
    start_at = _instant(args.now)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="crossing-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    children = Children()
    broker = None
    stopping = {"now": False}

    def _stop(*_: object) -> None:
        stopping["now"] = True

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: its terminal was closed
        signal.signal(sig, _stop)
    try:
        if args.bootstrap:
            bootstrap = bootstrap_of(args)
            _say(f"using the Kafka broker at {bootstrap}")
        else:
            from crossing_monitor.kafka.broker import LocalKafka

            _say("starting a local Kafka broker ...")
            broker = LocalKafka(data_dir=workdir / "kafka").start()
            bootstrap = broker.bootstrap
        topic = args.topic
        from crossing_monitor.kafka.admin import create_topics

        create_topics(bootstrap, {topic: 8, f"{topic}.dlq": 1})
        # the wall shows Alertmanager's firing alerts: its port is chosen now, it starts after the worker
        wants_am = not args.no_prometheus and (shutil.which("prometheus-alertmanager") or shutil.which("alertmanager"))
        am_port = free_port() if wants_am else None
        worker = children.start(
            "worker",
            [
                sys.executable,
                "-m",
                "crossing_monitor",
                "worker",
                "--bootstrap",
                bootstrap,
                "--topic",
                topic,
                "--web-port",
                str(args.web_port),
                "--data-dir",
                str(workdir / "worker"),
                "--loglevel",
                "warning",
                *(["--alertmanager", f"http://127.0.0.1:{am_port}"] if am_port else []),
            ],
            workdir / "worker.log",
        )
        _wait_http(f"http://127.0.0.1:{args.web_port}/healthz", 120, worker, "worker")
        from crossing_monitor.core.catalogue import load_catalogue

        catalogue = load_catalogue()
        now = start_at or datetime.now(catalogue[next(iter(catalogue))].tz).replace(microsecond=0)
        incident_faults, incident_line = _incident(now, args.history_hours, speed)
        feeder = children.start(
            "traffic",
            [
                sys.executable,
                "-m",
                "crossing_monitor.cli.demo",
                "feed",
                bootstrap,
                topic,
                str(speed),
                str(args.history_hours),
                now.isoformat(),
                incident_faults,
            ],
            workdir / "traffic.log",
        )
        del feeder
        extra = [] if args.no_prometheus else _prometheus(children, workdir, args.web_port, am_port)
        base = f"http://127.0.0.1:{args.web_port}"
        print(
            "\ncrossing-monitor demo is running - Ctrl-C stops everything it started\n"
            f"  Kafka         {bootstrap}  (topic {topic}, dead letters {topic}.dlq)\n"
            f"  Wall display  {base}/\n"
            f"  Ports (JSON)  {base}/api/ports\n"
            f"  Metrics       {base}/metrics\n"
            + "".join(f"  {line}\n" for line in extra)
            + f"  Traffic       simulated gate sensors at every catalogue port: the last {args.history_hours:g} h"
            f" within {HISTORY_SECONDS:g} s, then {speed:g}x real time\n"
            f"  Incident      {incident_line}\n"
            f"  Logs          {workdir}\n",
            flush=True,
        )
        while not stopping["now"]:
            children.check()
            if stdout_closed():
                _say("standard output was closed; stopping")
                _stdout_to_devnull()
                break
            time.sleep(0.5)
    except BrokenPipeError:  # the banner went to a reader that has gone
        _say("standard output was closed; stopping")
        _stdout_to_devnull()
    finally:
        children.stop()
        if broker is not None:
            _say("stopping the Kafka broker")
            broker.stop()
        _say("stopped")
    return 0


def _feed_main(argv: list[str]) -> int:
    bootstrap, topic, speed, history_hours = argv[0], argv[1], float(argv[2]), float(argv[3])
    now = datetime.fromisoformat(argv[4]) if len(argv) > 4 else None
    faults = argv[5] if len(argv) > 5 else ""
    stop = asyncio.Event()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await _feed(bootstrap, topic, speed, history_hours, stop, now, faults)

    try:
        asyncio.run(run())
    except UserError as exc:  # the broker went away, say: one line in the log, and the demo notices
        print(f"traffic: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "feed":
        sys.exit(_feed_main(sys.argv[2:]))
