"""The compiled grouping of `replay --speed max` (`native/src/replay.rs`) gives the lines and keys of
producers/replay.py: the same messages (line ends, blank lines), the same key for each, each key's
messages in the log's order; and replay puts the same messages on the topic with it as without it."""

from __future__ import annotations

import asyncio
import io
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from messy import messy_log

from producers import replay as replay_module
from producers.replay import key_of, messages

native = pytest.importorskip("crossing_monitor_native")
group_by_key = native.group_by_key

PIECES = [
    b'{"port":"khorgos","ts":"2024-05-01T00:00:00+08:00"}',
    b'{"type":"gate.entered", "port" :\t"lektse", "lane": 2}',
    b'{"port": "zhangmu", "note": "the \\"port\\": \\"x\\""}',  # escaped quotes: "port" twice
    b'{"port":"a","port":"b"}',  # twice: JSON says the last
    b'{"p\\u006frt":"gyirong"}',  # no "port" as bytes: parsed
    b'"port"port": "burang"',  # overlapping starts: the second one matches
    b'{"port":"' + b"x" * 200 + b'"}',
    b'{"port":"' + b"x" * 201 + b'"}',  # too long for the pattern: no key
    b'{"port":"back\\\\slash"}',
    b'{"port":""}',
    b'{"port":"\xff\xfe"}',  # not UTF-8: still a key by the pattern
    b'{"port": 7}',
    b"not json at all",
    b"port",
    b"",
    b"   ",
    b"\t\x0b\x0c",
    b"\r",
    b"\xa0",  # not an ASCII blank: a message
    b'{"port"\r:\n"alashankou"}',
]
ends = st.sampled_from([b"\n", b"\r\n", b"\r\r\n", b"\n\n"])
lines = st.lists(st.tuples(st.sampled_from(PIECES) | st.binary(max_size=40), ends), max_size=40)


def _reference(block: bytes) -> tuple[dict[bytes, list[bytes]], list[bytes]]:
    groups: dict[bytes, list[bytes]] = {}
    keyless: list[bytes] = []
    for line in messages(iter(io.BytesIO(block))):  # a file's lines, as replay reads them
        key = key_of(line)
        if key is None:
            keyless.append(line)
        else:
            groups.setdefault(key, []).append(line)
    return groups, keyless


def _compiled(block: bytes) -> tuple[dict[bytes, list[bytes]], list[bytes]]:
    found, keyless = group_by_key(block, key_of)
    groups = {}
    for key, count, joined in found:
        assert key not in groups
        values = joined.split(b"\n")
        assert len(values) == count
        groups[key] = values
    return groups, keyless


@settings(max_examples=400, deadline=None)
@given(lines, st.booleans())
def test_a_block_gives_replays_lines_and_keys(parts, last_line_open):
    block = b"".join(text + end for text, end in parts)
    if last_line_open and parts:
        block = block.rstrip(b"\n")  # a log whose last line has no newline
    want = _reference(block)
    got = _compiled(block)
    assert got == want
    assert list(got[0]) == list(want[0])  # keys in the order they first appear


def test_every_piece_alone_is_keyed_as_replay_keys_it():
    for piece in PIECES:
        assert _compiled(piece + b"\n") == _reference(piece + b"\n"), piece


class _Collect:
    """A publisher that keeps what it is handed: per key, in order."""

    def __init__(self) -> None:
        self.got: dict[bytes | None, list[bytes]] = {}

    async def send(self, key: bytes | None, value: bytes) -> None:
        self.got.setdefault(key, []).append(value)

    async def send_joined(self, key: bytes, blob: bytes, count: int) -> None:
        values = blob.split(b"\n")
        assert len(values) == count
        self.got.setdefault(key, []).extend(values)


@settings(max_examples=150, deadline=None)
@given(lines, st.integers(min_value=1, max_value=64), st.booleans())
def test_blocks_cut_from_small_chunks_give_what_the_line_by_line_path_gives(parts, size, last_line_open):
    """Lines cut across chunks (a CRLF too), chunks without a newline, a last line without one."""
    from crossing_monitor.logs.files import read_chunks, read_lines

    data = b"".join(text + end for text, end in parts)
    if last_line_open:
        data = data.rstrip(b"\n")
    compiled, python = _Collect(), _Collect()
    asyncio.run(replay_module._blocks_at_max_speed(read_chunks(io.BytesIO(data), "x", size), group_by_key,
                                                   compiled, lambda: None))  # fmt: skip
    asyncio.run(replay_module._at_max_speed(messages(read_lines(io.BytesIO(data), "x")), python, lambda: None))
    keyless = compiled.got.pop(None, []), python.got.pop(None, [])
    assert compiled.got == python.got  # each key's messages, in order
    assert keyless[0] == keyless[1]


def test_replay_puts_the_same_messages_on_the_topic_with_and_without_the_compiled_grouping(
    kafka, tmp_path, monkeypatch
):
    from workers import consume_all

    raw, _ = messy_log(days=0.5, seed=3)
    log = tmp_path / "messy.jsonl"
    log.write_bytes(b"".join(line + b"\n" for line in raw) + b"   \n\r\n" + raw[0])  # blank lines, open end
    got = {}
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(replay_module, "group_by_key", lambda: None)
        topic = f"replay-{uuid.uuid4().hex[:8]}"
        sent = asyncio.run(replay_module.replay(str(log), kafka.bootstrap, topic, None, False))
        by_key: dict[bytes | None, list[bytes]] = {}
        for message in consume_all(kafka.bootstrap, topic):
            by_key.setdefault(message.key, []).append(message.value)
        got[compiled] = (sent, {k: v if k is not None else sorted(v) for k, v in by_key.items()})
    assert got[True] == got[False]
    assert got[True][0] == len(list(messages(iter(io.BytesIO(log.read_bytes())))))
