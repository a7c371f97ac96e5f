"""The `crossing-monitor` command line.

Handlers are imported lazily ("module:function") so that `--help` and `analyze` start fast and
never pay for importing Faust or aiokafka.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from crossing_monitor import __version__
from crossing_monitor.errors import UserError
from crossing_monitor.kafka.bootstrap import DEFAULT_BOOTSTRAP, bootstrap_servers

__all__ = ["UserError", "bootstrap_of", "build_parser", "main"]


def _handler(spec: str) -> Callable[[argparse.Namespace], int]:
    module, _, func = spec.partition(":")
    return getattr(importlib.import_module(module), func)


def _add_catalogue_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalogue", help="port catalogue file (default: the one shipped with the product)")


def _add_progress_option(p: argparse.ArgumentParser, kind: str = "bar") -> None:
    p.add_argument("--no-progress", action="store_true", help=f"never show a progress {kind}")


def _add_analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="compute the metrics of a recorded log (.jsonl or .jsonl.gz) without a broker",
        description="Fold a recorded event log into the per-port figures of SPEC §2 and print them.",
    )
    p.add_argument("log", help="recorded log: .jsonl or .jsonl.gz ('-' reads standard input)")
    p.add_argument("--format", choices=("json", "table"), default="table", help="output format (default: table)")
    p.add_argument(
        "--predictions",
        metavar="FILE",
        help="also write one JSON line per accepted vehicle.arrived with the forecast shown just before it",
    )
    _add_catalogue_option(p)
    _add_progress_option(p)
    p.set_defaults(handler="crossing_monitor.cli.analyze:main")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole monitor on one machine: broker, worker, live traffic, Prometheus",
        description="Start what is missing (a local Kafka broker unless --bootstrap names one, a worker, "
        "live traffic for every catalogue port, Prometheus and Alertmanager where installed), print where to "
        "look, and stop everything on Ctrl-C.",
    )
    p.add_argument("--speed", default="10", help="how much faster than real time traffic runs (default 10)")
    p.add_argument("--web-port", type=int, default=6066, help="the worker's HTTP port (default 6066)")
    p.add_argument("--workdir", help="where logs and data go (default: a new temporary directory)")
    p.add_argument(
        "--history-hours",
        type=float,
        default=24.0,
        help="hours of traffic before now, sent in the first 30 s so screens start full (default 24)",
    )
    p.add_argument(
        "--now",
        default=None,
        help="the instant the traffic runs from, ISO 8601 with its offset (default: now); e.g. "
        "2026-12-01T11:00+08:00 for a busy hour while every port is closed for the night",
    )
    p.add_argument("--no-prometheus", action="store_true", help="do not start Prometheus and Alertmanager")
    p.add_argument("--bootstrap", default=None, help="use this Kafka instead of starting a local broker")
    p.add_argument("--topic", default=DEFAULT_TOPIC, help=f"sensor events topic (default {DEFAULT_TOPIC})")
    p.set_defaults(handler="crossing_monitor.cli.demo:main")


def _add_broker(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "broker",
        help="run a local single-node Apache Kafka broker (KRaft) on 127.0.0.1",
        description="Fetch Apache Kafka's jars from Maven Central (cached), format a KRaft storage "
        "directory and run a single-node broker on loopback until Ctrl-C.",
    )
    p.add_argument("--port", type=int, default=9092, help="client port on 127.0.0.1 (default 9092; 0 = any free)")
    p.add_argument("--data-dir", help="KRaft storage directory (default: a fresh temporary directory)")
    p.add_argument("--fetch-only", action="store_true", help="only fetch the jars into the cache, then exit")
    p.set_defaults(handler="crossing_monitor.cli.broker:main")


DEFAULT_TOPIC = "crossing.events"


def _add_kafka_options(p: argparse.ArgumentParser, topic_help: str = "topic") -> None:
    p.add_argument(
        "--bootstrap",
        default=None,
        help=f"Kafka bootstrap servers (default: $CROSSING_MONITOR_BOOTSTRAP or {DEFAULT_BOOTSTRAP})",
    )
    p.add_argument("--topic", default=DEFAULT_TOPIC, help=f"{topic_help} (default: {DEFAULT_TOPIC})")


# ---- simulate / record / replay (producers/) ------------------------------------------------


def _add_patience_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--patience",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to keep retrying while Kafka acknowledges nothing, then give up (default 600)",
    )


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="calibrated gate sensors publishing live (or faster), or writing a log",
        description="Simulate the gate sensors of the catalogue's ports, lane by lane, and publish "
        "their events to Kafka or write them to a log. Same options and seed, same events.",
    )
    p.add_argument("--ports", help="comma-separated port slugs (default: every port of the catalogue)")
    p.add_argument(
        "--start",
        help="first simulated instant, local time: YYYY-MM-DD[THH:MM], 'now' or 'today' "
        "(default: now when publishing live, else the start of today)",
    )
    p.add_argument("--days", type=float, default=None, help="how many days to simulate (default 1; 0 = no end)")
    p.add_argument(
        "--speed",
        default=None,
        help="1 = real time, N = N× faster, 'max' = as fast as possible (default: 1 to Kafka, max to a log)",
    )
    p.add_argument("--scenario", help="a named scenario (see --list-scenarios); other options change it")
    p.add_argument("--list-scenarios", action="store_true", help="list the named scenarios and exit")
    p.add_argument("--seed", type=int, default=1, help="random seed: same seed, same events (default 1)")
    p.add_argument(
        "--regime", choices=("h986", "legacy", "random"), default=None, help="inspection regime (default h986)"
    )
    p.add_argument(
        "--faults",
        default="",
        help="comma-separated sensor faults, each NAME or NAME=VALUE: duplicates[=share], missed[=share], "
        "offline[=hours], skew[=seconds] (defaults 0.01, 0.01, 3, 120); and trouble at a port, "
        "incident=PORT:WHAT[=N]@WHEN/DURATION: WHAT is lanes, outbound-lanes, inbound-lanes or scanners "
        "(N of them out of service, default all), WHEN a local YYYY-MM-DDTHH:MM, HH:MM (the first after the "
        "start) or +30m / +2h after the start, DURATION like 3h or 90m "
        "(e.g. incident=khorgos:outbound-lanes=6@10:00/3h; give it again for more)",
    )
    p.add_argument("--out", help="write a log (.jsonl or .jsonl.gz; '-' = stdout) instead of publishing to Kafka")
    _add_catalogue_option(p)
    _add_progress_option(p)
    _add_kafka_options(p)
    _add_patience_option(p)
    p.set_defaults(handler="producers.simulate:main")


def _add_record(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record",
        help="topic → recorded log",
        description="Record a topic into a log file, one message per line as it was sent: up to the end "
        "the topic had when recording started, or with --follow until Ctrl-C.",
    )
    p.add_argument("out", help="log file to write (.jsonl.gz or .jsonl)")
    p.add_argument("--from-now", action="store_true", help="start at the end of the topic, not its beginning")
    p.add_argument("--follow", action="store_true", help="keep recording until Ctrl-C, not just to the end")
    _add_progress_option(p, "line")
    _add_kafka_options(p)
    p.set_defaults(handler="producers.record:main")


def _add_replay(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="recorded log → topic",
        description="Replay a recorded log onto a topic, keyed by each event's port. Lines that are not "
        "valid events are sent as they are, so the worker's dead letters see them.",
    )
    p.add_argument("log", help="recorded log (.jsonl or .jsonl.gz)")
    p.add_argument("--speed", default="1", help="1 = original pace, N = N× faster, 'max' = as fast as possible")
    _add_progress_option(p)
    _add_kafka_options(p, "topic to replay into; use another one to keep live figures untouched")
    _add_patience_option(p)
    p.set_defaults(handler="producers.replay:main")


# ---- the worker (streams/) -----------------------------------------------------------------


def _add_worker(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="the stream processor (a Faust worker) serving /api/ports and /metrics",
        description="Consume sensor events, keep every port's figures and serve them over HTTP.",
    )
    p.add_argument("--web-host", default="127.0.0.1", help="address of the HTTP server (default 127.0.0.1)")
    p.add_argument("--web-port", type=int, default=6066, help="port of the HTTP server (default 6066)")
    _add_catalogue_option(p)
    p.add_argument("--data-dir", help="worker data directory (default: ./var/worker-<web port>)")
    p.add_argument("--loglevel", default="info", help="log level (default info)")
    p.add_argument(
        "--alertmanager",
        metavar="URL",
        help="Alertmanager whose firing alerts the wall display shows, e.g. http://127.0.0.1:9093 "
        "(default: $CROSSING_MONITOR_ALERTMANAGER; none: the wall shows no alerts)",
    )
    _add_kafka_options(p, "sensor events topic")
    p.set_defaults(handler="crossing_monitor.cli.worker:main")


# ---- dashboards (dashboards/) ----------------------------------------------------------------


def _add_dashboards(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dashboards",
        help="Grafana dashboards of the operations room",
        description="Manage the Grafana dashboards shipped with crossing-monitor.",
    )
    dsub = p.add_subparsers(dest="dashboards_command", metavar="SUBCOMMAND")
    dsub.required = True
    push = dsub.add_parser(
        "push",
        help="create or update the Prometheus data source and the dashboards in Grafana",
        description="Create or update the Prometheus data source and every shipped dashboard in Grafana "
        "(idempotent). Credentials come from the environment only: GRAFANA_TOKEN, or GRAFANA_USER and "
        "GRAFANA_PASSWORD.",
    )
    push.add_argument("--grafana-url", required=True, help="Grafana base URL, e.g. http://127.0.0.1:3000")
    push.add_argument(
        "--prometheus-url",
        default="http://127.0.0.1:9090",
        help="URL Grafana uses to reach Prometheus (default http://127.0.0.1:9090)",
    )
    push.set_defaults(handler="dashboards.push:main")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossing-monitor",
        description="Real-time monitor for land-border crossing ports.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (
        _add_demo,
        _add_analyze,
        _add_simulate,
        _add_record,
        _add_replay,
        _add_worker,
        _add_broker,
        _add_dashboards,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _handler(args.handler)(args)
    except UserError as exc:
        print(f"crossing-monitor {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"crossing-monitor {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())


def bootstrap_of(args: argparse.Namespace) -> str:
    """The Kafka bootstrap servers of a command's --bootstrap option (see kafka.bootstrap)."""
    return bootstrap_servers(args.bootstrap)
