"""The worker's side: `taskrunner worker examples.django_app.tasks:runner`. It needs no
Django: the view enqueues by the task's name, the worker runs the function."""

from __future__ import annotations

import asyncio
import os

from taskrunner import TaskRunner

runner = TaskRunner(schema=os.environ.get("TASKRUNNER_SCHEMA", "taskrunner_django_example"))


@runner.task(name="signups.send_welcome_email")
async def send_welcome_email(signup_id: int, email: str) -> str:
    await asyncio.sleep(0.01)  # pretend to talk to a mail service
    return f"welcome email sent to {email} (signup {signup_id})"
