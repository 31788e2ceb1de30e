"""Redaction of error texts before they are stored with a job.

Error messages and tracebacks often carry the arguments of the failing call: a connection
string with its password, a header with a token. What looks like a secret is replaced by
``[REDACTED]`` before it reaches the store, the dashboard or the CLI.
"""

from __future__ import annotations

import re

_KEYS = (
    r"(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|authorization|auth|credentials?"
    r"|private[_-]?key|access[_-]?key|session[_-]?id|cookie)"
)

_PATTERNS = [
    # key=value, key: value, "key": "value", 'key': 'value'
    re.compile(
        rf"""(?P<key>["']?\w*{_KEYS}\w*["']?\s*[:=]\s*)(?P<q>["']?)(?P<value>(?:Bearer\s+|Basic\s+)?[^\s"',;}}&]+)""",
        re.IGNORECASE,
    ),
    # user:password@host in URLs
    re.compile(r"(?P<key>[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<q>)(?P<value>[^@\s/]+)(?=@)", re.IGNORECASE),
]

MAX_ERROR_LENGTH = 4000
MAX_TRACEBACK_LENGTH = 20000


def redact(text: str, limit: int = MAX_ERROR_LENGTH) -> str:
    """``text`` with secrets masked and cut to ``limit`` characters."""
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: f"{m.group('key')}{m.group('q')}[REDACTED]", text)
    if len(text) > limit:
        text = text[: limit - 20] + " … [truncated]"
    return text
