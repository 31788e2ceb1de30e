"""Property-based tests of the payload decoder: whatever bytes a store hands back, decoding
gives a well-typed Payload or raises BadPayload, and nothing else."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conveyor.codec import BadPayload, Codec, Payload, normalize_keys

from .conftest import FULL

KEY = b"k" * 32
OLD_KEY = b"o" * 32
PLAIN = Codec([])
SIGNED = Codec(normalize_keys([KEY, OLD_KEY]))
SIGNED_OLD = Codec(normalize_keys(OLD_KEY))
JOB = ("01900000-0000-7000-8000-000000000000", "default", 3)

# JSON values as orjson reads them back: 64-bit ints, finite floats, text without lone
# surrogates (orjson refuses to encode those, as the caller's check_json would not).
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_scalar = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
json_values = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=25,
)
FAST = settings(
    max_examples=2000 if FULL else 150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _check(payload: Payload) -> None:
    assert type(payload.task) is str and payload.task
    assert type(payload.args) is list
    assert type(payload.kwargs) is dict
    assert payload.backoff is None or (type(payload.backoff) in (int, float) and payload.backoff >= 0)


def _decode(codec: Codec, data: bytes) -> Payload | None:
    try:
        payload = codec.decode_payload(*JOB, data)
    except BadPayload as exc:
        assert str(exc)  # a reason, for the dead job's last_error
        return None
    _check(payload)
    return payload


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_bad_payload(data: bytes) -> None:
    _decode(PLAIN, data)
    _decode(SIGNED, data)
    _decode(SIGNED, b"s1:" + data)


@FAST
@given(json_values)
def test_arbitrary_json_decodes_or_raises_bad_payload(value: Any) -> None:
    _decode(PLAIN, orjson.dumps(value))


@FAST
@given(
    st.dictionaries(
        st.sampled_from(["t", "a", "k", "b", "e", "x"]),
        json_values,
        max_size=6,
    )
)
def test_arbitrary_envelopes_decode_or_raise_bad_payload(envelope: dict[str, Any]) -> None:
    payload = _decode(PLAIN, orjson.dumps(envelope))
    if payload is not None:
        assert payload.task == envelope["t"]


_names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30)


@FAST
@given(
    _names,
    st.lists(json_values, max_size=5),
    st.dictionaries(_text, json_values, max_size=5),
    st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.booleans(),
)
def test_round_trip(
    task: str, args: list[Any], kwargs: dict[str, Any], backoff: float | None, signed: bool
) -> None:
    codec = SIGNED if signed else PLAIN
    data = codec.encode_payload(*JOB, task, args, kwargs, backoff)
    payload = codec.decode_payload(*JOB, data)
    assert payload == Payload(task, args, kwargs, backoff)


@FAST
@given(_names, st.lists(json_values, max_size=3))
def test_rotation_accepts_the_old_key(task: str, args: list[Any]) -> None:
    data = SIGNED_OLD.encode_payload(*JOB, task, args, {})
    assert SIGNED.decode_payload(*JOB, data) == Payload(task, args, {})


@FAST
@given(_names, st.lists(json_values, max_size=3), st.data())
def test_any_single_byte_change_fails_verification(task: str, args: list[Any], data: st.DataObject) -> None:
    signed = SIGNED.encode_payload(*JOB, task, args, {})
    i = data.draw(st.integers(min_value=0, max_value=len(signed) - 1), label="index")
    assume(i != SEPARATOR)  # a known defect, tested on its own below
    new = data.draw(st.integers(min_value=0, max_value=255), label="byte")
    assume(new != signed[i])
    changed = signed[:i] + bytes([new]) + signed[i + 1 :]
    try:
        SIGNED.decode_payload(*JOB, changed)
    except BadPayload:
        return
    raise AssertionError(f"byte {i} changed {signed[i]!r} -> {new!r} and still verified: {changed!r}")


SEPARATOR = 3 + 43  # the ':' between "s1:<signature>" and the body


def test_a_change_to_the_separator_byte_fails_verification() -> None:
    signed = SIGNED.encode_payload(*JOB, "work", [1], {})
    assert signed[SEPARATOR : SEPARATOR + 1] == b":"
    changed = signed[:SEPARATOR] + b"\x00" + signed[SEPARATOR + 1 :]
    with pytest.raises(BadPayload):
        SIGNED.decode_payload(*JOB, changed)


@FAST
@given(_names, st.sampled_from(["id", "queue", "max_attempts"]))
def test_a_signed_payload_moved_to_another_job_fails(task: str, which: str) -> None:
    signed = SIGNED.encode_payload(*JOB, task, [1], {})
    job_id, queue, attempts = JOB
    moved = {
        "id": (job_id[:-1] + "1", queue, attempts),
        "queue": (job_id, queue + "x", attempts),
        "max_attempts": (job_id, queue, attempts + 1),
    }[which]
    try:
        SIGNED.decode_payload(*moved, signed)
    except BadPayload:
        return
    raise AssertionError(f"verified after changing {which}")


def test_non_finite_numbers_are_refused() -> None:
    # orjson reads NaN/Infinity as invalid JSON; the decoder says so as BadPayload.
    for text in (b'{"t":"x","a":[NaN]}', b'{"t":"x","a":[Infinity]}', b'{"t":"x","b":-1}'):
        assert _decode(PLAIN, text) is None
