"""What every command module of the CLI shares: exit codes, running a coroutine, and
binding a command to the runner its arguments name.

Exit codes, the same for every command:

- 0: done.
- 1: the command was understood but failed while it ran: the database could not be
  reached or refused, the schema is out of date, the job or schedule it names does not
  exist or its status does not allow the action, an idempotency key conflicts.
- 2: bad usage: the command line was refused before anything was written, with one line
  on stderr saying why (an unknown option or value, arguments that do not fit the task,
  an unknown task, an invalid schema name, an app without tasks ...).
- 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from taskrunner.errors import (
    InvalidArguments,
    InvalidSchedule,
    InvalidSchemaName,
    TaskRunnerError,
    UnknownTask,
)
from taskrunner.runner import TaskRunner

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Refusals of what the command line said, not failures of the database or of the job.
USAGE_ERRORS = (InvalidArguments, UnknownTask, InvalidSchemaName, InvalidSchedule)

RunnerFrom = Callable[[argparse.Namespace], TaskRunner]
Command = Callable[[argparse.Namespace, TaskRunner], int]


class UsageError(Exception):
    """Bad command-line input; printed without a traceback, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (the message and where to find help) rather
    than the usage block; subcommand parsers are made of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def exit_code_of(error: TaskRunnerError) -> int:
    """2 for input the command line gave that was refused, 1 for a failure at run time."""
    return EXIT_USAGE if isinstance(error, USAGE_ERRORS) else EXIT_ERROR


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def binder(runner_from: RunnerFrom) -> Callable[[Command], Callable[[argparse.Namespace], int]]:
    """`handler(command)`: the parser's handler that calls `command(args, runner_from(args))`."""

    def handler(command: Command) -> Callable[[argparse.Namespace], int]:
        return lambda args: command(args, runner_from(args))

    return handler
