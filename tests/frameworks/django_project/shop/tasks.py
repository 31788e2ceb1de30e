"""The shop's jobs: a conveyor task and Django tasks (the backport's ``task``; on Django 6 the
same code imports ``django.tasks``)."""

from django_tasks import TaskContext, task

from conveyor.contrib.django import get_app
from conveyor.contrib.django import task as conveyor_task

from .models import Order


@conveyor_task(unique_for=600)
def refresh(key: str) -> str:
    """A unique job: one per key while it waits or runs."""
    return key


@conveyor_task(queue="orders")
def ship(name: str) -> str:
    """A conveyor task: writes through the ORM in the worker."""
    Order.objects.create(name=f"shipped:{name}")
    return name


def digest() -> None:
    """A periodic job: its schedule is registered when the worker imports this module."""


get_app().periodic(digest, cron="0 8 * * *", tz="Europe/Paris")


@task(priority=5, queue_name="mail")
def add(x: int, y: int) -> int:
    return x + y


@task()
async def add_async(x: int, y: int) -> int:
    return x + y


@task(takes_context=True)
def whoami(context: TaskContext) -> list[object]:
    return [context.task_result.id, context.attempt]


@task()
def boom() -> None:
    raise ValueError("boom")


@task()
def record(name: str) -> None:
    Order.objects.create(name=name)


@task(backend="other")
def multiply(x: int, y: int) -> int:
    return x * y


# The backport's own test tasks (tests/tasks.py of django-tasks 0.12.0), for shop/tests.py.
@task()
def noop_task(*args: object, **kwargs: object) -> None:
    return None


@task()
async def noop_task_async(*args: object, **kwargs: object) -> None:
    return None


@task()
def calculate_meaning_of_life() -> int:
    return 42


@task()
def failing_task_value_error() -> None:
    raise ValueError("This task failed due to ValueError")


@task(takes_context=True)
def get_task_id(context: TaskContext) -> str:
    return context.task_result.id


@task(takes_context=True)
def test_context(context: TaskContext, attempt: int) -> None:
    assert isinstance(context, TaskContext)
    assert context.attempt == attempt
