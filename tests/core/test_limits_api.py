"""Limits' bad input: a clear error at registration or enqueue naming the task and the value;
and the pieces every store shares (rates, the token bucket, bucket names)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import ConfigurationError, Conveyor
from conveyor.limits import Limit, Tokens, allowed, bucket, parse_rate, spend, split


@pytest.fixture
def app(tmp_path: Path) -> Conveyor:
    return Conveyor(f"sqlite:///{tmp_path}/jobs.db")


@pytest.mark.parametrize("rate", ["fast", "10", "0/s", "-1/s", "10/d", "1.5/s", 10])
def test_a_rate_that_is_not_n_per_period_is_refused_naming_task_and_value(
    app: Conveyor, rate: object
) -> None:
    with pytest.raises(ConfigurationError, match=rf"task 't.x': rate={rate!r} is not a rate"):

        @app.task(name="t.x", rate=rate)  # type: ignore[call-overload, untyped-decorator]
        def x() -> None: ...


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, "2", True])
def test_concurrency_must_be_a_positive_int(app: Conveyor, concurrency: object) -> None:
    with pytest.raises(
        ConfigurationError, match=rf"task 't.x': concurrency={concurrency!r} must be an int >= 1"
    ):

        @app.task(name="t.x", concurrency=concurrency)  # type: ignore[call-overload, untyped-decorator]
        def x() -> None: ...


def test_limit_queue_checks_its_values(app: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match=r"queue 'mail': rate='often' is not a rate"):
        app.limit_queue("mail", rate="often")
    with pytest.raises(ConfigurationError, match=r"queue 'mail': concurrency=0"):
        app.limit_queue("mail", concurrency=0)


def test_limit_key_needs_a_limit_and_a_callable(app: Conveyor) -> None:
    with pytest.raises(ConfigurationError, match="limit_key needs concurrency= or rate="):

        @app.task(name="t.x", limit_key=lambda: "k")
        def x() -> None: ...

    with pytest.raises(ConfigurationError, match="limit_key='k' must be a callable"):

        @app.task(name="t.y", concurrency=1, limit_key="k")  # type: ignore[call-overload, untyped-decorator]
        def y() -> None: ...


def test_a_limit_key_that_raises_or_gives_no_string_fails_the_enqueue(app: Conveyor) -> None:
    @app.task(name="t.raises", concurrency=1, limit_key=lambda n: {}[n])
    def raises(n: int) -> None: ...

    @app.task(name="t.number", concurrency=1, limit_key=lambda n: n)
    def number(n: int) -> None: ...

    with pytest.raises(ValueError, match=r"limit_key of task 't.raises' raised KeyError: 7"):
        raises.enqueue(7)
    with pytest.raises(
        ValueError, match=r"limit_key of task 't.number' must give a non-empty str .* it gave 7"
    ):
        number.enqueue(7)
    with pytest.raises(
        ValueError, match=r"limit_key of task 't.number' must give a non-empty str .* it gave ''"
    ):
        number.using(limit_key="").enqueue(1)
    assert app.stats().queues == {}


def test_using_limit_key_on_a_task_without_limits_is_refused(app: Conveyor) -> None:
    @app.task(name="t.free")
    def free() -> None: ...

    with pytest.raises(
        ConfigurationError, match=r"task 't.free': using\(limit_key='k'\) needs a task declared"
    ):
        free.using(limit_key="k").enqueue()


def test_rates_and_the_token_bucket() -> None:
    assert parse_rate("100/m", "x") == (100, 60.0)
    assert parse_rate(" 5 / hour ", "x") == (5, 3600.0)
    limit = Limit(rate=20, per=1.0)
    # A tenth of a period's allowance, never less than one second's, at least one.
    bursts = {"20/s": 20, "1/s": 1, "100/m": 10, "5/m": 1, "15/m": 2, "600/m": 60, "1000/h": 100}
    assert {text: Limit(None, *parse_rate(text, "x")).burst for text in bursts} == bursts
    assert allowed(limit, 0, None, 100.0) == 20  # starts full
    state = spend(limit, None, 100.0, 20)
    assert allowed(limit, 0, state, 100.0) == 0
    assert allowed(limit, 0, state, 100.05) == 1  # 20/s: one token every 50 ms
    assert allowed(limit, 0, state, 100.5) == 10  # a gap shorter than the burst loses nothing
    assert allowed(limit, 0, Tokens(0.0, 100.0), 1000.0) == 20  # never more than the burst
    assert allowed(Limit(concurrency=3), 2, None, 0.0) == 1
    assert Limit.decode(Limit(3, 10, 60.0).encode()) == Limit(3, 10, 60.0)
    assert Limit.decode("garbage") is None and Limit.decode("1|2|") is None


def test_bucket_names_keep_queue_limit_and_key_apart() -> None:
    assert split(bucket("mail", "t.send", "customer:42")) == ("mail", "t.send", "customer:42")
    assert split(bucket("mail", "t.send", None)) == ("mail", "t.send", None)
    assert split("mail") == ("mail", None, None)


def test_a_claim_takes_part_in_a_bounded_number_of_keys_in_turn() -> None:
    from conveyor.limits import LOOK_AT_BUCKETS, rooms

    limit = {"t": Limit(concurrency=1)}
    names = [bucket("q", "t", f"k{n:03}") for n in range(100)]
    seen: set[str] = set()
    for turn in range(20):
        cap, room = rooms("q", limit, {}, ["q", *names], {}, 4, 0.0, turn)
        assert cap == 4 and "q" in room and len(room) == LOOK_AT_BUCKETS + 8 + 1
        seen |= set(room)
    assert seen >= set(names)  # every key gets its turn
