"""Which pip extra brings which module, so that a missing one is named in one clear line."""

from __future__ import annotations

#: Top-level module → the extra of ``conveyor`` that installs it.
EXTRAS = {
    "redis": "redis",
    "hiredis": "redis",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "starlette": "dashboard",
    "jinja2": "dashboard",
    "uvicorn": "dashboard",
    "multipart": "dashboard",
    "python_multipart": "dashboard",
    "itsdangerous": "dashboard",
    "prometheus_client": "prometheus",
    "cryptography": "crypto",
    "opentelemetry": "otel",
    "django": "django",
}


def missing_extra(exc: ImportError) -> str | None:
    """The line to show for an ImportError of a module one of our extras installs, or None
    when the missing module is not one of ours."""
    name = (exc.name or "").partition(".")[0]
    extra = EXTRAS.get(name)
    if extra is None:
        return None
    return f"this needs the {extra} extra ({name} is not installed): pip install 'conveyor[{extra}]'"
