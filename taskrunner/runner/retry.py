"""Retry policy: which errors retry, and how long to wait (any tenacity wait strategy)."""

from __future__ import annotations

from dataclasses import dataclass, field

import tenacity
from tenacity.wait import wait_base

from taskrunner.errors import PermanentFailure, RetryLater


def _default_wait() -> wait_base:
    return tenacity.wait_exponential_jitter(initial=1, max=300)


@dataclass(frozen=True)
class Retry:
    """How a task retries. `wait` gets the number of the attempt that failed."""

    max_attempts: int = 5
    wait: wait_base = field(default_factory=_default_wait)
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    dont_retry_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("Retry.max_attempts must be at least 1")
        for name in ("retry_on", "dont_retry_on"):
            value = getattr(self, name)
            if isinstance(value, type):
                object.__setattr__(self, name, (value,))

    def delay_after(self, error: BaseException, attempt: int) -> float | None:
        """Seconds until the next attempt, or None when `error` must not be retried.

        Whether attempts remain is the queue's decision, made in the same statement
        that records the failure."""
        if isinstance(error, PermanentFailure):
            return None
        if isinstance(error, RetryLater):
            return error.delay
        if isinstance(error, self.dont_retry_on) or not isinstance(error, self.retry_on):
            return None
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = attempt
        state.outcome = _failed_future(error)
        return max(0.0, float(self.wait(state)))


def _failed_future(error: BaseException) -> tenacity.Future:
    future = tenacity.Future(attempt_number=1)
    future.set_exception(error)
    return future
