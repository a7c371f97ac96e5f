"""Read past a record batch that cannot be decoded, instead of failing on it for ever.

aiokafka decodes a fetched batch while `getmany` hands its records out (`PartitionRecords.
_unpack_records`, called from `Fetcher.fetched_records` through `FetchResult.getall`): a batch in
a codec whose library is missing raises `UnsupportedCodecError`, a damaged one
`CorruptRecordException`. The exception leaves the fetch position where it was, so every later
`getmany` fetches the same batch and raises again; in the worker it ends Faust's Fetcher service
and the process. `skip_undecodable` makes aiokafka skip such a batch: its records are not handed
out, the position moves past its last offset, and `on_skip` is told which offsets were lost, so
that the worker can log, count and report them. Records before and after it are read as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException, UnsupportedCodecError
from aiokafka.structs import TopicPartition

OnSkip = Callable[[TopicPartition, int, int, Exception], None]  # (partition, first offset, last offset, error)
UNDECODABLE = (UnsupportedCodecError, CorruptRecordException)

_on_skip: list[OnSkip] = []
_original: dict[str, Any] = {}  # aiokafka's own PartitionRecords.__init__


class _Batch:
    """One record batch; its records, or none when it cannot be decoded (the CRC is checked here too)."""

    def __init__(self, tp: TopicPartition, batch: Any) -> None:
        self._tp = tp
        self._batch = batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def validate_crc(self) -> bool:
        return True  # checked in __iter__, where a bad one is skipped rather than raised

    def __next__(self) -> Any:
        """aiokafka reads a control batch's marker with next() (isolation level read_committed)."""
        return next(self._batch)

    def __iter__(self) -> Iterator[Any]:
        """The batch's records, decoded in one C-level pass (a generator here cost a Python frame
        switch per record); the records before a damaged one are still handed out."""
        batch = self._batch
        records: list[Any] = []
        try:
            if not batch.validate_crc():
                raise CorruptRecordException(f"invalid CRC - {self._tp}")
            records.extend(batch)  # a compressed batch is decoded here, a record may be damaged
        except UNDECODABLE as exc:
            first = records[-1].offset + 1 if records else batch.base_offset  # the first offset not handed out
            for report in list(_on_skip):
                report(self._tp, first, batch.next_offset - 1, exc)
        return iter(records)


class _Records:
    """A fetch's records of one partition, handing out batches as `_Batch`es."""

    def __init__(self, tp: TopicPartition, records: Any) -> None:
        self._tp = tp
        self._records = records

    def has_next(self) -> bool:
        return self._records.has_next()

    def next_batch(self) -> _Batch:
        return _Batch(self._tp, self._records.next_batch())


def skip_undecodable(on_skip: OnSkip) -> Callable[[], None]:
    """From now on every aiokafka consumer of this process skips undecodable batches and calls
    `on_skip`; returns the function that stops it (aiokafka is itself again once none is left)."""
    _on_skip.append(on_skip)
    if len(_on_skip) == 1:
        original = _original.setdefault("init", fetcher.PartitionRecords.__init__)

        def init(self: Any, tp: TopicPartition, records: Any, *args: Any, **kwargs: Any) -> None:
            original(self, tp, _Records(tp, records), *args, **kwargs)

        fetcher.PartitionRecords.__init__ = init

    def stop() -> None:
        if on_skip in _on_skip:
            _on_skip.remove(on_skip)
        if not _on_skip:
            fetcher.PartitionRecords.__init__ = _original["init"]

    return stop
