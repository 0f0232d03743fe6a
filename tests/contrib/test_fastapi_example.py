"""examples/fastapi_app.py, through the ASGI test client against real PostgreSQL: the
runner opened in the lifespan, request ids from X-Request-ID, a job enqueued in the
request's own transaction, and the dashboard under /jobs behind the app's own auth."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from taskrunner import JobStatus, TaskRunner, TaskRunnerError

ROOT = Path(__file__).resolve().parents[2]
STAFF = {"Authorization": "Bearer staff-token"}


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("examples.fastapi_app")


@pytest.fixture
def tr(pg_dsn: str, schema: str, example: ModuleType) -> TaskRunner:
    """A runner of this test's schema with the example's task, not yet open."""
    runner = TaskRunner(pg_dsn, schema=schema)
    runner.task(name=example.send_welcome_email.name)(example.send_welcome_email.func)
    return runner


@pytest.fixture
def app(example: ModuleType, tr: TaskRunner) -> FastAPI:
    made: FastAPI = example.create_app(tr, staff_token="staff-token")
    return made


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app while its lifespan runs (as a server would run it)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as c:
            yield c


async def users(tr: TaskRunner) -> list[str]:
    conn = await asyncpg.connect(tr.target.dsn)
    try:
        rows = await conn.fetch(f"SELECT email FROM {tr.schema}.example_users ORDER BY id")
    finally:
        await conn.close()
    return [r["email"] for r in rows]


async def test_the_lifespan_opens_the_runner_and_closes_it_at_shutdown(
    app: FastAPI, tr: TaskRunner
):
    assert not tr.is_open
    async with app.router.lifespan_context(app):
        assert tr.is_open
    assert not tr.is_open
    with pytest.raises(TaskRunnerError, match="not open"):
        await tr.enqueue("examples.fastapi_app.send_welcome_email", 1, "a@b.c")


async def test_the_request_id_header_becomes_the_jobs_request_id_and_is_echoed(
    client: httpx.AsyncClient, tr: TaskRunner
):
    response = await client.post(
        "/signup", json={"email": "ada@example.com"}, headers={"X-Request-ID": "req-ada-1"}
    )
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-ID"] == "req-ada-1"
    job = await tr.get_job(response.json()["job_id"])
    assert job is not None
    assert job.request_id == "req-ada-1"


async def test_a_request_without_the_header_gets_a_new_id_in_the_endpoint_and_the_response(
    client: httpx.AsyncClient,
):
    first = await client.get("/whoami")
    second = await client.get("/whoami")
    seen = first.json()["request_id"]
    assert seen
    assert first.headers["X-Request-ID"] == seen
    assert second.json()["request_id"] != seen


async def test_a_committed_signup_leaves_the_user_and_its_job(
    client: httpx.AsyncClient, tr: TaskRunner
):
    response = await client.post("/signup", json={"email": "ada@example.com"})
    assert response.status_code == 201, response.text
    assert await users(tr) == ["ada@example.com"]
    job = await tr.get_job(response.json()["job_id"])
    assert job is not None
    assert (job.status, job.args) == (
        JobStatus.QUEUED,
        [response.json()["user_id"], "ada@example.com"],
    )


async def test_a_signup_that_fails_after_enqueueing_leaves_neither_the_user_nor_the_job(
    client: httpx.AsyncClient, tr: TaskRunner
):
    response = await client.post("/signup", json={"email": "bob@example.com", "card": "declined"})
    assert response.status_code == 402
    assert await users(tr) == []
    assert await tr.list_jobs() == []


async def test_a_job_enqueued_by_a_request_runs_on_a_worker(
    client: httpx.AsyncClient, tr: TaskRunner
):
    response = await client.post("/signup", json={"email": "ada@example.com"})
    await tr.run_worker(stop_when_idle=True, poll_interval=0.1)
    assert await tr.result(response.json()["job_id"], timeout=5) == (
        f"welcome email sent to ada@example.com (user {response.json()['user_id']})"
    )


async def test_the_dashboard_under_jobs_refuses_a_request_without_the_apps_auth(
    client: httpx.AsyncClient,
):
    response = await client.get("/jobs/")
    assert response.status_code == 401
    wrong = await client.get("/jobs/", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401


async def test_the_dashboard_under_jobs_answers_staff(client: httpx.AsyncClient, tr: TaskRunner):
    await client.post("/signup", json={"email": "ada@example.com"})
    response = await client.get("/jobs/", headers=STAFF)
    assert response.status_code == 200, response.text
    assert "default" in response.text  # the overview names the queue the job is in
    assert 'href="/jobs/static/' in response.text  # its links stay under the mount


async def test_without_a_staff_token_the_dashboard_answers_no_one(
    example: ModuleType, tr: TaskRunner, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("STAFF_TOKEN", raising=False)
    app = example.create_app(tr, staff_token=None)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            response = await client.get("/jobs/", headers={"Authorization": "Bearer "})
    assert response.status_code == 401
