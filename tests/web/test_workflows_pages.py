"""The dashboard's workflows: the list (newest first, by status), a workflow's page with
its shape and steps, a step's link to its workflow, and retrying or cancelling one."""

from __future__ import annotations

import re
from types import SimpleNamespace

import httpx

from taskrunner import JobStatus, TaskRunner, chain, group


def _workflow_ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-workflow-id="(\d+)">', page)]


async def test_the_workflows_page_lists_workflows_newest_first_and_filters_by_status(
    client: httpx.AsyncClient, runner: TaskRunner, tasks: SimpleNamespace, work
):
    good = await runner.enqueue_workflow(chain(tasks.ok.s(1), tasks.ok.s()))
    bad = await runner.enqueue_workflow(chain(tasks.boom.s("x"), tasks.ok.s()))
    await work()

    assert _workflow_ids((await client.get("/workflows")).text) == [bad.id, good.id]
    assert _workflow_ids((await client.get("/workflows?status=failed")).text) == [bad.id]
    assert _workflow_ids((await client.get("/workflows?status=succeeded")).text) == [good.id]
    assert (await client.get("/workflows?status=nonsense")).status_code == 400


async def test_a_workflow_page_shows_its_shape_and_steps_and_a_step_links_to_it(
    client: httpx.AsyncClient, runner: TaskRunner, tasks, work
):
    workflow = await runner.enqueue_workflow(
        chain(tasks.ok.s(1), group(tasks.ok.si(2), tasks.boom.si("late")))
    )
    await work()

    page = (await client.get(f"/workflows/{workflow.id}")).text
    assert 'class="canvas canvas-chain"' in page
    assert 'class="canvas canvas-group"' in page
    for step in workflow.job_ids:
        assert f'data-step="{step}"' in page
    assert "boom: late" in page
    step_page = (await client.get(f"/jobs/{workflow.job_ids[0]}")).text
    assert f'href="/workflows/{workflow.id}"' in step_page
    assert (await client.get("/workflows/987654")).status_code == 404


async def test_retrying_a_failed_workflow_from_its_page(
    client: httpx.AsyncClient, runner: TaskRunner, tasks, token, work
):
    workflow = await runner.enqueue_workflow(chain(tasks.flaky.s("wf"), tasks.ok.si(4)))
    await work()
    assert (await runner.get_workflow(workflow.id)).status == "failed"

    answer = await client.post(
        f"/workflows/{workflow.id}/retry", data={"csrf_token": await token(client)}
    )
    await work()

    assert answer.status_code == 303
    assert (await runner.get_workflow(workflow.id)).status == "succeeded"


async def test_cancelling_a_running_workflow_from_its_page(
    client: httpx.AsyncClient, runner: TaskRunner, tasks, token
):
    workflow = await runner.enqueue_workflow(chain(tasks.ok.s(1), tasks.ok.s()))

    await client.post(f"/workflows/{workflow.id}/cancel", data={"csrf_token": await token(client)})

    steps = [await runner.get_job(i) for i in workflow.job_ids]
    assert {s.status for s in steps} == {JobStatus.CANCELLED}
