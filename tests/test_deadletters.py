"""A dead letter always fits its topic's limit; the payload is cut, never reason, detail or position."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.deadletters import LIMIT, dead_letter

TOPIC = "crossing.events"
DETAIL = "not JSON: unexpected character: line 1 column 1 (char 0)"


def letter(raw: bytes, limit: int = LIMIT, detail: str = DETAIL) -> tuple[bytes, dict]:
    key, value = dead_letter(TOPIC, 3, 41, raw, "malformed", detail, limit)
    assert len(key) + len(value) <= limit
    return key, orjson.loads(value)


def payload_of(doc: dict) -> bytes:
    """The payload bytes a letter carries: exact for UTF-8 text and for base64."""
    return base64.b64decode(doc["payload_base64"]) if "payload_base64" in doc else doc["payload"].encode()


def assert_facts_whole(doc: dict, detail: str = DETAIL) -> None:
    assert (doc["reason"], doc["detail"], doc["topic"], doc["partition"], doc["offset"]) == (
        "malformed",
        detail,
        TOPIC,
        3,
        41,
    )


def test_a_small_payload_goes_whole_keyed_by_its_source_position():
    raw = b'{"event_id": "e1", "port": "moonbase"}'
    key, doc = letter(raw)
    assert key == b"crossing.events/3/41"
    assert_facts_whole(doc)
    assert doc["payload"] == raw.decode()
    assert "payload_truncated" not in doc and "payload_base64" not in doc


def test_900_kb_of_control_bytes_is_cut_to_fit_with_its_length_and_hash():
    raw = bytes(i % 32 for i in range(900_000))  # escaped, each byte is 6 bytes: 5.4 MB
    key, doc = letter(raw)
    assert_facts_whole(doc)
    assert doc["payload_truncated"] is True
    assert doc["payload_bytes"] == len(raw)
    assert doc["payload_sha256"] == hashlib.sha256(raw).hexdigest()
    cut = payload_of(doc)
    assert raw.startswith(cut) and len(cut) > 150_000  # as much as fits
    fuller = orjson.dumps({**doc, "payload": raw[: len(cut) + 1].decode()})
    assert len(key) + len(fuller) > LIMIT  # one byte more would not fit


def test_invalid_utf8_keeps_its_exact_bytes():
    raw = b"\xff\xfe\x00garbage \xc3(" + bytes(range(256))
    _key, doc = letter(raw)
    assert payload_of(doc) == raw
    assert "\ufffd" in doc["payload"]  # the readable text marks what is not UTF-8

    big = raw * 5000
    _key, doc = letter(big, limit=200_000)
    assert doc["payload_truncated"] is True and doc["payload_sha256"] == hashlib.sha256(big).hexdigest()
    assert big.startswith(payload_of(doc)) and len(payload_of(doc)) > 50_000


def test_exactly_at_the_limit_is_whole_and_one_byte_under_it_is_cut():
    raw = "口岸 ports\x07".encode() * 300
    key, value = dead_letter(TOPIC, 3, 41, raw, "malformed", DETAIL, 10**9)
    size = len(key) + len(value)
    assert dead_letter(TOPIC, 3, 41, raw, "malformed", DETAIL, size) == (key, value)
    _key, doc = letter(raw, size - 1)
    assert doc["payload_truncated"] is True and doc["payload_bytes"] == len(raw)
    assert raw.startswith(payload_of(doc))  # cut between characters: the text is valid, a prefix


def test_a_detail_too_large_for_any_letter_is_the_one_thing_cut_with_it():
    detail = "x" * 300_000
    _key, doc = letter(b"payload", limit=100_000, detail=detail)
    assert doc["detail_truncated"] is True and detail.startswith(doc["detail"]) and len(doc["detail"]) > 90_000
    assert doc["reason"] == "malformed" and doc["offset"] == 41


def test_a_limit_too_small_for_the_position_is_an_error():
    with pytest.raises(ValueError, match="crossing.events/3/41"):
        dead_letter(TOPIC, 3, 41, b"x", "malformed", DETAIL, 100)


@given(st.binary(max_size=3000), st.integers(400, 4000))
def test_any_payload_fits_with_facts_whole_and_is_exact_or_marked_cut(raw, limit):
    _key, doc = letter(raw, limit)
    assert_facts_whole(doc)
    if doc.get("payload_truncated"):
        assert raw.startswith(payload_of(doc)) and doc["payload_bytes"] == len(raw)
        assert doc["payload_sha256"] == hashlib.sha256(raw).hexdigest()
    else:
        assert payload_of(doc) == raw
