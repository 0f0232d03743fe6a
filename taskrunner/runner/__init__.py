"""Tasks and workers built on the bare queue."""

from taskrunner.runner.canvas import chain, chord, group
from taskrunner.runner.cleanup import Cleanup, Retention
from taskrunner.runner.context import (
    JobContext,
    current_job,
    current_request_id,
    request_context,
)
from taskrunner.runner.json_logs import JsonFormatter
from taskrunner.runner.middleware import LogAttempts, Middleware
from taskrunner.runner.overview import Overview, QueueOverview
from taskrunner.runner.queues import QueueInfo, RateLimit
from taskrunner.runner.retry import Retry
from taskrunner.runner.runner import TaskRunner
from taskrunner.runner.schedules import Schedule
from taskrunner.runner.tasks import Task
from taskrunner.runner.workflows import Workflow, WorkflowNotFound, WorkflowTree

__all__ = [
    "Cleanup",
    "JobContext",
    "JsonFormatter",
    "LogAttempts",
    "Middleware",
    "Overview",
    "QueueInfo",
    "QueueOverview",
    "RateLimit",
    "Retention",
    "Retry",
    "Schedule",
    "Task",
    "TaskRunner",
    "Workflow",
    "WorkflowNotFound",
    "WorkflowTree",
    "chain",
    "chord",
    "current_job",
    "current_request_id",
    "group",
    "request_context",
]
