"""HTTP interface of the worker (SPEC §3): /api/ports, /api/ports/{port}, /metrics, /healthz, the wall.

A port's figures live on the worker that owns its partition. Any worker answers for every port:
it asks Faust's router which worker owns a port and fetches that worker's local answer
(`?local=1`), so a wall display can point at any worker. The views read everything from their
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
from streams.workerapp import WorkerApp

log = logging.getLogger("crossing_monitor.worker")


def _json(web: Any, data: Any, status: int = 200) -> Response:
    return web.bytes(orjson.dumps(data), content_type="application/json", status=status)


def _worker(view: View) -> WorkerApp:
    return cast(WorkerApp, view.app)


def _owner_url(app: WorkerApp, port: str) -> str | None:
    """Base URL of the worker that owns `port`, or None when this worker does."""
    try:
        url = app.router.external_topic_key_store(app.events_topic, port.encode())
    except (KeyError, IndexError, AttributeError, TypeError):
        return None  # no assignment or topic metadata yet (starting up): answer from what this worker has
    me = (app.settings.web_host, app.settings.web_port)
    if (url.host, url.port) == me:
        return None
    return str(url).rstrip("/")


def local_report(app: WorkerApp, port: str) -> dict[str, Any] | None:
    metrics = app.processor.port_metrics(port)
    return None if metrics is None else metrics.report()


async def _fetch(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
        if resp.status == 404:
            return None
        resp.raise_for_status()
        return orjson.loads(await resp.read())


async def _remote(owners: dict[str, list[str]], path: str) -> dict[str, Any]:
    """GET `path` from each other worker; {base url: answer}."""
    if not owners:
        return {}
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(*(_fetch(session, base + path) for base in owners), return_exceptions=True)
    answers = {}
    for base, result in zip(owners, results, strict=True):
        if isinstance(result, BaseException):
            raise RuntimeError(f"worker {base} did not answer: {result}")
        answers[base] = result
    return answers


class PortsView(View):
    """All ports: the same object `analyze --format json` prints."""

    async def get(self, request: Request) -> Response:
        app = _worker(self)
        catalogue, processor = app.catalogue, app.processor
        local_only = request.query.get("local") == "1"
        owners: dict[str, list[str]] = {}
        ports: dict[str, Any] = {}
        for slug in catalogue:
            owner = None if local_only else _owner_url(app, slug)
            if owner is None:
                report = local_report(app, slug)
                if report is not None:
                    ports[slug] = report
            else:
                owners.setdefault(owner, []).append(slug)
        rejected = dict.fromkeys(REJECT_REASONS, 0)
        for reason, n in processor.rejected().items():
            rejected[reason] += n
        try:
            answers = await _remote(owners, "/api/ports?local=1")
        except RuntimeError as exc:
            return _json(self, {"error": str(exc)}, status=503)
        for answer in answers.values():
            for slug, report in answer["ports"].items():
                ports[slug] = report
            for reason, n in answer["rejected"].items():
                rejected[reason] += n
        ordered = {slug: ports[slug] for slug in catalogue if slug in ports}
        return _json(self, {"ports": ordered, "rejected": rejected})


class PortView(View):
    """One port's object; 404 with a JSON error for a port that is not in the catalogue."""

    async def get(self, request: Request, port: str) -> Response:
        app = _worker(self)
        catalogue = app.catalogue
        if port not in catalogue:
            return _json(self, {"error": f"unknown port {port!r}", "ports": list(catalogue)}, status=404)
        owner = None if request.query.get("local") == "1" else _owner_url(app, port)
        if owner is not None:
            try:
                answers = await _remote({owner: [port]}, f"/api/ports/{port}?local=1")
            except RuntimeError as exc:
                return _json(self, {"error": str(exc)}, status=503)
            return _json(self, answers[owner])
        report = local_report(app, port)
        if report is None:  # no event yet: the figures of an empty port
            report = PortMetrics(port, catalogue[port].timezone).report()
        return _json(self, report)


class MetricsView(View):
    """Prometheus exposition of this worker's ports and health."""

    async def get(self, request: Request) -> Response:
        return self.bytes(generate_latest(_worker(self).registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])


class HealthView(View):
    async def get(self, request: Request) -> Response:
        processor = _worker(self).processor
        return _json(
            self,
            {
                "status": "ok",
                "assigned": processor.group.assigned(),
                "partitions": sorted(processor.partitions),
                "events_processed": processor.events_processed,
                "batches_folded": processor.batches_folded,
                "reads_again": processor.reads_again,
                "offsets_missing": processor.offsets_missing,
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


def register(app: WorkerApp) -> None:
    """Add the views to `app`, and the /metrics registry that reads its processor."""
    app.registry = CollectorRegistry(auto_describe=False)
    app.registry.register(WorkerCollector(app.processor, app, app.settings))
    for path, view in VIEWS:
        app.page(path)(view)
