"""Jobs written by SQL (migration 0009), run by Python workers: checked against the
task's signature before they run, and keyed like Python's."""

from __future__ import annotations

import pytest
from worker_helpers import run_until_idle

from taskrunner import IdempotencyConflict, TaskRunner


async def sql_enqueue(runner: TaskRunner, task: str, args: str = "[]", kwargs: str = "{}",
                      key: str | None = None) -> int:  # fmt: skip
    job_id: int = await runner.job_queue.db.fetchval(
        f'SELECT "{runner.schema}".enqueue($1, $2::jsonb, $3::jsonb, idempotency_key => $4)',
        task,
        args,
        kwargs,
        key,
    )
    return job_id


async def test_a_sql_job_runs_like_a_python_one(runner: TaskRunner):
    seen: list[tuple[str, str]] = []

    @runner.task(name="emails.send")
    async def send(to: str, template: str = "welcome") -> str:
        seen.append((to, template))
        return "sent"

    job_id = await sql_enqueue(runner, "emails.send", '["a@b.c"]', '{"template": "x"}')
    await run_until_idle(runner)

    assert seen == [("a@b.c", "x")]
    assert await runner.result(job_id, timeout=5) == "sent"


async def test_a_sql_job_whose_arguments_do_not_fit_fails_at_once_and_the_worker_goes_on(
    runner: TaskRunner,
):
    ran: list[int] = []

    @runner.task(name="users.welcome", max_attempts=5)
    async def welcome(user_id: int) -> None:
        ran.append(user_id)

    misfit = await sql_enqueue(runner, "users.welcome", kwargs='{"id": 7}')
    wrong_type = await sql_enqueue(runner, "users.welcome", args='["seven"]')
    fine = await sql_enqueue(runner, "users.welcome", kwargs='{"user_id": 8}')

    await run_until_idle(runner)

    assert ran == [8]
    for job_id in (misfit, wrong_type):
        job = await runner.get_job(job_id)
        assert job is not None
        assert (job.status, job.attempts) == ("failed", 1)
        assert job.last_error
    assert "id" in (await runner.get_job(misfit)).last_error  # type: ignore[union-attr,operator]
    assert "int" in (await runner.get_job(wrong_type)).last_error  # type: ignore[union-attr,operator]
    assert (await runner.get_job(fine)).status == "succeeded"  # type: ignore[union-attr]


async def test_a_sql_job_for_a_task_no_worker_knows_stays_queued_and_shows_in_stats(
    runner: TaskRunner,
):
    @runner.task(name="known")
    async def known() -> None: ...

    stranger = await sql_enqueue(runner, "nobody.knows")
    await run_until_idle(runner)

    assert (await runner.get_job(stranger)).status == "queued"  # type: ignore[union-attr]
    stats = await runner.stats()
    assert stats["default"]["queued"] == 1


async def test_a_python_enqueue_with_a_key_sql_holds_for_other_arguments_conflicts(
    runner: TaskRunner,
):
    @runner.task(name="charge")
    async def charge(order: int) -> None: ...

    held = await sql_enqueue(runner, "charge", "[1]", key="order-1")

    same = await charge.enqueue(1, idempotency_key="order-1")
    assert (same.id, same.deduplicated) == (held, True)
    with pytest.raises(IdempotencyConflict):
        await charge.enqueue(2, idempotency_key="order-1")
