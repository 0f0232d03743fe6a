"""The bare job queue: SQL and asyncpg only, no Python callables."""

from taskrunner.queue.errors import is_connection_lost, translate_error, translate_errors
from taskrunner.queue.notify import Listener, cancel_channel, jobs_channel
from taskrunner.queue.queue import JobQueue
from taskrunner.queue.records import (
    AckResult,
    Completion,
    EnqueueResult,
    Failure,
    JobRow,
    Lease,
    LeaseExtension,
    NewJob,
    QueueCount,
    RenewResult,
)

__all__ = [
    "AckResult",
    "Completion",
    "EnqueueResult",
    "Failure",
    "JobQueue",
    "JobRow",
    "Lease",
    "LeaseExtension",
    "Listener",
    "NewJob",
    "QueueCount",
    "RenewResult",
    "cancel_channel",
    "is_connection_lost",
    "jobs_channel",
    "translate_error",
    "translate_errors",
]
