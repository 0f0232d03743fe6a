"""examples/django_app and taskrunner.contrib.django, through Django's test client against
real PostgreSQL: a synchronous view's row and its job commit or roll back together, and a
taskrunner worker runs what Django enqueued."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

django = pytest.importorskip("django")

from django.core.management import call_command  # noqa: E402
from django.db import connections, transaction  # noqa: E402
from django.test import Client, override_settings  # noqa: E402

from taskrunner import (  # noqa: E402
    IdempotencyConflict,
    InvalidArguments,
    JobStatus,
    TaskRunner,
    TaskRunnerError,
    request_context,
)

ROOT = Path(__file__).resolve().parents[2]
ABSENT_SCHEMA = "no_taskrunner_here"


@pytest.fixture(scope="session")
def django_ready(pg_dsn: str) -> None:
    """Django set up once with the example's settings, on this session's database."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        patch.setenv("TASKRUNNER_DSN", pg_dsn)
        patch.setenv("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")
        django.setup()
    import sys

    if str(ROOT) not in sys.path:  # the example's modules are imported lazily by Django
        sys.path.append(str(ROOT))


@pytest.fixture
def django_schema(django_ready: None, schema: str) -> Iterator[str]:
    """This test's schema holds taskrunner's tables and the example's table; Django's
    connections find the table there (search_path) and enqueue into it."""
    database = connections["default"]
    database.close()
    database.settings_dict["OPTIONS"]["options"] = f"-c search_path={schema}"
    call_command("migrate", verbosity=0)  # the example's own migrations, into this schema
    with override_settings(TASKRUNNER_SCHEMA=schema):
        yield schema
    database.close()
    del database.settings_dict["OPTIONS"]["options"]


@pytest.fixture
def client(django_schema: str) -> Client:
    return Client()


def signups() -> list[str]:
    from examples.django_app.models import Signup

    return list(Signup.objects.order_by("id").values_list("email", flat=True))


def jobs_in(pg_dsn: str, schema: str) -> list[Any]:
    async def read() -> list[Any]:
        async with TaskRunner(pg_dsn, schema=schema) as runner:
            return await runner.list_jobs()

    return asyncio.run(read())


def run_worker_until_idle(pg_dsn: str, schema: str, job_id: int) -> Any:
    from examples.django_app.tasks import send_welcome_email

    async def work() -> Any:
        async with TaskRunner(pg_dsn, schema=schema) as runner:
            runner.task(name=send_welcome_email.name)(send_welcome_email.func)
            await runner.run_worker(stop_when_idle=True, poll_interval=0.1)
            return await runner.result(job_id, timeout=5)

    return asyncio.run(work())


