"""Retry policy: which errors retry, and how long to wait (any tenacity wait strategy)."""

from __future__ import annotations

from dataclasses import dataclass, field

import tenacity
from tenacity.wait import wait_base

from taskrunner.errors import InvalidArguments, PermanentFailure, RetryLater
from taskrunner.limits import INT32_MAX, MAX_DELAY_SECONDS, check_int, check_seconds

_PROBED_ATTEMPTS = 10  # of a Retry's wait strategy, when it is made


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
        for name in ("retry_on", "dont_retry_on"):
            value = getattr(self, name)
            if isinstance(value, type):
                object.__setattr__(self, name, (value,))
        _check_policy(self)

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
        seconds = float(self.wait(_state(error, attempt)))
        # A strategy may grow past what a row can hold; waiting the longest allowed keeps
        # the job (and the ack batch it travels in) storable.
        return min(max(0.0, seconds), MAX_DELAY_SECONDS) if seconds == seconds else 0.0


def _state(error: BaseException, attempt: int) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    state.outcome = _failed_future(error)
    return state


def _check_policy(policy: Retry) -> None:
    """Refuse a policy that would fail only once a job fails: InvalidArguments."""
    check_int(policy.max_attempts, "Retry.max_attempts", minimum=1, maximum=INT32_MAX)
    for name in ("retry_on", "dont_retry_on"):
        value = getattr(policy, name)
        if not isinstance(value, tuple) or not all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in value
        ):
            raise InvalidArguments(
                None, f"Retry.{name} must be exception classes, not {value!r}", field=name
            )
    wait = policy.wait
    if not callable(wait):
        raise InvalidArguments(
            None,
            f"Retry.wait must be a tenacity wait strategy (like "
            f"tenacity.wait_exponential_jitter()), not {wait!r}",
            field="wait",
        )
    # Try it on the first attempts, as a failing job would: a strategy that raises, or
    # gives a delay that is not a finite, non-negative number, is refused now.
    for attempt in range(1, min(policy.max_attempts, _PROBED_ATTEMPTS) + 1):
        try:
            seconds = wait(_state(Exception("probe"), attempt))
        except Exception as exc:
            raise InvalidArguments(
                None, f"Retry.wait failed when tried for attempt {attempt}: {exc!r}", field="wait"
            ) from None
        check_seconds(seconds, f"Retry.wait's delay after attempt {attempt}", maximum=float("inf"))


def _failed_future(error: BaseException) -> tenacity.Future:
    future = tenacity.Future(attempt_number=1)
    future.set_exception(error)
    return future
