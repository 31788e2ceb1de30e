"""Job payloads: JSON only, checked in the caller, optionally signed and encrypted.

A payload is the JSON object ``{"t": task, "a": args, "k": kwargs}`` (plus ``"b"`` for a
per-enqueue backoff). With an encryption key, ``"a"`` and ``"k"`` travel sealed with
AES-256-GCM in ``"e"``, bound to the job's id so a ciphertext cannot be moved to another
job. With a secret key the payload is prefixed ``s1:<base64 HMAC-SHA256>:``; the HMAC covers
the job's id and scheduling options as well as the body, so a row moved to another id,
queue or retry budget no longer verifies.
"""

from __future__ import annotations

# hashlib, hmac and base64 are imported where a key is used (``_Signer``, ``_Cipher``): an
# app with neither key never needs them, and hashlib loads OpenSSL (about 3 ms of a worker's
# start, before its first job).
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ConfigurationError

_SCALARS = (str, bool, type(None))
_INT64 = (-(2**63), 2**64 - 1)
_SIGNED_PREFIX = b"s1:"
_SIG_LEN = 43  # base64 of 32 bytes, unpadded
_SEALED_RESULT = b"e1:"


class BadPayload(ValueError):
    """A stored payload that cannot be run: malformed, unsigned or tampered with."""


@dataclass(slots=True)
class Payload:
    """A decoded payload; treat it as read-only (not frozen: one is built per job run, and
    a frozen ``__init__`` costs more than twice as much)."""

    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    backoff: float | None = None
    #: The job's metadata (``using(meta=...)``, middleware), or None when it has none.
    meta: dict[str, Any] | None = None
    #: When the job expires unstarted (epoch seconds), or None: the worker checks it before
    #: a run, so an expired job never reaches its task.
    expires: float | None = None


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


def exact(data: bytes) -> bytes:
    """``data`` in a buffer of its own size. orjson (3.10 and later) hands back its output in
    the buffer it wrote into, 4 KiB at least, so every payload or result kept in memory (a
    batch of 100,000 being enqueued, outcomes waiting for their acknowledgement) would hold
    4 KiB: 530 MB for an ``enqueue_many`` of 100,000 no-op jobs. The copy costs ~0.15 us."""
    return bytes(memoryview(data))


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


def normalize_encryption_keys(key: str | bytes | Sequence[str | bytes] | None) -> list[bytes]:
    """``encryption_key`` as a list of 32-byte AES keys: the first encrypts, any decrypts.

    A key is 32 raw bytes, or text of 64 hex digits or urlsafe base64 (as
    ``base64.urlsafe_b64encode(os.urandom(32))`` prints).
    """
    if key is None:
        return []
    raw = [key] if isinstance(key, str | bytes) else list(key)
    keys: list[bytes] = []
    for item in raw:
        value: bytes | None = None
        if isinstance(item, bytes) and len(item) == 32:
            value = item
        else:
            text = item.decode() if isinstance(item, bytes) else item
            import base64

            try:
                value = bytes.fromhex(text) if len(text) == 64 else base64.urlsafe_b64decode(text)
            except ValueError:
                value = None
        if value is None or len(value) != 32:
            raise ConfigurationError(
                "encryption_key must be 32 bytes, 64 hex digits or base64 of 32 bytes "
                "(make one: python -c 'import os, base64;"
                " print(base64.urlsafe_b64encode(os.urandom(32)).decode())')"
            )
        keys.append(value)
    if not keys:
        raise ConfigurationError("encryption_key is an empty list")
    return keys


class _Signer:
    """HMAC-SHA256 signatures of payloads (base64, unpadded), for an app with a secret key."""

    def __init__(self) -> None:
        import base64
        import hashlib
        import hmac

        self._hmac, self._sha256, self._b64 = hmac.new, hashlib.sha256, base64.urlsafe_b64encode
        self.compare = hmac.compare_digest

    def sign(self, key: bytes, job_id: str, queue: str, max_attempts: int, body: bytes) -> bytes:
        header = f"{job_id}\0{queue}\0{max_attempts}\0".encode()
        digest = self._hmac(key, header + body, self._sha256).digest()
        return self._b64(digest).rstrip(b"=")


