"""Options and names that slip past a quick look are refused at once, with a clear error:
at registration, at ``using()`` and in ``enqueue_many``, before anything reaches a store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.errors import ConfigurationError


@pytest.fixture
def app(tmp_path: Path) -> Conveyor:
    return Conveyor(f"sqlite:///{tmp_path}/jobs.db")


def _noop() -> None: ...


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": 2**70}, "priority must be an int from -2147483648 to 2147483647"),
        ({"priority": -(2**31) - 1}, "priority must be an int from"),
        ({"delay": float("nan")}, "delay must be seconds from 0 to 3155760000"),
        ({"delay": float("inf")}, "delay must be seconds from 0"),
        ({"delay": -1}, "delay must be seconds from 0"),
        ({"timeout": float("inf")}, "timeout must be finite seconds > 0"),
        ({"queue": "mail\nurgent"}, "queue name 'mail\\nurgent' holds '\\n'"),
        ({"queue": "a}b"}, "queue name 'a}b' holds '}'"),
        ({"queue": "{a"}, "holds '{'"),
        ({"queue": "a,b"}, "holds ','"),
        ({"queue": "a:3"}, "holds ':'"),
        ({"queue": "a b"}, "holds ' '"),
        ({"queue": "\x1b[31mred"}, "holds '\\x1b'"),
        ({"queue": ""}, "queue name must be a non-empty string"),
        ({"queue": "q" * 201}, "is 201 characters; at most 200"),
    ],
)
def test_using_refuses_bad_options(app: Conveyor, options: dict[str, Any], message: str) -> None:
    task = app.task(name="t")(_noop)
    with pytest.raises(ConfigurationError) as refused:
        task.using(**options)
    assert message in str(refused.value)
    if "delay" not in options:  # the task's own options are checked by the same rule
        with pytest.raises(ConfigurationError) as refused:
            app.task(name="u", **options)(_noop)
        assert message in str(refused.value)
    assert app.jobs() == []


def test_good_names_and_bounds_pass(app: Conveyor) -> None:
    task = app.task(name="billing.charge-card/v2", queue="mail.bulk_2")(_noop)
    bound = task.using(priority=2**31 - 1, delay=0.0, queue="x" * 200)
    assert bound.enqueue().queue == "x" * 200
    assert app.task(name="ünïcode.naïve")(_noop).name == "ünïcode.naïve"


@pytest.mark.parametrize("name", ["a b", "x\ny", "a{b}", "ns:task", "a,b", "t" * 201])
def test_task_names_follow_the_same_rule(app: Conveyor, name: str) -> None:
    with pytest.raises(ConfigurationError, match="task name"):
        app.task(name=name)(_noop)


def test_a_lambda_needs_a_name(app: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="a lambda has no name to register it by"):
        app.task(lambda: None)
    assert app.task(name="anon")(lambda: None).name == "anon"


def test_enqueue_many_names_what_is_not_a_job(app: Conveyor) -> None:
    task = app.task(name="t")(_noop)
    with pytest.raises(
        TypeError, match=r"enqueue_many takes jobs described by task.job\(...\); item 1 is a function"
    ):
        app.enqueue_many([task.job(), lambda: None])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="item 0 is a Task"):
        app.enqueue_many([task])  # type: ignore[list-item]
    assert app.jobs() == []
