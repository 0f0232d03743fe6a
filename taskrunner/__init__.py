"""taskrunner: a PostgreSQL-backed task runner with idempotency at its heart."""

from taskrunner.errors import (
    IdempotencyConflict,
    InvalidArguments,
    InvalidSchedule,
    JobCancelled,
    JobFailed,
    JobNotFound,
    PermanentFailure,
    RetryLater,
    ScheduleNotFound,
    SchemaOutOfDate,
    TaskRunnerError,
    UnknownTask,
)
from taskrunner.jobs import Job, JobStatus, QueueStats, Stats
from taskrunner.runner import (
    JobContext,
    LogAttempts,
    Middleware,
    QueueInfo,
    RateLimit,
    Retry,
    Schedule,
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
    "InvalidSchedule",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobNotFound",
    "JobStatus",
    "LogAttempts",
    "Middleware",
    "PermanentFailure",
    "QueueInfo",
    "QueueStats",
    "RateLimit",
    "Retry",
    "RetryLater",
    "Schedule",
    "ScheduleNotFound",
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
