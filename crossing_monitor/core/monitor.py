"""All ports' metrics and the rejected counts: what a log or a topic is folded into.

The one place where raw input meets the metric core; `analyze` and the worker both use it, so a
message is judged the same way whichever way it comes in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from orjson import JSONDecodeError, loads

from crossing_monitor.core.catalogue import Catalogue
from crossing_monitor.core.clock import format_ts
from crossing_monitor.core.events import REJECT_REASONS, Event, Rejection, parse, validate
from crossing_monitor.core.metrics import PortMetrics


def decode_json(raw: bytes | str) -> Any:
    """The JSON value of a message, or None when it is not JSON (`Monitor.process_decoded` judges it)."""
    try:
        return loads(raw)
    except JSONDecodeError:
        return None


class Monitor:
    """Per-port PortMetrics, created on a port's first valid event, and rejections by reason."""

    def __init__(self, catalogue: Catalogue, *, skip_blank: bool = False) -> None:
        self.catalogue = catalogue
        self.skip_blank = skip_blank  # a log's blank lines are no events; a blank message is malformed
        self.slugs = frozenset(catalogue)  # a frozenset: membership is the hot path's port check
        self.ports: dict[str, PortMetrics] = {}
        self.rejected: dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)
        # analyze --predictions: called with each accepted arrival and the forecast the state showed before it
        self.on_arrival: Callable[[Event, str, float], None] | None = None

    def metrics(self, port: str) -> PortMetrics:
        found = self.ports.get(port)
        if found is None:
            found = self.ports[port] = PortMetrics(port, self.catalogue[port].timezone, self.catalogue[port])
        return found

    def process(self, raw: bytes | str) -> Event | Rejection:
        """Judge one message and fold it in; the Rejection says why it goes to the dead letters."""
        return self.process_decoded(raw, decode_json(raw))

    def process_decoded(self, raw: bytes | str, obj: Any) -> Event | Rejection:
        """`process` for a message its caller has already decoded (`decode_json(raw)`): the worker reads
        each record's port before folding it, and a record is parsed once."""
        # the common case inline (a JSON object); anything else goes through `parse` for its reason
        result = validate(obj, self.slugs) if type(obj) is dict else parse(raw, self.slugs)
        if type(result) is Rejection:
            if self.skip_blank and not raw.strip():
                return result
            self.rejected[result.reason] += 1
            return result
        port = self.ports.get(result.port)
        if self.on_arrival is not None and result.type == "vehicle.arrived":
            return self._process_arrival(result, port)
        accepted = self._apply(result, port)
        if type(accepted) is Rejection:
            return accepted
        if not accepted:
            self.rejected["duplicate"] += 1
            return Rejection("duplicate", f"event_id {result.event_id!r} was already seen")
        return result

    def _process_arrival(self, ev: Event, port: PortMetrics | None) -> Event | Rejection:
        """`process` for an arrival when predictions are asked for: the forecast is read before the fold."""
        if port is not None and ev.event_id in port.ids:
            self.rejected["duplicate"] += 1
            return Rejection("duplicate", f"event_id {ev.event_id!r} was already seen")
        try:
            predicted = 0.0 if port is None else port.forecaster.predicted_only(port, ev.direction)
        except Exception:  # noqa: BLE001 - reading a figure must not stop the fold either; the line still comes
            predicted = 0.0
        accepted = self._apply(ev, port)
        if type(accepted) is Rejection:
            return accepted
        port = self.ports[ev.port]
        self.on_arrival(ev, format_ts(port.clock.local(ev.ts)), predicted)  # type: ignore[misc]
        return ev

    def _apply(self, ev: Event, port: PortMetrics | None) -> bool | Rejection:
        """Fold a valid event into its port (made on its first event, kept only once that is in): whether
        it was new, or an `invalid` Rejection when folding failed (apply changed nothing then)."""
        try:
            if port is None:
                port = PortMetrics(ev.port, self.catalogue[ev.port].timezone, self.catalogue[ev.port])
                accepted = port.apply(ev)
                self.ports[ev.port] = port
                return accepted
            return port.apply(ev)
        except Exception as exc:  # noqa: BLE001 - one event must never stop the monitor
            self.rejected["invalid"] += 1
            return Rejection("invalid", str(exc) or type(exc).__name__)

    def process_all(self, messages: Iterable[bytes | str]) -> None:
        process = self.process
        for raw in messages:
            process(raw)

    def port_states(self) -> dict[str, dict[str, Any]]:
        """Every port's state (`PortMetrics.to_state()`), for a checkpoint of the live worker."""
        return {slug: m.to_state() for slug, m in self.ports.items()}

    def load_port(self, slug: str, state: dict[str, Any]) -> None:
        """Take a port's state from a checkpoint (`PortMetrics.from_state`: an exception for one it cannot read)."""
        self.ports[slug] = PortMetrics.from_state(state, self.catalogue.get(slug))

    def report(self) -> dict[str, Any]:
        """The object `analyze --format json` prints (SPEC §3): ports in catalogue order."""
        return {
            "ports": {slug: self.ports[slug].report() for slug in self.catalogue if slug in self.ports},
            "rejected": dict(self.rejected),
        }
