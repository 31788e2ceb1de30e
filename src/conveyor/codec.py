"""Job payloads: JSON only, checked in the caller, optionally signed.

A payload is the JSON object ``{"t": task, "a": args, "k": kwargs}`` (plus ``"b"`` for a
per-enqueue backoff). With a secret key it is prefixed ``s1:<base64 HMAC-SHA256>:``; the
HMAC covers the job's id and scheduling options as well as the body, so a row moved to
another id, queue or retry budget no longer verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ConfigurationError

_SCALARS = (str, bool, type(None))
_INT64 = (-(2**63), 2**64 - 1)
_SIGNED_PREFIX = b"s1:"
_SIG_LEN = 43  # base64 of 32 bytes, unpadded


class BadPayload(ValueError):
    """A stored payload that cannot be run: malformed, unsigned or tampered with."""


@dataclass(frozen=True, slots=True)
class Payload:
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    backoff: float | None = None


_HINTS = {
    "datetime": "pass value.isoformat()",
    "date": "pass value.isoformat()",
    "time": "pass value.isoformat()",
    "UUID": "pass str(value)",
    "Decimal": "pass str(value)",
    "bytes": "pass base64 text",
    "set": "pass a list",
    "frozenset": "pass a list",
}


def _describe(value: Any) -> str:
    name = type(value).__name__
    hint = _HINTS.get(name, "pass plain str, int, float, bool, None, list or dict")
    return f"is a {name}, which is not JSON; {hint}"


def check_json(value: Any, where: str) -> None:
    """Raise TypeError unless ``value`` is made only of plain JSON types.

    orjson quietly encodes datetimes, UUIDs, dataclasses and subclasses; a job system must
    not, because the worker would receive a different type than the caller sent.
    """
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is int:
        if not _INT64[0] <= value <= _INT64[1]:
            raise TypeError(f"{where} is an integer too large for JSON (64 bits); pass str(value)")
        return
    if kind is float:
        if not math.isfinite(value):
            raise TypeError(f"{where} is {value}, which JSON cannot hold; pass None or a string")
        return
    if kind is list or kind is tuple:
        for i, item in enumerate(value):
            check_json(item, f"{where}[{i}]")
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"{where} has the key {key!r}, which is not a str; JSON keys are text")
            check_json(item, f"{where}[{key!r}]")
        return
    raise TypeError(f"{where} {_describe(value)}")


def normalize_keys(secret_key: str | bytes | Sequence[str | bytes] | None) -> list[bytes]:
    """``secret_key`` as a list of keys: the first signs, any verifies (rotation)."""
    if secret_key is None:
        return []
    raw = [secret_key] if isinstance(secret_key, str | bytes) else list(secret_key)
    keys = [k.encode() if isinstance(k, str) else bytes(k) for k in raw]
    if not keys or any(len(k) < 16 for k in keys):
        raise ConfigurationError("secret_key must be at least 16 bytes (use secrets.token_hex(32))")
    return keys


class Codec:
    """Encodes and decodes payloads and results for one app."""

    def __init__(self, secret_keys: list[bytes], max_payload: int | None = None) -> None:
        self._keys = secret_keys
        self.max_payload = max_payload

    @property
    def signs(self) -> bool:
        return bool(self._keys)

    def encode_payload(
        self,
        job_id: str,
        queue: str,
        max_attempts: int,
        task: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        backoff: float | None = None,
    ) -> bytes:
        body: dict[str, Any] = {"t": task, "a": args, "k": kwargs}
        if backoff is not None:
            body["b"] = backoff
        data = orjson.dumps(body)
        if self._keys:
            sig = self._sign(self._keys[0], job_id, queue, max_attempts, data)
            data = _SIGNED_PREFIX + sig + b":" + data
        return data

    def decode_payload(self, job_id: str, queue: str, max_attempts: int, data: bytes) -> Payload:
        """The payload of a stored job, or BadPayload saying why it cannot run."""
        if data.startswith(_SIGNED_PREFIX):
            sig = data[3 : 3 + _SIG_LEN]
            body = data[4 + _SIG_LEN :]
            if not self._keys:
                raise BadPayload("payload is signed but this app has no secret_key")
            if not any(
                hmac.compare_digest(sig, self._sign(k, job_id, queue, max_attempts, body)) for k in self._keys
            ):
                raise BadPayload("signature does not verify: payload altered or signed with another key")
        elif self._keys:
            raise BadPayload("payload is not signed and this app requires signatures")
        else:
            body = data
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadPayload(f"payload is not valid JSON: {exc}") from None
        if type(obj) is not dict:
            raise BadPayload(f"payload is a JSON {type(obj).__name__}, expected an object")
        task, args, kwargs = obj.get("t"), obj.get("a", []), obj.get("k", {})
        if type(task) is not str or not task:
            raise BadPayload("payload names no task (field 't' missing or not a string)")
        if type(args) is not list:
            raise BadPayload(f"payload arguments ('a') are a {type(args).__name__}, expected a list")
        if type(kwargs) is not dict:
            raise BadPayload(
                f"payload keyword arguments ('k') are a {type(kwargs).__name__}, expected an object"
            )
        backoff = obj.get("b")
        if backoff is not None and (type(backoff) not in (int, float) or backoff < 0):
            raise BadPayload(f"payload backoff ('b') is {backoff!r}, expected seconds >= 0")
        return Payload(task, args, kwargs, backoff)

    def peek(self, data: bytes) -> Payload | None:
        """The payload for display, without verifying a signature; None if unreadable."""
        body = data[4 + _SIG_LEN :] if data.startswith(_SIGNED_PREFIX) else data
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if type(obj) is not dict:
            return None
        args, kwargs = obj.get("a"), obj.get("k")
        return Payload(
            str(obj.get("t", "?")),
            args if type(args) is list else [],
            kwargs if type(kwargs) is dict else {},
        )

    @staticmethod
    def encode_result(value: Any) -> bytes:
        return orjson.dumps(value)

    @staticmethod
    def decode_result(data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return None

    @staticmethod
    def _sign(key: bytes, job_id: str, queue: str, max_attempts: int, body: bytes) -> bytes:
        header = f"{job_id}\0{queue}\0{max_attempts}\0".encode()
        digest = hmac.new(key, header + body, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=")
