"""A simulation run: several ports' models, their faults, merged into one stream in sending order.

This is the library face of `crossing-monitor simulate`: tests and benchmarks build a Run and
iterate it, or write it to a log, without a command line.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from math import inf
from typing import Any

from crossing_monitor.core.catalogue import Catalogue
from producers.config import ConfigError, PortConfig, port_config
from producers.faults import Faults, offline_window, skewed_sensor, with_faults
from producers.model import Emitted, PortModel
from producers.native import NativePortModel, port_model
from producers.scenarios import Scenario

Item = tuple[int, int, bytes]  # (time of sending in epoch ms, index of the port in Run.ports, event bytes)


@dataclass
class Run:
    """Ports from `start` for `days` (inf: no end); iterate `events()` once."""

    catalogue: Catalogue
    ports: Sequence[str]
    start: datetime
    days: float = 1.0
    seed: int = 1
    regime: str | None = None
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    stats: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        unknown = [p for p in self.ports if p not in self.catalogue]
        if unknown:
            raise ConfigError(f"unknown port {unknown[0]!r}; the catalogue has {', '.join(self.catalogue)}")
        if not self.ports:
            raise ConfigError("no ports to simulate")
        if self.start.tzinfo is None:
            raise ConfigError("the start must be an aware datetime")
        if not self.days > 0:
            raise ConfigError("--days must be more than 0")
        for incident in self.faults.incidents:
            if incident.port not in self.catalogue:
                raise ConfigError(f"fault incident={incident}: unknown port {incident.port!r}")

    @property
    def start_s(self) -> float:
        return self.start.timestamp()

    @property
    def end_s(self) -> float:
        return inf if self.days == inf else self.start_s + self.days * 86400

    @property
    def keys(self) -> list[bytes]:
        """The Kafka message key of each port, by index."""
        return [p.encode() for p in self.ports]

    def config(self, index: int) -> PortConfig:
        """What the model of the port `ports[index]` is built from (ConfigError for a bad override)."""
        slug = self.ports[index]
        cfg = port_config(self.catalogue[slug], self.overrides.get(slug), self.regime)
        if self.faults.skew:
            cfg = dataclasses.replace(cfg, skew_seconds={skewed_sensor(slug, dict(cfg.lanes)): self.faults.skew})
        out = []
        for incident in self.faults.incidents:
            if incident.port == slug:
                t0, t1 = incident.window(self.start, cfg.tz)
                for what in ("outbound", "inbound") if incident.what == "both" else (incident.what,):
                    built = cfg.scanners if what == "scanners" else cfg.lanes[what]
                    out.append((t0, t1, what, built if incident.count is None else min(incident.count, built)))
        if out:
            cfg = dataclasses.replace(cfg, incidents=tuple(out))
        return cfg

    def model(self, index: int) -> tuple[PortModel | NativePortModel, Iterator[Emitted]]:
        """The model of the port `ports[index]` (the compiled one where it is available: the same events),
        and its event stream with the faults applied: (time of sending in epoch ms, event bytes) in
        sending order. Each port's stream depends on nothing but the run's settings and the port, so it
        is the same whichever process makes it."""
        slug = self.ports[index]
        model = port_model(self.config(index), self.start_s, self.end_s, self.seed)
        model.stats = self.stats  # one tally for the run
        stream: Iterator[Emitted] = model.events()
        if self.faults.any_in_stream:
            rng = random.Random(f"{self.seed}:{slug}:{round(self.start_s * 1000)}:faults")
            window = (
                offline_window(rng, self.start_s, self.end_s, self.faults.offline, model.next_open)
                if self.faults.offline
                else None
            )
            stream = with_faults(stream, self.faults, rng, window, self.stats)
        return model, stream

    def models(self) -> list[tuple[PortModel | NativePortModel, Iterator[Emitted]]]:
        """One model per port, and its event stream with the faults applied."""
        return [self.model(i) for i in range(len(self.ports))]

    def events(self) -> Iterator[Item]:
        """All ports' events in the order they are sent (by time of sending, then port order)."""
        streams = [_tagged(stream, i) for i, (_, stream) in enumerate(self.models())]
        if len(streams) == 1:
            yield from streams[0]
        else:
            yield from heapq.merge(*streams)

    def lines(self) -> Iterator[bytes]:
        """Just the serialised events, in sending order."""
        for _, _, data in self.events():
            yield data


def _tagged(stream: Iterator[Emitted], index: int) -> Iterator[Item]:
    for ms, data in stream:
        yield ms, index, data


def from_scenario(catalogue: Catalogue, sc: Scenario, **changes: Any) -> Run:
    """The Run a scenario describes; keyword arguments (seed, faults, days...) change it."""
    ports = list(sc.ports)
    tz = catalogue[ports[0]].tz if ports[0] in catalogue else None
    start = datetime.fromisoformat(sc.start)
    if start.tzinfo is None and tz is not None:
        start = start.replace(tzinfo=tz)
    params: dict[str, Any] = {
        "catalogue": catalogue,
        "ports": ports,
        "start": start,
        "days": sc.days,
        "regime": sc.regime,
        "overrides": sc.overrides,
    }
    params.update({k: v for k, v in changes.items() if v is not None})
    return Run(**params)
