"""HTTP interface of the worker (SPEC §3): /api/ports, /api/ports/{port}, /metrics, /healthz, the wall.

A port's figures live on the worker whose partition state holds them. Any worker answers for every
port: it asks every worker of the group's current assignment (Faust's assignor metadata) for its
local answer (`?local=1`: its ports and which partition holds each), so a wall display can point at
any worker, whatever partitioner the sensors' producers used; a worker that does not answer is
named, with the reason, never silent zeros. The views read everything from their
app (`streams.workerapp.WorkerApp`); `register` adds them to one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import aiohttp
import orjson
from aiohttp import web as aioweb
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from crossing_monitor.core.events import REJECT_REASONS
from crossing_monitor.core.metrics import PortMetrics
from streams import display
from streams.display.broadcast import Broadcaster
from streams.exporter import WorkerCollector
from streams.reports import ReportCache
from streams.workerapp import WorkerApp

log = logging.getLogger("crossing_monitor.worker")


def _json(web: Any, data: Any, status: int = 200) -> Response:
    return web.bytes(orjson.dumps(data), content_type="application/json", status=status)


def _worker(view: View) -> WorkerApp:
    return cast(WorkerApp, view.app)


def _workers(app: WorkerApp) -> dict[str, list[int]]:
    """{base URL: source partitions} of every worker in the group's current assignment (Faust's
    assignor spreads it to all members); empty before the first assignment."""
    try:
        distribution = app.assignor.external_topics_metadata()
    except Exception:  # noqa: BLE001 - no assignment yet
        return {}
    workers: dict[str, list[int]] = {}
    for url, topics in distribution.items():
        workers[str(url).rstrip("/")] = sorted(topics.get(app.settings.topic, []))
    return workers


def _me(app: WorkerApp) -> str:
    return str(app.conf.canonical_url).rstrip("/")


def local_ports(app: WorkerApp, only: str | None = None) -> dict[str, Any]:
    """What this worker holds: its ports' figures (of port `only`, when given), its rejected counts, and
    which partition's state holds each port (so that another worker can tell whose figures a port's
    are). The figures come from the app's report cache (`streams.reports`): built once per state change."""
    processor = app.processor
    reports: ReportCache = app.reports
    ports: dict[str, Any] = {}
    held: dict[str, list[str]] = {}
    for p, part in sorted(processor.partitions.items()):
        held[str(p)] = sorted(part.monitor.ports)
        for slug in part.monitor.ports:
            # two states of one port: the lower partition's (see _merge)
            if slug not in ports and (only is None or slug == only):
                ports[slug] = reports.get(part, slug)
    rejected = dict.fromkeys(REJECT_REASONS, 0)
    for reason, n in processor.rejected().items():
        rejected[reason] += n
    return {"ports": ports, "rejected": rejected, "partitions": held, "worker": _me(app)}


async def _fetch(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
        resp.raise_for_status()
        return orjson.loads(await resp.read())


async def _ask_all(app: WorkerApp) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every worker's local answer (this one's without HTTP), and the workers that did not answer,
    with the partitions they hold by the assignment and the reason."""
    workers = _workers(app)
    me = _me(app)
    answers = [local_ports(app)]
    others = [url for url in workers if url != me]
    if not others:
        return answers, []
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(
            *(_fetch(session, url + "/api/ports?local=1") for url in others), return_exceptions=True
        )
    unreachable = []
    for url, result in zip(others, results, strict=True):
        if isinstance(result, BaseException):
            reason = f"{type(result).__name__}: {result}".rstrip(": ")
            unreachable.append({"worker": url, "partitions": workers[url], "reason": reason})
        else:
            answers.append(result)
    return answers, unreachable


def _merge(answers: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, int]]:
    """Ports and rejected counts over the workers' local answers. A port is in one partition's state
    (misrouted events are forwarded to its partition); should two states hold it (a checkpoint
    written before forwarding existed), the lower partition's is taken, whichever worker holds it."""
    chosen: dict[str, tuple[int, Any]] = {}
    rejected = dict.fromkeys(REJECT_REASONS, 0)
    for answer in answers:
        where = {slug: int(p) for p, slugs in answer.get("partitions", {}).items() for slug in slugs}
        for slug, report in answer["ports"].items():
            partition = where.get(slug, 1 << 30)
            if slug not in chosen or partition < chosen[slug][0]:
                chosen[slug] = (partition, report)
        for reason, n in answer["rejected"].items():
            rejected[reason] = rejected.get(reason, 0) + n
    return {slug: report for slug, (_, report) in chosen.items()}, rejected


class PortsView(View):
    """All ports: the same object `analyze --format json` prints, gathered from every worker of the
    group; `"unreachable"` lists the workers that did not answer (their ports are missing)."""

    async def get(self, request: Request) -> Response:
        app = _worker(self)
        if request.query.get("local") == "1":
            return _json(self, local_ports(app))
        answers, unreachable = await _ask_all(app)
        ports, rejected = _merge(answers)
        body: dict[str, Any] = {
            "ports": {slug: ports[slug] for slug in app.catalogue if slug in ports},
            "rejected": rejected,
        }
        if unreachable:
            body["unreachable"] = unreachable
        return _json(self, body)