def test_a_view_that_commits_leaves_the_row_and_its_job(
    client: Client, pg_dsn: str, django_schema: str
):
    response = client.post("/signup", {"email": "ada@example.com"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert signups() == ["ada@example.com"]
    (job,) = jobs_in(pg_dsn, django_schema)
    assert (job.id, job.task, job.args, job.status) == (
        body["job_id"],
        "signups.send_welcome_email",
        [body["signup_id"], "ada@example.com"],
        JobStatus.QUEUED,
    )


def test_a_view_that_raises_after_enqueueing_leaves_neither_row_nor_job(
    client: Client, pg_dsn: str, django_schema: str
):
    response = client.post("/signup", {"email": "bob@example.com", "card": "declined"})
    assert response.status_code == 402
    assert signups() == []
    assert jobs_in(pg_dsn, django_schema) == []


def test_a_worker_runs_the_job_a_django_view_enqueued(
    client: Client, pg_dsn: str, django_schema: str
):
    body = client.post("/signup", {"email": "ada@example.com"}).json()
    result = run_worker_until_idle(pg_dsn, django_schema, body["job_id"])
    assert result == f"welcome email sent to ada@example.com (signup {body['signup_id']})"


def test_the_request_id_header_reaches_the_job_and_the_response(
    client: Client, pg_dsn: str, django_schema: str
):
    response = client.post(
        "/signup", {"email": "ada@example.com"}, headers={"X-Request-ID": "req-django-1"}
    )
    assert response["X-Request-ID"] == "req-django-1"
    (job,) = jobs_in(pg_dsn, django_schema)
    assert job.request_id == "req-django-1"


def test_a_request_without_the_header_gets_a_new_id_on_the_job_and_the_response(
    client: Client, pg_dsn: str, django_schema: str
):
    response = client.post("/signup", {"email": "ada@example.com"})
    (job,) = jobs_in(pg_dsn, django_schema)
    assert job.request_id
    assert response["X-Request-ID"] == job.request_id == response.json()["request_id"]


async def test_under_asgi_the_request_id_reaches_the_job_and_the_response(
    pg_dsn: str, django_schema: str
):
    from django.test import AsyncClient

    response = await AsyncClient().post(
        "/signup", {"email": "ada@example.com"}, headers={"X-Request-ID": "req-asgi-1"}
    )
    assert response.status_code == 201, response.content
    assert response["X-Request-ID"] == "req-asgi-1"
    async with TaskRunner(pg_dsn, schema=django_schema) as runner:
        (job,) = await runner.list_jobs()
    assert job.request_id == "req-asgi-1"


# ---- the helper on its own ----------------------------------------------------------------


def test_outside_a_transaction_an_enqueue_commits_at_once(pg_dsn: str, django_schema: str):
    from taskrunner.contrib.django import enqueue

    job_id = enqueue("reports.build", 7, kind="weekly", queue="reports", priority=3)
    (job,) = jobs_in(pg_dsn, django_schema)
    assert (job.id, job.args, job.kwargs, job.queue, job.priority) == (
        job_id,
        [7],
        {"kind": "weekly"},
        "reports",
        3,
    )


def test_a_delay_puts_the_job_that_far_in_the_future(pg_dsn: str, django_schema: str):
    from taskrunner.contrib.django import enqueue

    before = datetime.now(UTC)
    enqueue("reports.build", 1, delay=timedelta(hours=1))
    (job,) = jobs_in(pg_dsn, django_schema)
    assert timedelta(minutes=59) < job.run_at - before < timedelta(minutes=61)


def test_the_current_request_id_is_the_jobs(pg_dsn: str, django_schema: str):
    from taskrunner.contrib.django import enqueue

    with request_context("req-outside-a-view"):
        enqueue("reports.build", 1)
    (job,) = jobs_in(pg_dsn, django_schema)
    assert job.request_id == "req-outside-a-view"


def test_the_same_idempotency_key_and_arguments_return_the_existing_job(django_schema: str):
    from taskrunner.contrib.django import enqueue

    first = enqueue("charges.charge", 10, idempotency_key="order-1")
    assert enqueue("charges.charge", 10, idempotency_key="order-1") == first


def test_a_key_held_with_other_arguments_raises_and_leaves_the_transaction_usable(
    pg_dsn: str, django_schema: str
):
    from taskrunner.contrib.django import enqueue

    held = enqueue("charges.charge", 10, idempotency_key="order-1")
    with transaction.atomic():
        with pytest.raises(IdempotencyConflict) as raised:
            enqueue("charges.charge", 99, idempotency_key="order-1")
        enqueue("charges.charge", 11, idempotency_key="order-2")  # the block goes on
    assert raised.value.existing_job_id == held
    assert sorted(j.args[0] for j in jobs_in(pg_dsn, django_schema)) == [10, 11]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ((("",), {}), "task"),
        ((("t",), {"queue": ""}), "queue"),
        ((("t",), {"idempotency_key": "k" * 401}), "idempotency_key"),
        ((("t",), {"request_id": "r" * 201}), "request_id"),
        ((("t",), {"priority": "high"}), "priority"),
        ((("t",), {"max_attempts": 0}), "max_attempts"),
        ((("t",), {"delay": -1}), "delay"),
        ((("t",), {"delay": 5, "run_at": datetime.now(UTC)}), "delay"),
        ((("t",), {"run_at": datetime(2030, 1, 1)}), "run_at"),  # no UTC offset
        ((("t", float("nan")), {}), None),
        ((("t", object()), {}), None),
        ((("t", "a\x00b"), {}), None),
    ],
)
def test_bad_input_raises_invalid_arguments_before_any_sql(
    call: tuple[tuple[Any, ...], dict[str, Any]], field: str | None, django_ready: None
):
    from taskrunner.contrib.django import enqueue

    args, kwargs = call
    # A schema that does not exist: any SQL run would fail with another error.
    with pytest.raises(InvalidArguments) as raised:
        enqueue(*args, schema=ABSENT_SCHEMA, **kwargs)
    assert raised.value.field == field


def test_an_invalid_schema_name_is_refused_before_any_sql(django_ready: None):
    from taskrunner.contrib.django import enqueue

    with pytest.raises(InvalidArguments, match="invalid schema name"):
        enqueue("t", schema='x"; DROP TABLE y; --')


def test_a_schema_without_taskrunners_tables_is_a_clear_error(django_ready: None):
    from taskrunner.contrib.django import enqueue

    with pytest.raises(TaskRunnerError, match="taskrunner migrate"):
        enqueue("t", schema=ABSENT_SCHEMA)


def test_the_examples_migrations_match_its_models(django_ready: None):
    call_command("makemigrations", "django_app", check=True, dry_run=True, verbosity=0)
