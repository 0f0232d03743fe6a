"""taskrunner: a PostgreSQL-backed task runner with idempotency at its heart."""

from taskrunner.errors import (
    IdempotencyConflict,
    InvalidArguments,
    JobCancelled,
    JobFailed,
    JobNotFound,
    PermanentFailure,
    RetryLater,
    SchemaOutOfDate,
    TaskRunnerError,
    UnknownTask,
)
from taskrunner.jobs import Job, JobStatus, QueueStats, Stats
from taskrunner.runner import (
    JobContext,
    Retry,
    Task,
    TaskRunner,
    current_job,
    current_request_id,
    request_context,
)

__version__ = "0.1.0"

__all__ = [
    "IdempotencyConflict",
    "InvalidArguments",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobNotFound",
    "JobStatus",
    "PermanentFailure",
    "QueueStats",
    "Retry",
    "RetryLater",
    "SchemaOutOfDate",
    "Stats",
    "Task",
    "TaskRunner",
    "TaskRunnerError",
    "UnknownTask",
    "current_job",
    "current_request_id",
    "request_context",
]
