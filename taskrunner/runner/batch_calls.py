"""How `enqueue_many` reads each call of its batch.

- a tuple is the positional arguments: `(1, 2)` is `f(1, 2)`, `([1, 2],)` is `f([1, 2])`;
- a dict is the keyword arguments: `{"to": "a"}` is `f(to="a")`;
- a list is the one argument of a task that takes exactly one positional parameter
  (`f(ids: list[int])`: `[1, 2]` is `f([1, 2])`); for any other task a list could mean
  either, so it is refused: write a tuple;
- any other value is the one positional argument: `"a"` is `f("a")`.
"""

from __future__ import annotations

import inspect
from typing import Any

from taskrunner.errors import InvalidArguments
from taskrunner.runner.tasks import Task

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def takes_one_positional(task: Task[..., Any]) -> bool:
    """Whether the task has exactly one parameter that can be given by position."""
    kinds = [p.kind for p in task.codec.signature.parameters.values()]
    return (
        inspect.Parameter.VAR_POSITIONAL not in kinds
        and sum(kind in _POSITIONAL for kind in kinds) == 1
    )


def split_call(
    task: Task[..., Any], call: Any, index: int, one_positional: bool
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) of one call of a batch; `one_positional` is takes_one_positional."""
    if isinstance(call, tuple):
        return call, {}
    if isinstance(call, dict):
        return (), call
    if isinstance(call, list) and not one_positional:
        raise InvalidArguments(
            task.name,
            "a list is ambiguous for a task that does not take exactly one positional "
            "parameter: write a tuple, (1, 2) for two arguments or ([1, 2],) for one list",
            index=index,
        )
    return (call,), {}
