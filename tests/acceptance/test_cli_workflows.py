"""`taskrunner workflow show|cancel|retry ID`, run for real against a schema of the
test's own (given by --dsn and --schema: no app needed)."""

from __future__ import annotations

import json

import pytest
from acceptance_helpers import environment, run_cli

from taskrunner import TaskRunner, chain, chord


@pytest.fixture
async def tr(pg_dsn: str, schema: str):
    async with TaskRunner(pg_dsn, schema=schema) as runner:
        yield runner


@pytest.fixture
def cli(pg_dsn: str, schema: str):
    env = environment(pg_dsn)

    async def run(*args: str):
        return await run_cli("workflow", *args, "--dsn", pg_dsn, "--schema", schema, env=env)

    return run


def define(runner: TaskRunner):
    @runner.task(name="cli.fetch")
    async def fetch(url: str) -> str:
        return url

    @runner.task(name="cli.size")
    async def size(text: str, factor: int = 1) -> int:
        return len(text) * factor

    @runner.task(name="cli.publish")
    async def publish(sizes: list[int]) -> int:
        return sum(sizes)

    return chain(fetch.s("u"), chord([size.s(factor=2), size.s(factor=3)], publish.s()))


async def test_show_prints_the_steps_as_a_tree_with_their_statuses(tr: TaskRunner, cli):
    wf = await tr.enqueue_workflow(define(tr))
    shown = await cli("show", str(wf.id))
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"workflow {wf.id} [running]")
    assert lines[1] == "chain"
    assert f"#{wf.job_ids[0]} cli.fetch [queued]" in lines[2]
    assert "chord" in lines[3]
    assert any(f"#{wf.job_ids[3]} cli.publish [waiting]" in line for line in lines)
    assert any("body: " in line for line in lines)


async def test_show_as_json_lists_the_steps(tr: TaskRunner, cli):
    wf = await tr.enqueue_workflow(define(tr))
    shown = await cli("show", str(wf.id), "--json")
    assert shown.code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert [s["status"] for s in data["steps"]] == ["queued", "waiting", "waiting", "waiting"]


async def test_cancel_then_retry_act_on_the_steps_and_say_how_many(tr: TaskRunner, cli):
    wf = await tr.enqueue_workflow(define(tr))
    cancelled = await cli("cancel", str(wf.id))
    assert cancelled.code == 0, cancelled.stderr
    assert "4 steps" in cancelled.stdout
    again = await cli("cancel", str(wf.id))
    assert again.code == 1
    retried = await cli("retry", str(wf.id))
    assert retried.code == 0, retried.stderr
    assert "4 steps queued again" in retried.stdout
    assert (await tr.get_workflow(wf.id)).status == "running"  # type: ignore[union-attr]


async def test_an_unknown_workflow_is_exit_code_1(tr: TaskRunner, cli):
    for action in ("show", "cancel", "retry"):
        missing = await cli(action, "999999")
        assert missing.code == 1
        assert "no workflow with id 999999" in missing.stderr
