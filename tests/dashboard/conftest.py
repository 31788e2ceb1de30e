"""Fixtures for the dashboard tests: an app over a real SQLite store, and clients."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    # Starlette suggests httpx2 for its TestClient; httpx is what this project installs.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from tests.dashboard.helpers import PASSWORD, Demo, build_app

BASE = "http://dash.test"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    built = build_app(f"sqlite:///{tmp_path}/jobs.db")
    yield built
    built.app.close()


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientFactory]:
    """``make_client(**dashboard_options)``: a TestClient on the dashboard that sends the
    Origin header a browser would. Defaults to password login; ``password=None`` configures no secret."""
    monkeypatch.delenv("CONVEYOR_DASHBOARD_PASSWORD", raising=False)
    monkeypatch.delenv("CONVEYOR_DASHBOARD_TOKEN", raising=False)
    clients: list[TestClient] = []

    def factory(
        base_url: str = BASE,
        client: tuple[str, int] = ("203.0.113.7", 50000),
        origin: str | None = None,
        **options: Any,
    ) -> TestClient:
        if not {"password", "token", "authorize", "insecure_no_auth", "require_login"} & options.keys():
            options["password"] = PASSWORD
        test_client = TestClient(
            demo.app.dashboard(**options),
            base_url=base_url,
            client=client,
            headers={"origin": origin or base_url},
            follow_redirects=False,
        )
        clients.append(test_client)
        return test_client

    yield factory
    for test_client in clients:
        test_client.close()
