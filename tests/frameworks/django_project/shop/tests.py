"""django-tasks' own backend tests (tests/tests/test_tasks.py and test_immediate_backend.py of
django-tasks 0.12.0; its sdist and wheel ship no tests), ported to ConveyorBackend: the same
assertions, with the backend under test swapped in and, where the original backend ran a task
at enqueue (ImmediateBackend), a real conveyor worker (burst, in this process) run between the
enqueue and the assertions. Tests of the backport's own backends (Dummy, Immediate) and of
SystemExit/KeyboardInterrupt inside a task (a worker's business, not a backend's) are left
out. ``manage.py test shop`` runs them."""

import dataclasses
from datetime import datetime

from asgiref.sync import sync_to_async
from django.test import SimpleTestCase, override_settings
from django.utils import timezone
from django_tasks import DEFAULT_TASK_QUEUE_NAME, TaskResultStatus, default_task_backend, task, task_backends
from django_tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist, TaskResultMismatch

from conveyor.contrib.django import ConveyorBackend, get_app
from shop import tasks as test_tasks


def run_worker() -> None:
    get_app().worker(burst=True, concurrency=2).run()


@override_settings(
    TASKS={
        "default": {
            "BACKEND": "conveyor.contrib.django.ConveyorBackend",
            "QUEUES": ["default", "queue_1", "mail"],
        },
    }
)
class TaskTestCase(SimpleTestCase):
    def test_using_correct_backend(self) -> None:
        self.assertEqual(default_task_backend, task_backends["default"])
        self.assertIsInstance(task_backends["default"], ConveyorBackend)

    def test_enqueue_task(self) -> None:
        result = test_tasks.noop_task.enqueue()

        self.assertEqual(result.status, TaskResultStatus.READY)
        self.assertEqual(result.task, test_tasks.noop_task)
        self.assertEqual(result.args, [])
        self.assertEqual(result.kwargs, {})

    async def test_enqueue_task_async(self) -> None:
        result = await test_tasks.noop_task.aenqueue()

        self.assertEqual(result.status, TaskResultStatus.READY)
        self.assertEqual(result.task, test_tasks.noop_task)
        self.assertEqual(result.args, [])
        self.assertEqual(result.kwargs, {})

    def test_enqueue_with_invalid_argument(self) -> None:
        with self.assertRaises(TypeError):
            test_tasks.noop_task.enqueue(datetime.now())

    async def test_aenqueue_with_invalid_argument(self) -> None:
        with self.assertRaises(TypeError):
            await test_tasks.noop_task.aenqueue(datetime.now())

    def test_using_priority(self) -> None:
        self.assertEqual(test_tasks.noop_task.priority, 0)
        self.assertEqual(test_tasks.noop_task.using(priority=1).priority, 1)
        self.assertEqual(test_tasks.noop_task.priority, 0)

    def test_using_queue_name(self) -> None:
        self.assertEqual(test_tasks.noop_task.queue_name, DEFAULT_TASK_QUEUE_NAME)
        self.assertEqual(test_tasks.noop_task.using(queue_name="queue_1").queue_name, "queue_1")
        self.assertEqual(test_tasks.noop_task.queue_name, DEFAULT_TASK_QUEUE_NAME)

    def test_using_run_after(self) -> None:
        now = timezone.now()

        self.assertIsNone(test_tasks.noop_task.run_after)
        self.assertEqual(test_tasks.noop_task.using(run_after=now).run_after, now)
        self.assertIsNone(test_tasks.noop_task.run_after)

    def test_chained_using(self) -> None:
        now = timezone.now()

        run_after_task = test_tasks.noop_task.using(run_after=now)
        self.assertEqual(run_after_task.run_after, now)

        priority_task = run_after_task.using(priority=10)
        self.assertEqual(priority_task.priority, 10)
        self.assertEqual(priority_task.run_after, now)

        self.assertEqual(run_after_task.priority, 0)

    async def test_refresh_result(self) -> None:
        result = await test_tasks.noop_task.aenqueue()

        original_result = dataclasses.asdict(result)

        await sync_to_async(result.refresh)()

        self.assertEqual(dataclasses.asdict(result), original_result)

        await result.arefresh()

        self.assertEqual(dataclasses.asdict(result), original_result)

    def test_naive_datetime(self) -> None:
        with self.assertRaisesMessage(InvalidTaskError, "run_after must be an aware datetime"):
            test_tasks.noop_task.using(run_after=datetime.now())

    def test_invalid_priority(self) -> None:
        message = f"priority must be a whole number between {TASK_MIN_PRIORITY} and {TASK_MAX_PRIORITY}"
        for priority in (-101, 101, 3.1):
            with self.assertRaisesMessage(InvalidTaskError, message):
                test_tasks.noop_task.using(priority=priority)  # type: ignore[arg-type]

        test_tasks.noop_task.using(priority=100)
        test_tasks.noop_task.using(priority=-100)
        test_tasks.noop_task.using(priority=0)

    def test_unknown_queue_name(self) -> None:
        with self.assertRaisesMessage(InvalidTaskError, "Queue 'queue-2' is not valid for backend"):
            test_tasks.noop_task.using(queue_name="queue-2")

    def test_call_task(self) -> None:
        self.assertEqual(test_tasks.calculate_meaning_of_life.call(), 42)

    def test_call_async_task_sync(self) -> None:
        self.assertIsNone(test_tasks.noop_task_async.call())

    def test_get_result(self) -> None:
        result = default_task_backend.enqueue(test_tasks.noop_task, (), {})

        new_result = test_tasks.noop_task.get_result(result.id)

        self.assertEqual(result, new_result)

    async def test_get_result_async(self) -> None:
        result = await default_task_backend.aenqueue(test_tasks.noop_task, (), {})

        new_result = await test_tasks.noop_task.aget_result(result.id)

        self.assertEqual(result, new_result)

    async def test_get_missing_result(self) -> None:
        with self.assertRaises(TaskResultDoesNotExist):
            await sync_to_async(test_tasks.noop_task.get_result)("123")

        with self.assertRaises(TaskResultDoesNotExist):
            await test_tasks.noop_task.aget_result("123")

    def test_get_incorrect_result(self) -> None:
        result = default_task_backend.enqueue(test_tasks.noop_task_async, (), {})
        with self.assertRaisesMessage(TaskResultMismatch, "Task does not match"):
            test_tasks.noop_task.get_result(result.id)

    def test_invalid_function(self) -> None:
        for invalid_function in [any, self.test_invalid_function]:
            with (
                self.subTest(invalid_function),
                self.assertRaisesMessage(InvalidTaskError, "Task function must be defined at a module level"),
            ):
                task()(invalid_function)  # type: ignore[arg-type]

    def test_takes_context_without_taking_context(self) -> None:
        with self.assertRaisesMessage(
            InvalidTaskError, "Task takes context but does not have a first argument of 'context'"
        ):
            task(takes_context=True)(test_tasks.calculate_meaning_of_life.func)  # type: ignore[arg-type]

    def test_check(self) -> None:
        errors = list(default_task_backend.check())

        self.assertEqual(len(errors), 0, errors)

    def test_validate_on_enqueue(self) -> None:
        task_with_custom_queue_name = test_tasks.noop_task.using(queue_name="queue_1")

        with (
            override_settings(
                TASKS={
                    "default": {"BACKEND": "conveyor.contrib.django.ConveyorBackend", "QUEUES": ["queue-1"]}
                }
            ),
            self.assertRaisesMessage(InvalidTaskError, "Queue 'queue_1' is not valid for backend"),
        ):
            task_with_custom_queue_name.enqueue()

    # -- ImmediateBackendTestCase, with a worker between enqueue and the assertions -------
    def test_run_task(self) -> None:
        for each in (test_tasks.noop_task, test_tasks.noop_task_async):
            with self.subTest(each):
                result = each.enqueue(1, two=3)
                run_worker()
                result.refresh()

                self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
                self.assertTrue(result.is_finished)
                self.assertIsNotNone(result.started_at)
                self.assertIsNotNone(result.last_attempted_at)
                self.assertIsNotNone(result.finished_at)
                self.assertGreaterEqual(result.started_at, result.enqueued_at)  # type: ignore[arg-type]
                self.assertGreaterEqual(result.finished_at, result.started_at)  # type: ignore[arg-type]
                self.assertIsNone(result.return_value)
                self.assertEqual(result.task, each)
                self.assertEqual(result.args, [1])
                self.assertEqual(result.kwargs, {"two": 3})
                self.assertEqual(result.attempts, 1)

    def test_catches_exception(self) -> None:
        result = test_tasks.failing_task_value_error.enqueue()
        run_worker()
        result.refresh()

        self.assertEqual(result.status, TaskResultStatus.FAILED)
        with self.assertRaisesMessage(ValueError, "Task failed"):
            result.return_value  # noqa: B018
        self.assertTrue(result.is_finished)
        self.assertIsNotNone(result.started_at)
        self.assertIsNotNone(result.finished_at)
        self.assertGreaterEqual(result.finished_at, result.started_at)  # type: ignore[arg-type]
        self.assertEqual(result.errors[0].exception_class, ValueError)
        traceback = result.errors[0].traceback
        self.assertTrue(traceback.endswith("ValueError: This task failed due to ValueError\n"), traceback)

    def test_result(self) -> None:
        result = test_tasks.calculate_meaning_of_life.enqueue()
        run_worker()
        result.refresh()

        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(result.return_value, 42)

    def test_takes_context(self) -> None:
        result = test_tasks.get_task_id.enqueue()
        run_worker()
        result.refresh()

        self.assertEqual(result.return_value, result.id)

    def test_context(self) -> None:
        result = test_tasks.test_context.enqueue(1)
        run_worker()
        result.refresh()
        self.assertEqual(result.status, TaskResultStatus.SUCCESSFUL)

    def test_cannot_pass_bad_arguments(self) -> None:
        # conveyor checks arguments against the task's signature at enqueue, in the caller.
        with self.assertRaises(TypeError):
            test_tasks.calculate_meaning_of_life.enqueue(1)
