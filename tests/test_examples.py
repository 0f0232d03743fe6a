"""Every example runs to the end against the test database and says what it promises.

Each example is run as a script (`python examples/<name>.py`, from the repository root),
the way the README tells users to, with $TASKRUNNER_DSN pointing at this session's
server. The examples use fixed schemas of their own (taskrunner_quickstart, ...), one per
example, and clear their jobs at the start of each run.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# example -> lines its output must contain
EXPECTED: dict[str, list[str]] = {
    "bare_queue": ["Cleaned up: deleted"],
    "quickstart": [
        "deduplicated=False",
        "deduplicated=True",
        "sync_inventory -> succeeded in 2 attempts",
        "succeeded=4, failed=0",
        "inherited request_id='signup-42'",
    ],
    "web_transaction": [
        "200: user 1 created; the transaction committed",
        "500: card for bob@example.com was declined; the transaction was rolled back",
        "OK: committed request -> user + job; rolled-back request -> neither.",
    ],
    "idempotency": [
        "second enqueue: job",
        "IdempotencyConflict: idempotency key 'charge-1001'",
        "same batch  : job",
        "deduplicated=True, status=succeeded",
        "No order was charged twice.",
    ],
    "request_ids": [
        "INFO    [req-checkout-7] POST /checkout",
        "[req-checkout-7] receipt for order 7 sent (request id seen in the thread: req-checkout-7)",
        "[req-checkout-7] charged 4999 cents for order 7 (attempt 2)",
        "3 jobs carry request id 'req-checkout-7'",
    ],
    "sync_script": [
        "from blocking code",
        "invoice of order 7 issued on 2026-01-08 (datetime)",
        "statuses: succeeded, succeeded, succeeded",
    ],
    "periodic": [
        "refused: invalid schedule 'broken': bad cron expression",
        "heartbeat ran 3 times, one job per tick",
        "examples.periodic.nightly_report   0 3 * * *",
        "paused: True",
        "run now: job",
    ],
    "cleanup": [
        "dry run: {'succeeded': 2, 'failed': 1, 'cancelled': 1}",
        "cleanup: {'succeeded': 2, 'failed': 1, 'cancelled': 1}",
        "archived job: succeeded, result 'order 1 charged'",
        "archive holds 2 jobs",
        "key order-1 is free again: a new job, deduplicated=False",
        "order 3 after its rerun: succeeded, 'order 3 charged'",
        "refused: running: 'archive' is not allowed for running jobs",
        "schedule weekly-cleanup: taskrunner.cleanup at '0 4 * * 0'",
        "cleanup task: archived 0 failed, removed 0",
    ],
    "middleware": [
        "resize_image: succeeded after 2 attempts -> cat.png resized",
        "timed examples.middleware.resize_image#2",
    ],
    "triggers": [
        "bob's signup rolled back: no job for it",
        "welcome mail to ada@example.com (signup 1)",
        "sent 2 mails: ada@example.com, from-sql@example.com",
    ],
    "serial_queue": [
        "ledger posted in order: True, at most 1 at once",
        "thumbnails while paused: {'queued': 6}",
        "thumbnails after resume: at most 2 at once",
    ],
    "fastapi_app": [
        "POST /signup ada: 201",
        "X-Request-ID echoed: req-1",
        "POST /signup bob: 402 card for bob@example.com was declined",
        "GET /jobs/ without the token: 401, with it: 200",
        "users: ['ada@example.com']; jobs: [[1, 'ada@example.com']]",
        "succeeded: welcome email sent to ada@example.com (user 1)",
    ],
    "workflows": [
        "5 steps, same key again -> workflow",
        "deduplicated=True",
        "first run: failed",
        "publish  cancelled  not run: step",
        "retry_workflow queued 2 steps again",
        "second run: succeeded",
        "result: published example.org/a@64px, example.org/a@256px",
    ],
    "tracing": [
        "  send orders (PRODUCER) examples.tracing.place_order",
        "    process orders (CONSUMER) examples.tracing.place_order",
        "      send emails (PRODUCER) examples.tracing.send_receipt",
        "        process emails (CONSUMER) examples.tracing.send_receipt",
        'taskrunner_jobs_finished_total{queue="emails",status="succeeded",'
        'task="examples.tracing.send_receipt"} 1.0',
        'taskrunner_queue_jobs{queue="orders",status="succeeded"} 1.0',
    ],
    "process_executor": [
        "4 processes",
        "failed after 1 attempt: JobTimeout",
        "the CPU work never blocked it",
    ],
}


# Examples that are test modules of a user's own, run by pytest (test_pytest_example).
PYTEST_EXAMPLES = {"test_workflow_properties": "2 passed"}


def test_every_example_is_tested() -> None:
    found = {p.stem for p in EXAMPLES.glob("*.py")} - set(PYTEST_EXAMPLES)
    assert found <= set(EXPECTED), f"examples without a test here: {sorted(found - set(EXPECTED))}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name: str, pg_dsn: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env["TASKRUNNER_DSN"] = pg_dsn
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"examples/{name}.py exited {proc.returncode}:\n{output}"
    missing = [line for line in EXPECTED[name] if line not in proc.stdout]
    assert not missing, f"examples/{name}.py did not print {missing}:\n{output}"
    assert "Traceback" not in output, output


def _plugin_arguments() -> list[str]:
    """taskrunner's pytest plugin loads by its entry point once the project is installed;
    from an install that predates the entry point, it is named."""
    installed = importlib.metadata.entry_points(group="pytest11", name="taskrunner")
    return [] if installed else ["-p", "taskrunner.testing.plugin"]


@pytest.mark.parametrize("name", sorted(PYTEST_EXAMPLES))
def test_pytest_example(name: str, pg_dsn: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env["TASKRUNNER_TEST_DSN"] = pg_dsn
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(EXAMPLES / f"{name}.py"),
            *_plugin_arguments(),
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"pytest examples/{name}.py exited {proc.returncode}:\n{output}"
    assert PYTEST_EXAMPLES[name] in proc.stdout, output