class PortView(View):
    """One port's object; 404 with a JSON error for a port that is not in the catalogue, 503 with
    the reason when the port is not found and a worker that may hold it did not answer."""

    async def get(self, request: Request, port: str) -> Response:
        app = _worker(self)
        catalogue = app.catalogue
        if port not in catalogue:
            return _json(self, {"error": f"unknown port {port!r}", "ports": list(catalogue)}, status=404)
        if request.query.get("local") == "1":
            answers, unreachable = [local_ports(app, port)], []
        else:
            answers, unreachable = await _ask_all(app)
        report = _merge(answers)[0].get(port)
        if report is None and unreachable:
            return _json(
                self,
                {"error": f"the worker holding {port!r} cannot be reached", "port": port, "unreachable": unreachable},
                status=503,
            )
        if report is None:  # no event yet: the figures of an empty port
            report = PortMetrics(port, catalogue[port].timezone).report()
        return _json(self, report)


class MetricsView(View):
    """Prometheus exposition of this worker's ports and health."""

    async def get(self, request: Request) -> Response:
        return self.bytes(generate_latest(_worker(self).registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])


def _undecodable(app: WorkerApp) -> dict[str, Any]:
    skipped = getattr(app.transport, "skipped", None)
    if skipped is None:
        return {"batches": 0, "records": 0, "recent": []}
    return {"batches": skipped.count, "records": skipped.records, "recent": list(skipped.recent)}


class HealthView(View):
    async def get(self, request: Request) -> Response:
        processor = _worker(self).processor
        return _json(
            self,
            {
                "status": "ok",
                "assigned": processor.group.assigned(),
                "rebalancing": processor.group.rebalancing,
                "rebalancing_seconds": processor.rebalancing_for(),
                "partitions": sorted(processor.partitions),
                "events_processed": processor.events_processed,
                "batches_folded": processor.batches_folded,
                "reads_again": processor.reads_again,
                "offsets_missing": processor.offsets_missing,
                "events_forwarded": processor.events_forwarded,
                "fold_errors": processor.fold_errors,
                "undecodable": _undecodable(_worker(self)),
                "state": {
                    str(p): {
                        "restored_offset": part.restored_offset,
                        "next_offset": part.next_offset,
                        "unsaved": part.unsaved,
                        "checkpoint_offset": part.checkpoint_offset,
                        "durable_offset": part.durable_offset,
                        "committed_offset": part.committed_offset,
                        "rejected": part.monitor.rejected,
                        "ports": sorted(part.monitor.ports),
                    }
                    for p, part in sorted(processor.partitions.items())
                },
            },
        )


# --- wall display (issue 7): page, assets, server-sent events --------------------------------------


class DisplayPage(View):
    """The wall display: one tile per catalogue port."""

    async def get(self, request: Request) -> Response:
        body, ctype = display.asset("index.html")
        return self.bytes(body, content_type=ctype)


class DisplayMeta(View):
    async def get(self, request: Request) -> Response:
        return _json(self, display.targets(_worker(self).catalogue))


def _broadcaster(app: WorkerApp) -> Broadcaster:
    """The worker's one broadcaster, started with the first page that connects."""
    found = getattr(app, "wall_broadcaster", None)
    if found is None:
        settings = app.settings
        url = f"http://{settings.web_host}:{settings.web_port}/api/ports"
        found = Broadcaster(url, app.catalogue, getattr(settings, "alertmanager", None))
        app.wall_broadcaster = found  # type: ignore[attr-defined]
    found.start()
    return found


class DisplayEvents(View):
    """Server-sent events: `display` (the slim payload of streams.display.broadcast) whenever it
    changes, the same bytes for every page; `ping` every 2 s otherwise."""

    async def get(self, request: Request) -> Any:
        resp = aioweb.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        hub = _broadcaster(_worker(self))
        seen = 0  # version 0: no frame yet
        try:
            while True:
                if hub.version != seen and hub.frame is not None:
                    seen = hub.version
                    await resp.write(hub.frame)
                else:
                    await resp.write(b"event: ping\ndata: {}\n\n")
                await hub.wait(seen, 2.0)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp


class DisplayPortPage(View):
    """One port large (`/port/{slug}`): the same page, which reads the slug from its address."""

    async def get(self, request: Request, slug: str) -> Response:
        if slug not in _worker(self).catalogue:
            return _json(self, {"error": f"unknown port {slug!r}"}, status=404)
        body, ctype = display.asset("index.html")
        return self.bytes(body, content_type=ctype)


class DisplayAsset(View):
    async def get(self, request: Request, name: str) -> Response:
        found = display.asset(name)
        if found is None:
            return _json(self, {"error": f"no asset {name!r}"}, status=404)
        return self.bytes(found[0], content_type=found[1])


VIEWS: list[tuple[str, type[View]]] = [
    ("/api/ports", PortsView),
    ("/api/ports/{port}", PortView),
    ("/metrics", MetricsView),
    ("/healthz", HealthView),
    ("/", DisplayPage),
    ("/display/meta.json", DisplayMeta),
    ("/display/events", DisplayEvents),
    ("/port/{slug}", DisplayPortPage),
    ("/display/{name}", DisplayAsset),
]


def register(app: WorkerApp) -> WorkerCollector:
    """Add the views to `app`, and the /metrics registry that reads its processor (returned)."""
    app.reports = ReportCache()
    app.registry = CollectorRegistry(auto_describe=False)
    collector = WorkerCollector(app.processor, app, app.settings)
    app.registry.register(collector)
    for path, view in VIEWS:
        app.page(path)(view)
    return collector
