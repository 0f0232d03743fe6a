"""The dashboard's actions, posted from outside: each changes what it says with a valid
CSRF token, and nothing without one; a read-only dashboard serves none."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import httpx
import pytest

from taskrunner import JobStatus, TaskRunner
from taskrunner.web import create_app


async def _status(runner: TaskRunner, job_id: int) -> JobStatus:
    job = await runner.get_job(job_id)
    assert job is not None
    return job.status


async def test_retrying_a_failed_job_queues_it_again_and_redirects_to_its_page(
    client: httpx.AsyncClient, runner: TaskRunner, tasks: SimpleNamespace, token, work
):
    failed = await tasks.boom.enqueue("x")
    await work()

    answer = await client.post(f"/jobs/{failed.id}/retry", data={"csrf_token": await token(client)})

    assert answer.status_code == 303
    assert answer.headers["location"].startswith(f"/jobs/{failed.id}?message=")
    assert await _status(runner, failed.id) is JobStatus.QUEUED


async def test_pausing_resuming_and_cancelling_a_job(
    client: httpx.AsyncClient, runner: TaskRunner, tasks, token
):
    job = await tasks.ok.enqueue(1)
    form = {"csrf_token": await token(client)}

    await client.post(f"/jobs/{job.id}/pause", data=form)
    assert await _status(runner, job.id) is JobStatus.PAUSED
    await client.post(f"/jobs/{job.id}/resume", data=form)
    assert await _status(runner, job.id) is JobStatus.QUEUED
    await client.post(f"/jobs/{job.id}/cancel", data=form)
    assert await _status(runner, job.id) is JobStatus.CANCELLED


async def test_an_action_the_status_does_not_allow_says_so_and_changes_nothing(
    client: httpx.AsyncClient, runner: TaskRunner, tasks, token
):
    job = await tasks.ok.enqueue(1)

    answer = await client.post(f"/jobs/{job.id}/retry", data={"csrf_token": await token(client)})

    assert "cannot+retry" in answer.headers["location"]
    assert await _status(runner, job.id) is JobStatus.QUEUED


async def test_pausing_and_resuming_a_queue(client: httpx.AsyncClient, runner, token):
    form = {"csrf_token": await token(client), "name": "mail"}

    await client.post("/queues/pause", data=form)
    assert {q.name: q.paused for q in await runner.queues()}["mail"] is True
    await client.post("/queues/resume", data=form)
    assert {q.name: q.paused for q in await runner.queues()}["mail"] is False


async def test_running_a_schedule_now_enqueues_its_job(
    client: httpx.AsyncClient, runner: TaskRunner, tasks, token
):
    await runner.add_schedule("hourly", tasks.ok, every=timedelta(hours=1), args=[7])

    answer = await client.post(
        "/schedules/run", data={"csrf_token": await token(client), "name": "hourly"}
    )

    assert answer.status_code == 303
    jobs = await runner.list_jobs(task="app.ok")
    assert [j.args for j in jobs] == [[7]]


async def test_retrying_every_job_a_filter_selects(
    client: httpx.AsyncClient, runner: TaskRunner, tasks, token, work
):
    failed = [await tasks.boom.enqueue(str(n)) for n in range(3)]
    other = await tasks.flaky.enqueue("other")
    await work()

    answer = await client.post(
        "/jobs/bulk/retry",
        data={"csrf_token": await token(client), "status": "failed", "task": "app.boom"},
    )

    assert answer.status_code == 303
    assert "3+jobs" in answer.headers["location"]
    assert [await _status(runner, j.id) for j in failed] == [JobStatus.QUEUED] * 3
    assert await _status(runner, other.id) is JobStatus.FAILED


async def test_cancelling_every_job_a_filter_selects(
    client: httpx.AsyncClient, runner: TaskRunner, tasks, token
):
    mail = [await tasks.ok.enqueue(n, queue="mail") for n in range(3)]
    kept = await tasks.ok.enqueue(9)

    await client.post(
        "/jobs/bulk/cancel", data={"csrf_token": await token(client), "queue": "mail"}
    )

    assert [await _status(runner, j.id) for j in mail] == [JobStatus.CANCELLED] * 3
    assert await _status(runner, kept.id) is JobStatus.QUEUED


async def test_a_bulk_action_without_any_filter_is_refused(
    client: httpx.AsyncClient, runner: TaskRunner, tasks, token
):
    job = await tasks.ok.enqueue(1)

    answer = await client.post("/jobs/bulk/cancel", data={"csrf_token": await token(client)})

    assert answer.status_code == 400
    assert await _status(runner, job.id) is JobStatus.QUEUED


@pytest.mark.parametrize("form", [{}, {"csrf_token": ""}, {"csrf_token": "0" * 64}])
async def test_an_action_without_a_valid_csrf_token_is_forbidden_and_changes_nothing(
    client: httpx.AsyncClient, runner: TaskRunner, tasks, token, form
):
    job = await tasks.ok.enqueue(1)
    await token(client)  # the client holds a cookie: only the form's token is wrong

    for path, data in (
        (f"/jobs/{job.id}/cancel", form),
        ("/jobs/bulk/cancel", {**form, "task": "app.ok"}),
        ("/queues/pause", {**form, "name": "default"}),
    ):
        assert (await client.post(path, data=data)).status_code == 403, path

    assert await _status(runner, job.id) is JobStatus.QUEUED
    assert not any(q.paused for q in await runner.queues())


async def test_a_token_without_its_cookie_is_forbidden(
    client: httpx.AsyncClient, runner: TaskRunner, tasks, token
):
    job = await tasks.ok.enqueue(1)
    valid = await token(client)
    client.cookies.clear()  # a forged request from another site: its token, not the cookie

    answer = await client.post(f"/jobs/{job.id}/cancel", data={"csrf_token": valid})

    assert answer.status_code == 403
    assert await _status(runner, job.id) is JobStatus.QUEUED


async def test_a_read_only_dashboard_serves_no_action_and_shows_no_button(
    runner: TaskRunner, tasks, client_for, work
):
    failed = await tasks.boom.enqueue("x")
    await work()
    await runner.add_schedule("hourly", tasks.ok, every=timedelta(hours=1), args=[1])

    async with await client_for(create_app(runner, read_only=True)) as client:
        for page in ("/", f"/jobs/{failed.id}", "/jobs?status=failed", "/queues", "/schedules"):
            text = (await client.get(page)).text
            assert 'method="post"' not in text, page
            assert "csrf_token" not in text, page
        for path, data in (
            (f"/jobs/{failed.id}/retry", {}),
            ("/jobs/bulk/retry", {"status": "failed"}),
            ("/queues/pause", {"name": "default"}),
            ("/schedules/run", {"name": "hourly"}),
        ):
            assert (await client.post(path, data=data)).status_code in (404, 405), path

    assert await _status(runner, failed.id) is JobStatus.FAILED
