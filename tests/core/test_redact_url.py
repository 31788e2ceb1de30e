"""``redact_url``: the one function that makes a store URL fit to show."""

from __future__ import annotations

import pytest

from conveyor import Conveyor
from conveyor.redaction import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///jobs.db", "sqlite:///jobs.db"),
        ("sqlite:////var/a@b/jobs.db", "sqlite:////var/a@b/jobs.db"),
        ("postgresql://app:pw1@db:5432/jobs", "postgresql://app:***@db:5432/jobs"),
        (
            "postgresql://app@db/jobs?sslmode=require&password=pw2",
            "postgresql://app@db/jobs?sslmode=require&password=***",
        ),
        (
            "postgres://db/jobs?PassWord=pw3;sslpassword=pw4",
            "postgres://db/jobs?PassWord=***&sslpassword=***",
        ),
        ("postgresql://db/jobs?pass%77ord=pw5", "postgresql://db/jobs?pass%77ord=***"),
        ("redis://:pw6@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://user:pw7@h:6380/1?ssl_cert_reqs=none", "rediss://user:***@h:6380/1?ssl_cert_reqs=none"),
        ("redis://user@h/0", "redis://user@h/0"),
        ("unix:///run/redis.sock?db=0&password=pw8", "unix:///run/redis.sock?db=0&password=***"),
        (
            "redis+sentinel://u:pw9@h1:26379,h2:26380/main/0?sentinel_password=pw10",
            "redis+sentinel://u:***@h1:26379,h2:26380/main/0?sentinel_password=***",
        ),
        ("redis+cluster://:pw11@h1:7000,h2:7001?ssl=true", "redis+cluster://:***@h1:7000,h2:7001?ssl=true"),
        # A raw /, # or @ in a password, which a careless URL may hold: still all hidden.
        ("redis://:p/w#1@h:1/0", "redis://:***@h:1/0"),
        ("redis://u:p@w@h:1/0", "redis://u:***@h:1/0"),
        ("redis://h/0#token=pw12", "redis://h/0"),
        ("not a url with a pass@word?x", "[unparseable URL hidden]"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_repr_of_an_app_shows_its_store_without_secrets() -> None:
    app = Conveyor("postgresql://app:Hidden1@db/jobs?password=Hidden2", namespace="shop")
    assert repr(app) == "<Conveyor 'shop' at postgresql://app:***@db/jobs?password=*** 0 tasks>"
