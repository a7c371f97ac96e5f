"""Each port's /api/ports object, built once per change of its state and kept as JSON.

Why: a port's report (every day since the start, the last hour's averages, the forecast, the trends)
takes milliseconds to build and serialise, and /api/ports is asked often: by the wall's broadcaster
every second, by every other worker for the ports this one holds, by anyone polling for a fresh
figure. A report reads only its partition's state, which changes only when that partition folds a
record (its `next_offset` moves) or is replaced (a restore after a rebalance: another object), so the
JSON is kept until either happens. The figures served are exactly those of a fresh report.
"""

from __future__ import annotations

import weakref

import orjson

from streams.state import PartitionState


class ReportCache:
    """{(partition, port): the JSON of the port's report} for the state generation it was built from."""

    def __init__(self) -> None:
        self._kept: dict[tuple[int, str], tuple[weakref.ref[PartitionState], int, orjson.Fragment]] = {}
        self.built = 0  # reports built (the rest were served as kept)

    def get(self, part: PartitionState, slug: str) -> orjson.Fragment:
        """The port's report as JSON (an orjson fragment: embedded as is in a larger answer)."""
        key = (part.partition, slug)
        kept = self._kept.get(key)
        offset = part.next_offset
        if kept is not None and kept[1] == offset and kept[0]() is part:
            return kept[2]
        fragment = orjson.Fragment(orjson.dumps(part.monitor.ports[slug].report()))
        self._kept[key] = (weakref.ref(part), offset, fragment)
        self.built += 1
        return fragment
