"""The dashboard's pages, read from outside through HTTP: overview, jobs (filters, finding,
keyset pages), a job, queues, schedules, workflows; live counts; a phone's viewport."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from taskrunner import TaskRunner, request_context
from taskrunner.web import create_app


def _row(page: str, attribute: str, value: str) -> str:
    found = re.search(rf'<tr {attribute}="{re.escape(value)}">(.*?)</tr>', page, re.S)
    assert found, f"no row {attribute}={value}"
    return found.group(1)


def _ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-job-id="(\d+)">', page)]


async def test_the_overview_shows_per_queue_counts_oldest_wait_and_last_hours_finished_jobs(
    client: httpx.AsyncClient, runner: TaskRunner, tasks: SimpleNamespace, work
):
    await tasks.ok.enqueue(1)
    await tasks.boom.enqueue("x")
    await work()
    await tasks.ok.enqueue(2, queue="mail")
    await tasks.ok.enqueue(3, queue="mail")
    paused = await tasks.ok.enqueue(4, queue="mail")
    await runner.pause(paused.id)
    await runner.pause_queue("mail")

    page = (await client.get("/")).text

    default = _row(page, "data-queue", "default")
    assert 'data-recent="succeeded">1<' in default
    assert 'data-recent="failed">1<' in default
    mail = _row(page, "data-queue", "mail")
    assert 'data-count="queued">2<' in mail
    assert 'data-count="paused">1<' in mail
    assert "paused</span>" in mail  # the queue's own pause
    assert re.search(r'data-label="Oldest queued">[\d.]+(ms|s)<', mail)
    assert 'data-total="failed">1<' in page


async def test_the_overview_polls_a_fragment_of_live_counts_without_a_full_reload(
    client: httpx.AsyncClient, tasks: SimpleNamespace
):
    page = (await client.get("/")).text
    assert 'hx-get="/live"' in page
    assert 'hx-trigger="every 2s"' in page
    assert '<script src="/static/htmx.min.js"' in page
    await tasks.ok.enqueue(1)

    fragment = await client.get("/live")

    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert 'data-count="queued">1<' in _row(fragment.text, "data-queue", "default")


async def test_the_vendored_htmx_and_the_stylesheet_are_served(client: httpx.AsyncClient):
    script = await client.get("/static/htmx.min.js")
    assert script.status_code == 200
    assert "htmx" in script.text[:200]
    assert (await client.get("/static/dashboard.css")).status_code == 200


async def test_every_page_has_a_phone_viewport_and_responsive_css(client: httpx.AsyncClient):
    for path in ("/", "/jobs", "/queues", "/schedules", "/workflows"):
        page = await client.get(path)
        assert page.status_code == 200, path
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text
    css = (await client.get("/static/dashboard.css")).text
    assert "@media (max-width: 700px)" in css


async def test_the_job_list_filters_by_status_queue_and_task(
    client: httpx.AsyncClient, tasks: SimpleNamespace, work
):
    done = await tasks.ok.enqueue(1)
    failed = await tasks.boom.enqueue("x")
    await work()
    mail = await tasks.ok.enqueue(2, queue="mail")

    assert _ids((await client.get("/jobs?status=failed")).text) == [failed.id]
    assert _ids((await client.get("/jobs?queue=mail")).text) == [mail.id]
    assert _ids((await client.get("/jobs?task=app.ok")).text) == [mail.id, done.id]
    assert _ids((await client.get("/jobs?task=app.ok&status=succeeded")).text) == [done.id]
    assert (await client.get("/jobs?status=nonsense")).status_code == 400


async def test_finding_a_job_by_id_opens_its_page(client: httpx.AsyncClient, tasks):
    job = await tasks.ok.enqueue(1)

    found = await client.get(f"/jobs?q={job.id}")

    assert found.status_code == 303
    assert found.headers["location"] == f"/jobs/{job.id}"


async def test_finding_jobs_by_idempotency_key_or_request_id(client: httpx.AsyncClient, tasks):
    keyed = await tasks.ok.enqueue(1, idempotency_key="order-77")
    with request_context("req-abc"):
        first = await tasks.ok.enqueue(2)
        second = await tasks.boom.enqueue("y")
    await tasks.ok.enqueue(3)

    assert _ids((await client.get("/jobs?q=order-77")).text) == [keyed.id]
    assert _ids((await client.get("/jobs?q=req-abc")).text) == [second.id, first.id]
    assert _ids((await client.get("/jobs?q=nothing-like-it")).text) == []


async def test_the_job_list_pages_by_keyset_newest_first(
    client: httpx.AsyncClient, runner: TaskRunner, tasks
):
    jobs = await runner.enqueue_many(tasks.ok, [(n,) for n in range(60)])
    newest_first = sorted((j.id for j in jobs), reverse=True)

    first = (await client.get("/jobs?task=app.ok")).text
    assert _ids(first) == newest_first[:50]
    older = re.search(r'<a rel="next" href="([^"]+)"', first)
    assert older, "no link to the older page"
    assert f"before={newest_first[49]}" in older.group(1)

    second = (await client.get(older.group(1).replace("&amp;", "&"))).text
    assert _ids(second) == newest_first[50:]
    assert 'rel="next"' not in second


async def test_a_job_page_shows_arguments_result_error_attempts_times_and_request_id(
    client: httpx.AsyncClient, runner: TaskRunner, tasks, work
):
    with request_context("req-page"):
        done = await tasks.ok.enqueue(21)
        failed = await tasks.boom.enqueue("broken")
    await work()

    page = (await client.get(f"/jobs/{done.id}")).text
    assert 'id="args">[\n  21\n]<' in page
    assert 'id="result">42<' in page
    assert "req-page" in page
    assert "1 of 1" in page  # attempts
    finished = (await runner.get_job(done.id)).finished_at
    assert finished.strftime("%Y-%m-%d %H:%M:%S UTC") in page

    failure = (await client.get(f"/jobs/{failed.id}")).text
    assert "boom: broken" in failure
    assert 'data-action="Retry"' in failure
    assert (await client.get("/jobs/987654321")).status_code == 404


async def test_the_queues_page_lists_settings_and_the_schedules_page_lists_schedules(
    client: httpx.AsyncClient, runner: TaskRunner, tasks
):
    await runner.configure_queue("mail", concurrency=3)
    await runner.add_schedule("nightly", tasks.ok, every=timedelta(hours=1), args=[5])

    queues = (await client.get("/queues")).text
    assert '<td data-label="Concurrency">3</td>' in _row(queues, "data-queue", "mail")
    schedules = (await client.get("/schedules")).text
    assert "app.ok" in _row(schedules, "data-schedule", "nightly")
    assert 'data-action="Run now"' in schedules


async def test_the_workflows_page_answers_whether_or_not_workflows_exist(
    client: httpx.AsyncClient, runner: TaskRunner
):
    page = await client.get("/workflows")
    assert page.status_code == 200
    if not hasattr(runner, "get_workflow"):
        assert "no workflows to list" in page.text


async def test_mounted_under_a_path_its_links_forms_and_redirects_stay_under_it(
    runner: TaskRunner, tasks, client_for, token, work
):
    failed = await tasks.boom.enqueue("x")
    await work()
    outer = Starlette(routes=[Mount("/admin/jobs", app=create_app(runner))])

    async with await client_for(outer) as client:
        page = (await client.get(f"/admin/jobs/jobs/{failed.id}")).text
        assert 'href="/admin/jobs/static/dashboard.css"' in page
        assert f'action="/admin/jobs/jobs/{failed.id}/retry"' in page
        answer = await client.post(
            f"/admin/jobs/jobs/{failed.id}/retry",
            data={"csrf_token": await token(client, "/admin/jobs/")},
        )

    assert answer.status_code == 303
    assert answer.headers["location"].startswith(f"/admin/jobs/jobs/{failed.id}?")
    assert (await runner.get_job(failed.id)).status.value == "queued"
