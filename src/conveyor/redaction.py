"""Redaction of error texts before they are stored with a job.

Error messages and tracebacks often carry the arguments of the failing call: a connection
string with its password, a header with a token. What looks like a secret is replaced by
``[REDACTED]`` before it reaches the store, the dashboard or the CLI.

Error texts are attacker-controlled (they may quote a job's arguments), so every pattern has
bounded repetitions: the work stays linear in the length of the text.
"""

from __future__ import annotations

import re

_SECRET_NAME = re.compile(
    r"password|passwd|pwd|secret|token|api[_-]?key|apikey|authorization|auth|credential"
    r"|private[_-]?key|access[_-]?key|session[_-]?id|cookie",
    re.IGNORECASE,
)

# name = value, name: value, "name": "value", 'name': 'value'
_ASSIGNMENT = re.compile(
    r"""(?<![\w.-])(?P<key>["']?(?P<name>[\w.-]{1,64})["']?[ \t]{0,3}[:=][ \t]{0,3})"""
    r"""(?P<q>["']?)(?P<value>(?:(?:Bearer|Basic|Token)[ \t]{1,3})?[^\s"',;}&]{1,4096})""",
)
# user:password@host in URLs
_URL_CREDENTIALS = re.compile(
    r"(?P<key>\b[a-zA-Z][a-zA-Z0-9+.-]{0,20}://[^:/@\s]{1,256}:)(?P<value>[^@\s/]{1,256})(?=@)"
)

MAX_ERROR_LENGTH = 4000
MAX_TRACEBACK_LENGTH = 20000


def _mask_assignment(match: re.Match[str]) -> str:
    if _SECRET_NAME.search(match.group("name")):
        return f"{match.group('key')}{match.group('q')}[REDACTED]"
    return match.group(0)


def redact(text: str, limit: int = MAX_ERROR_LENGTH) -> str:
    """``text`` with secrets masked and cut to ``limit`` characters."""
    text = text[: limit * 2]
    text = _ASSIGNMENT.sub(_mask_assignment, text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group('key')}[REDACTED]", text)
    if len(text) > limit:
        text = text[: limit - 20] + " … [truncated]"
    return text
