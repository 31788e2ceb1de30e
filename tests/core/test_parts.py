"""The small parts: queue weights, backoff, redaction, middleware, ids, configuration."""

from __future__ import annotations

import collections
import dataclasses
import importlib.metadata
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

import conveyor
from conveyor import ConfigurationError, Conveyor, Middleware
from conveyor.job import JobRecord, new_id
from conveyor.redaction import redact
from conveyor.retry import delay_for, exponential
from conveyor.worker.queues import QueueOrder


def test_strict_and_weighted_queue_orders() -> None:
    assert QueueOrder("a,b,c")() == ["a", "b", "c"]
    assert QueueOrder(None)() is None
    weighted = QueueOrder("critical:6,default:3,low:1")
    firsts = collections.Counter(weighted()[0] for _ in range(5000))  # type: ignore[index]
    assert firsts["critical"] > firsts["default"] > firsts["low"] > 0
    assert 0.5 < firsts["critical"] / 5000 < 0.7
    for bad in ("a:0", "a:x", "a,a"):
        with pytest.raises(ConfigurationError):
            QueueOrder(bad)


def test_backoff_policies() -> None:
    assert delay_for(5, 3) == 5.0
    assert delay_for(lambda n: n * 10, 2) == 20.0
    assert delay_for(lambda n: -1, 2) == 0.0
    assert 1.0 <= exponential(1) <= 1.5 and 8.0 <= exponential(4) <= 12.0
    assert exponential(100) <= 3600 * 1.5


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("connect failed password=hunter2 host=db", "hunter2"),
        ("ConnectionError: password=hunter2 refused", "hunter2"),
        ('{"token": "abc123", "ok": 1}', "abc123"),
        ("Authorization: Bearer eyJhbGciOi", "eyJhbGciOi"),
        ("postgresql://app:s3cret@db:5432/x", "s3cret"),
        ("api_key='k-998877'", "k-998877"),
    ],
)
def test_redaction_hides_secrets(text: str, hidden: str) -> None:
    out = redact(text)
    assert hidden not in out and "[REDACTED]" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connect(token=abc123) refused", "connect(token=[REDACTED]) refused"),
        ("f(password=a(b)c), next", "f(password=[REDACTED]), next"),
        ("g(h(secret=s3cr3t))", "g(h(secret=[REDACTED]))"),
        # Inside the value a ')' is part of the secret: all of it is hidden.
        ("api_key=ab)cd", "api_key=[REDACTED]"),
    ],
)
def test_redaction_keeps_the_parenthesis_that_closes_a_call(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redaction_keeps_ordinary_text_and_truncates() -> None:
    assert redact("ValueError: bad value 42") == "ValueError: bad value 42"
    assert len(redact("x" * 10_000)) <= 4000


def test_ids_are_unique_and_time_ordered() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    assert all(i[14] == "7" for i in ids[:10])  # UUID version 7


def test_ids_of_a_batch_sort_in_order_with_single_ones_around_them() -> None:
    """A batch reserves its run of sequence numbers at once, 4,096 per millisecond."""
    ids = [new_id(), *new_id.many(10_000), new_id(), *new_id.many(3), *new_id.many(0), new_id()]
    assert len(ids) == 10_006 and len(set(ids)) == len(ids) and ids == sorted(ids)
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    stamps = {int(i[:8] + i[9:13], 16) for i in ids}
    assert len(stamps) >= 3  # 10,000 ids span at least three milliseconds


def test_middleware_sees_enqueue_and_runs(tmp_path: Path) -> None:
    seen: list[tuple[str, Any]] = []

    class Spy(Middleware):
        def before_enqueue(self, records: list[JobRecord]) -> None:
            seen.append(("before_enqueue", len(records)))

        def after_enqueue(self, records: list[JobRecord]) -> None:
            seen.append(("after_enqueue", len(records)))

        def before_run(self, job_id: str, task: str) -> None:
            seen.append(("before_run", task))

        def after_run(
            self, job_id: str, task: str, duration: float, error: BaseException | None, result: Any
        ) -> None:
            seen.append(("after_run", (task, type(error).__name__ if error else result)))

    class Broken(Middleware):
        def before_run(self, job_id: str, task: str) -> None:
            raise RuntimeError("a broken hook must not break the job")

    app = Conveyor(f"sqlite:///{tmp_path}/m.db", middleware=[Spy(), Broken()])

    @app.task(name="ok")
    def ok() -> int:
        return 1

    @app.task(name="bad", retries=0)
    def bad() -> None:
        raise KeyError("k")

    app.enqueue_many([ok.job(), bad.job()])
    worker = app.worker(concurrency=1, burst=True)
    thread = threading.Thread(target=worker.run)
    thread.start()
    thread.join(30)
    assert ("before_enqueue", 2) in seen and ("after_enqueue", 2) in seen
    assert ("after_run", ("ok", 1)) in seen and ("after_run", ("bad", "KeyError")) in seen
    assert app.stats().queues["default"] == {"completed": 1, "dead": 1}
    app.close()


def test_configuration_errors_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="unknown store URL scheme"):
        Conveyor("mysql://x").backend  # noqa: B018
    with pytest.raises(ConfigurationError, match="at least 16 bytes"):
        Conveyor("sqlite:///x.db", secret_key="short")
    with pytest.raises(ConfigurationError, match="in-memory"):
        Conveyor("sqlite:///:memory:").backend  # noqa: B018
    app = Conveyor(f"sqlite:///{tmp_path}/a.db")

    @app.task(name="t")
    def t() -> None: ...

    with pytest.raises(ConfigurationError, match="already registered"):
        app.task(name="t")(lambda: None)
    with pytest.raises(ConfigurationError, match="callable backoff"):
        t.using(backoff=lambda n: 1.0)
    with pytest.raises(ConfigurationError, match="retries"):
        t.using(retries=-1)
    monkeypatch.setenv("CONVEYOR_URL", f"sqlite:///{tmp_path}/env.db")
    assert Conveyor().url == f"sqlite:///{tmp_path}/env.db"
    monkeypatch.delenv("CONVEYOR_URL")
    assert Conveyor().url == "sqlite:///conveyor.db"


