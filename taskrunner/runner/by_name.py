"""Enqueueing a task by name without importing it (`runner.enqueue_by_name`, or
`TaskRunner(strict_names=False)`).

A web process may know only a task's name. Its jobs are written with the arguments
JSON-encoded as given; the worker that has the task checks them against its signature
before it runs it, and fails a job whose arguments do not fit at once, without retries.
The producer does not know the task's options either: queue, priority and max_attempts
are the defaults ("default", 0, 5) unless the call passes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskrunner.errors import InvalidArguments
from taskrunner.limits import MAX_NAME_LENGTH, check_text
from taskrunner.runner.tasks import Task

if TYPE_CHECKING:
    from taskrunner.runner.runner import TaskRunner

MAX_CACHED = 1024  # names kept; the oldest is dropped beyond


def unchecked_call(*args: Any, **kwargs: Any) -> Any:
    """Stands in for a task that lives elsewhere; takes any JSON-encodable call."""
    raise InvalidArguments("?", "a task enqueued by name cannot be called here")


class UnregisteredTasks:
    """Stand-in tasks by name, for enqueueing only: never registered, so no worker of
    this runner claims their jobs."""

    def __init__(self, runner: TaskRunner) -> None:
        self.runner = runner
        self._tasks: dict[str, Task[..., Any]] = {}

    def get(self, name: object) -> Task[..., Any]:
        task = self._tasks.get(name) if isinstance(name, str) else None
        if task is None:
            checked = check_text(name, "task name", MAX_NAME_LENGTH)
            task = Task(unchecked_call, self.runner, name=checked)
            if len(self._tasks) >= MAX_CACHED:
                del self._tasks[next(iter(self._tasks))]
            self._tasks[checked] = task
        return task

    def holds(self, task: object) -> bool:
        return isinstance(task, Task) and self._tasks.get(task.name) is task
