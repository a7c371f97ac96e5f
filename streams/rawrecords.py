"""Hand the source topic's records on as aiokafka decoded them, without a `ConsumerRecord` each.

Why: for every record it hands out, aiokafka builds a `ConsumerRecord` (eleven fields, key and value
sizes, a tuple of the headers): about a microsecond a record in the consumer's thread, which shares
the GIL with the fold, and a fifth of the consumer's work in the worker's profile. The worker reads
three attributes of a source record (`offset`, `value`, `headers`), which the decoded record that
aiokafka wraps (`DefaultRecord`, `LegacyRecord`) has already. Records of every other topic (the
checkpoints' changelog, which Faust reads) are still wrapped as usual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka.consumer import fetcher

_raw: Counter[str] = Counter()  # topic: how many consumers of this process hand it out raw
_original: dict[str, Any] = {}  # aiokafka's own PartitionRecords._consumer_record


def _consumer_record(self: Any, tp: Any, record: Any) -> Any:
    if tp.topic in _raw:
        return record
    return _original["wrap"](self, tp, record)


def hand_out_raw(topics: Iterable[str]) -> Callable[[], None]:
    """From now on aiokafka consumers of this process hand out the records of `topics` as decoded
    (objects with `offset`, `value`, `key`, `headers`, `timestamp`); returns the function that stops it
    (aiokafka is itself again once no topic is left)."""
    topics = frozenset(topics)
    _original.setdefault("wrap", fetcher.PartitionRecords._consumer_record)
    fetcher.PartitionRecords._consumer_record = _consumer_record
    _raw.update(topics)
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        _raw.subtract(topics)
        for topic in topics:
            if _raw[topic] <= 0:
                del _raw[topic]
        if not _raw:
            fetcher.PartitionRecords._consumer_record = _original["wrap"]

    return stop
