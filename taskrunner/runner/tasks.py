"""`@runner.task`: a function plus the options that say where and how it runs."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar

from taskrunner.errors import InvalidArguments
from taskrunner.project import script_module_name
from taskrunner.runner.codec import SignatureCodec, UnresolvedHints
from taskrunner.runner.declaration import TaskOptions, check_function
from taskrunner.runner.retry import Retry

if TYPE_CHECKING:
    from taskrunner.jobs import Job
    from taskrunner.runner.canvas import Step
    from taskrunner.runner.runner import TaskRunner

P = ParamSpec("P")
R = TypeVar("R")

ExecutorName = Literal["async", "thread", "process"]

# Keyword options of enqueue(); a task parameter of one of these names could never be
# passed, so decorating such a function is refused.
ENQUEUE_OPTIONS = frozenset(
    {
        "idempotency_key",
        "request_id",
        "delay",
        "run_at",
        "priority",
        "queue",
        "max_attempts",
        "connection",
    }
)
TASK_OPTIONS = (
    "name",
    "queue",
    "priority",
    "max_attempts",
    "retry",
    "timeout",
    "lease",
    "executor",
)
DEFAULT_LEASE = 30.0


class Task(Generic[P, R]):
    """A registered task. Calling it runs the function directly; `.enqueue()` queues it."""

    def __init__(
        self,
        func: Callable[P, R],
        runner: TaskRunner,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        lease: float = DEFAULT_LEASE,
        executor: ExecutorName | None = None,
    ) -> None:
        qualname, chosen, is_async = check_function(func, executor, ENQUEUE_OPTIONS)
        declared = TaskOptions.check(
            qualname,
            name=name if name is not None else f"{_module_name(func)}.{qualname}",
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            retry=retry,
            timeout=timeout,
            lease=lease,
        )
        try:
            self.codec = SignatureCodec(func)
        except UnresolvedHints as exc:
            raise InvalidArguments(None, f"@runner.task: {exc}", field="type hints") from None
        self.retry = declared.retry
        self.func = func
        self.runner = runner
        self.name = declared.name
        self.queue = declared.queue
        self.priority = declared.priority
        self.max_attempts = declared.max_attempts
        self.timeout = declared.timeout
        self.lease = declared.lease
        self.executor: ExecutorName = chosen  # type: ignore[assignment]  # one of EXECUTORS
        self.is_async = is_async
        functools.update_wrapper(self, func)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    async def enqueue(self, *args: Any, **kwargs: Any) -> Job:
        """Queue a call; takes the same options as `runner.enqueue`."""
        return await self.runner.enqueue(self, *args, **kwargs)

    def s(self, *args: Any, **kwargs: Any) -> Step:
        """A workflow step calling this task; after another step, the previous result
        comes first in its positional arguments (see runner/canvas.py)."""
        from taskrunner.runner.canvas import Step

        return Step(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Step:
        """A workflow step that receives nothing from the steps before it."""
        from taskrunner.runner.canvas import Step

        return Step(self, args, kwargs, immutable=True)

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue} executor={self.executor}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled by reference, so a process-pool child imports the module and finds it.
        return (_import_task, (self.func.__module__, self.func.__qualname__))


def _module_name(func: Callable[..., Any]) -> str:
    """The importable name of func's module, also for a script run as __main__, so a
    script and a worker that imports it agree on default task names: `python -m pkg.mod`
    gives `pkg.mod`, `python examples/quickstart.py` gives `examples.quickstart` (see
    `taskrunner.project.script_module_name`)."""
    module = func.__module__
    if module not in ("__main__", "__mp_main__"):
        return module
    main = sys.modules.get(module)
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name not in ("__main__", "__mp_main__"):
        return str(spec.name)
    path = getattr(main, "__file__", None)
    if not path:
        return module
    return script_module_name(path) or Path(path).stem


def _import_task(module: str, qualname: str) -> Task[Any, Any]:
    import importlib

    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, Task):
        raise TypeError(f"{module}.{qualname} is not a task")
    return obj
