"""An app for worker processes of the schedule tests.

`python -m taskrunner worker tests.acceptance.apps.schedule_app:runner` with
$TASKRUNNER_DSN and $TR_TEST_SCHEMA set. It declares one schedule a second per missed
policy ("every-second-latest", "-skip", "-all"); their jobs carry the policy. A tick
counts as missed after $TR_MISSED_AFTER seconds (default: the library's).
"""

from __future__ import annotations

import os
from datetime import timedelta

from taskrunner import TaskRunner
from taskrunner.runner import scheduler

runner = TaskRunner(schema=os.environ.get("TR_TEST_SCHEMA", "taskrunner"))
if os.environ.get("TR_MISSED_AFTER"):
    scheduler.MISSED_AFTER = float(os.environ["TR_MISSED_AFTER"])


@runner.task(name="schedules.beat")
async def beat(policy: str) -> str:
    return policy


for policy in ("latest", "skip", "all"):
    runner.periodic(
        every=timedelta(seconds=1),
        name=f"every-second-{policy}",
        kwargs={"policy": policy},
        missed=policy,
    )(beat)