class _Cipher:
    """AES-256-GCM for arguments and results, with the key id stored beside each value so
    that old keys keep decrypting after a rotation."""

    def __init__(self, keys: list[bytes]) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:
            raise ConfigurationError(
                "encryption needs the crypto extra: pip install 'conveyor[crypto]'"
            ) from None
        import base64
        import hashlib

        self._encode, self._decode = base64.urlsafe_b64encode, base64.urlsafe_b64decode
        self._ciphers = {hashlib.sha256(k).hexdigest()[:8]: AESGCM(k) for k in keys}
        self._current = hashlib.sha256(keys[0]).hexdigest()[:8]

    def seal(self, plain: bytes, job_id: str) -> str:
        nonce = os.urandom(12)
        sealed = self._ciphers[self._current].encrypt(nonce, plain, job_id.encode())
        return f"{self._current}:{self._encode(nonce + sealed).decode()}"

    def open(self, text: str, job_id: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        key_id, _, blob = text.partition(":")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise BadPayload(f"encrypted with key {key_id!r}, which this app does not hold")
        try:
            data = self._decode(blob)
            return bytes(cipher.decrypt(data[:12], data[12:], job_id.encode()))
        except (InvalidTag, ValueError):
            raise BadPayload("encrypted data does not decrypt: altered, or moved to another job") from None


class Codec:
    """Encodes and decodes payloads and results for one app."""

    def __init__(
        self,
        secret_keys: list[bytes],
        max_payload: int | None = None,
        encryption_keys: list[bytes] | None = None,
    ) -> None:
        self._keys = secret_keys
        self._signer = _Signer() if secret_keys else None
        self.max_payload = max_payload
        self._cipher = _Cipher(encryption_keys) if encryption_keys else None

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
        meta: dict[str, Any] | None = None,
        expires: float | None = None,
    ) -> bytes:
        body: dict[str, Any]
        if self._cipher is None:
            body = {"t": task, "a": args, "k": kwargs}
        else:
            body = {"t": task, "e": self._cipher.seal(orjson.dumps({"a": args, "k": kwargs}), job_id)}
        if backoff is not None:
            body["b"] = backoff
        if meta:
            # Metadata stays readable (and signed) when arguments are encrypted: middleware,
            # filters and the dashboard read it. Secrets belong in the arguments.
            body["m"] = meta
        if expires is not None:
            body["x"] = expires
        data = orjson.dumps(body)
        if self._signer is not None:
            sig = self._signer.sign(self._keys[0], job_id, queue, max_attempts, data)
            return _SIGNED_PREFIX + sig + b":" + data
        return exact(data)

    def for_queue(self, data: bytes, job_id: str, queue: str, new_queue: str, max_attempts: int) -> bytes:
        """A stored payload signed for ``new_queue`` instead of ``queue`` (the signature
        covers the queue); unchanged when unsigned. ``BadPayload`` when its signature does
        not verify: a moved job is never signed afresh unless it was genuine."""
        if not data.startswith(_SIGNED_PREFIX):
            return data
        self.decode_payload(job_id, queue, max_attempts, data)
        assert self._signer is not None  # (a signed payload decodes only with keys)
        body = data[4 + _SIG_LEN :]
        return (
            _SIGNED_PREFIX
            + self._signer.sign(self._keys[0], job_id, new_queue, max_attempts, body)
            + b":"
            + body
        )

    def decode_payload(self, job_id: str, queue: str, max_attempts: int, data: bytes) -> Payload:
        """The payload of a stored job, or BadPayload saying why it cannot run."""
        if data.startswith(_SIGNED_PREFIX):
            sig = data[3 : 3 + _SIG_LEN]
            body = data[4 + _SIG_LEN :]
            if data[3 + _SIG_LEN : 4 + _SIG_LEN] != b":":
                raise BadPayload("signed payload is malformed (no ':' after the signature)")
            signer = self._signer
            if signer is None:
                raise BadPayload("payload is signed but this app has no secret_key")
            if not any(
                signer.compare(sig, signer.sign(k, job_id, queue, max_attempts, body)) for k in self._keys
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
        if len(obj) == 3:
            # What encode_payload writes for a job without options: {"t", "a", "k"} alone,
            # checked in one go (the general checks below cost as much as the JSON parse).
            task, args, kwargs = obj.get("t"), obj.get("a"), obj.get("k")
            if type(task) is str and task and type(args) is list and type(kwargs) is dict:
                return Payload(task, args, kwargs)
        task, args, kwargs = obj.get("t"), obj.get("a", []), obj.get("k", {})
        sealed = obj.get("e")
        if sealed is not None:
            args, kwargs = self._unseal(sealed, job_id)
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
        meta = obj.get("m")
        if meta is not None and type(meta) is not dict:
            raise BadPayload(f"payload metadata ('m') is a {type(meta).__name__}, expected an object")
        expires = obj.get("x")
        if expires is not None and (type(expires) not in (int, float) or expires != expires):
            raise BadPayload(f"payload expiry ('x') is {expires!r}, expected epoch seconds")
        return Payload(task, args, kwargs, backoff, meta, expires)

    def _unseal(self, sealed: Any, job_id: str) -> tuple[Any, Any]:
        if self._cipher is None:
            raise BadPayload("arguments are encrypted and this app has no encryption_key")
        if type(sealed) is not str:
            raise BadPayload("encrypted arguments ('e') are not a string")
        try:
            inner = orjson.loads(self._cipher.open(sealed, job_id))
        except orjson.JSONDecodeError:
            raise BadPayload("decrypted arguments are not valid JSON") from None
        if type(inner) is not dict:
            raise BadPayload("decrypted arguments are not a JSON object")
        return inner.get("a", []), inner.get("k", {})

    def peek(self, job_id: str, data: bytes) -> tuple[Payload | None, bool]:
        """The payload for display, without verifying a signature, and whether its arguments
        are encrypted beyond this process's reach (then they show as empty)."""
        body = data[4 + _SIG_LEN :] if data.startswith(_SIGNED_PREFIX) else data
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None, False
        if type(obj) is not dict:
            return None, False
        args, kwargs, hidden = obj.get("a"), obj.get("k"), False
        if "e" in obj:
            try:
                args, kwargs = self._unseal(obj["e"], job_id)
            except BadPayload:
                args, kwargs, hidden = [], {}, True
        meta = obj.get("m")
        payload = Payload(
            str(obj.get("t", "?")),
            args if type(args) is list else [],
            kwargs if type(kwargs) is dict else {},
            None,
            meta if type(meta) is dict else None,
        )
        return payload, hidden

    def encode_result(self, value: Any, job_id: str) -> bytes:
        data = orjson.dumps(value)
        if self._cipher is None:
            return exact(data)
        return _SEALED_RESULT + self._cipher.seal(data, job_id).encode()

    def decode_result(self, data: bytes | None, job_id: str) -> tuple[Any, bool]:
        """A stored result and whether it is encrypted beyond this process's reach."""
        if data is None:
            return None, False
        if data.startswith(_SEALED_RESULT):
            if self._cipher is None:
                return None, True
            try:
                data = self._cipher.open(data[len(_SEALED_RESULT) :].decode(), job_id)
            except (BadPayload, UnicodeDecodeError):
                return None, True
        try:
            return orjson.loads(data), False
        except orjson.JSONDecodeError:
            return None, False