def test_import_opens_nothing(tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path}/lazy.db")
    assert not (tmp_path / "lazy.db").exists()
    app.stats()
    assert (tmp_path / "lazy.db").exists()
    app.close()


def test_plain_call_runs_inline(tmp_path: Path) -> None:
    app = Conveyor(f"sqlite:///{tmp_path}/i.db")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add(1, 2) == 3
    assert add.name.endswith("test_plain_call_runs_inline.<locals>.add")
    assert not (tmp_path / "i.db").exists()


def test_redaction_is_linear_on_hostile_text() -> None:
    import time

    start = time.process_time()
    for hostile in (
        "x" * 40_000,
        "a=" * 20_000,
        "http://" + "a" * 40_000,
        "'" * 40_000,
        "(token=" + ")" * 40_000,
    ):
        redact(hostile, 40_000)
    assert time.process_time() - start < 2.0  # quadratic backtracking takes minutes here


def test_an_enqueued_handle_reads_every_field(tmp_path: Path) -> None:
    """The handle is built without the dataclass __init__: unset fields read as defaults."""
    app = Conveyor(f"sqlite:///{tmp_path / 'jobs.db'}")

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    job, other = app.enqueue_many([add.job(1, 2), add.job(3, 4)])
    assert (job.task, job.args, job.kwargs, job.queue, job.state) == (
        "t.add",
        [1, 2],
        {},
        "default",
        "pending",
    )
    assert (job.attempts, job.started_at, job.worker, job.return_value, job.encrypted) == (
        0,
        None,
        None,
        None,
        False,
    )
    assert job != other and job == dataclasses.replace(job) and "t.add" in repr(job)
    assert add.job(1, 2) == add.job(1, 2) and add.job(1, 2).args == (1, 2)
    app.close()


def test_one_version_source() -> None:
    # pyproject reads conveyor.__version__; the installed metadata must say the same.
    assert importlib.metadata.version("conveyor") == conveyor.__version__
