"""What every command module of the CLI shares: exit codes, running a coroutine, and
binding a command to the runner its arguments name."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from taskrunner.runner import TaskRunner

EXIT_OK, EXIT_ERROR = 0, 1
RunnerFrom = Callable[[argparse.Namespace], TaskRunner]
Command = Callable[[argparse.Namespace, TaskRunner], int]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def binder(runner_from: RunnerFrom) -> Callable[[Command], Callable[[argparse.Namespace], int]]:
    """`handler(command)`: the parser's handler that calls `command(args, runner)`."""

    def handler(command: Command) -> Callable[[argparse.Namespace], int]:
        return lambda args: command(args, runner_from(args))

    return handler
