"""Redaction of error texts before they are stored with a job.

Error messages and tracebacks often carry the arguments of the failing call: a connection
string with its password, a header with a token. What looks like a secret is replaced by
``[REDACTED]`` before it reaches the store, the dashboard or the CLI.

Error texts are attacker-controlled (they may quote a job's arguments), so every pattern has
bounded repetitions: the work stays linear in the length of the text.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_SECRET_NAME = re.compile(
    r"password|passwd|pwd|secret|token|api[_-]?key|apikey|authorization|auth|credential"
    r"|private[_-]?key|access[_-]?key|session[_-]?id|cookie",
    re.IGNORECASE,
)

# name = value, name: value, "name": "value", 'name': 'value'
_KEY = re.compile(r"""(?<![\w.-])["']?(?P<name>[\w.-]{1,64})["']?[ \t]{0,3}[:=][ \t]{0,3}""")
_VALUE = re.compile(r"""(?P<q>["']?)(?:(?:Bearer|Basic|Token)[ \t]{1,3})?[^\s"',;}&]{1,4096}""")
# user:password@host in URLs
_URL_CREDENTIALS = re.compile(
    r"(?P<key>\b[a-zA-Z][a-zA-Z0-9+.-]{0,20}://[^:/@\s]{1,256}:)(?P<value>[^@\s/]{1,256})(?=@)"
)

MAX_ERROR_LENGTH = 4000
MAX_TRACEBACK_LENGTH = 20000


def _mask_assignments(text: str) -> str:
    parts: list[str] = []
    done = 0
    for key in _KEY.finditer(text):
        if key.start() < done or not _SECRET_NAME.search(key.group("name")):
            continue
        value = _VALUE.match(text, key.end())
        if value is not None:
            parts.append(f"{text[done : key.end()]}{value.group('q')}[REDACTED]")
            done = value.end()
    parts.append(text[done:])
    return "".join(parts)


def redact(text: str, limit: int = MAX_ERROR_LENGTH) -> str:
    """``text`` with secrets masked and cut to ``limit`` characters."""
    text = text[: limit * 2]
    text = _mask_assignments(text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group('key')}[REDACTED]", text)
    if len(text) > limit:
        text = text[: limit - 20] + " … [truncated]"
    return text


# Query parameters of a store URL that carry a secret: password=, sentinel_password=,
# sslpassword=, token=, ... (libpq, redis-py and Sentinel names alike).
_URL_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|auth|credential|key", re.IGNORECASE)
URL_MASK = "***"


def redact_url(url: str) -> str:
    """``url`` as it may be shown (errors, logs, ``repr``, the CLI): the password of its
    userinfo (of each host list too: ``redis+sentinel://user:pw@h1,h2``) and the value of
    every secret-looking query parameter (``password=``, ``sentinel_password=``) replaced by
    ``***``; the fragment dropped. The one function every place that shows a store URL uses.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        # Not a URL (a bare path): nothing in it is a userinfo or a query to trust, but a
        # path is not secret either.
        return url if "@" not in url and "?" not in url else "[unparseable URL hidden]"
    # The userinfo ends at the last @ before the query: a password may hold a raw / or #.
    before_query, qsep, query = rest.partition("?")
    userinfo, at, location = before_query.rpartition("@")
    location = location.partition("#")[0]
    query = query.partition("#")[0]
    if at:
        user, colon, _ = userinfo.partition(":")
        location = f"{user}:{URL_MASK}@{location}" if colon else f"{user}@{location}"
    shown = f"{scheme}://{location}"
    if qsep:
        params = []
        for item in re.split(r"[&;]", query):
            name, eq, _ = item.partition("=")
            if eq and _URL_SECRET_PARAM.search(unquote(name)):
                item = f"{name}={URL_MASK}"
            params.append(item)
        shown += "?" + "&".join(params)
    return shown
