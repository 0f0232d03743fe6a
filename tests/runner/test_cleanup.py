"""runner.cleanup(): keep / remove / archive / rerun per status, ages, refusals, the
archive as get_job and list_jobs see it, and idempotency keys freed by it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from taskrunner import Cleanup, InvalidArguments, JobStatus, TaskRunner

FINISHED = ("succeeded", "failed", "cancelled")
HOUR = 3600.0


async def make_job(
    runner: TaskRunner,
    status: str,
    *,
    age: float = HOUR,
    created_age: float | None = None,
    key: str | None = None,
    lease_expired: bool = True,
) -> int:
    """A job of `status`, aged `age` seconds by the clock cleanup reads for that status
    (finished_at, created_at for queued and paused, started_at for running)."""
    created = created_age if created_age is not None else age
    finished = status in FINISHED
    job_id: int = await runner.job_queue.db.fetchval(
        f'INSERT INTO "{runner.schema}".jobs (task, status, attempts, created_at, '
        "started_at, finished_at, lease_id, lease_owner, lease_expires_at, "
        "idempotency_key, fingerprint, result) "
        f"SELECT 't', $1::text::\"{runner.schema}\".job_status, "
        "CASE WHEN $1::text IN ('queued', 'paused') THEN 0 ELSE 2 END, "
        "now() - make_interval(secs => $3::float8), "
        "CASE WHEN $1 NOT IN ('queued', 'paused') "
        "THEN now() - make_interval(secs => $2::float8) END, "
        "CASE WHEN $5::boolean THEN now() - make_interval(secs => $2::float8) END, "
        "CASE WHEN $1 = 'running' THEN 1 END, CASE WHEN $1 = 'running' THEN 'w' END, "
        "CASE WHEN $1 = 'running' THEN now() + CASE WHEN $6::boolean THEN interval '-1 minute' "
        "ELSE interval '1 minute' END END, $4::text, CASE WHEN $4::text IS NOT NULL THEN 'fp' END, "
        "CASE WHEN $1 = 'succeeded' THEN '42'::jsonb END "
        "RETURNING id",
        status,
        age,
        created,
        key,
        finished,
        lease_expired,
    )
    return job_id


async def archive(runner: TaskRunner, status: str = "succeeded", **options: object) -> int:
    job_id = await make_job(runner, status, **options)  # type: ignore[arg-type]
    await runner.cleanup(**{status: "archive"})  # type: ignore[arg-type]
    return job_id


# ---- each action per status ---------------------------------------------------------


@pytest.mark.parametrize("status", ["queued", "paused", *FINISHED])
async def test_remove_deletes_the_old_jobs_of_its_status_only(runner: TaskRunner, status: str):
    old = await make_job(runner, status)
    other = await make_job(runner, "failed" if status != "failed" else "succeeded")

    counts = await runner.cleanup(**{status: "remove"})  # type: ignore[arg-type]

    assert counts[status] == 1
    assert await runner.get_job(old) is None
    assert await runner.get_job(other) is not None


async def test_remove_on_archived_deletes_archived_jobs(runner: TaskRunner):
    archived = await archive(runner)

    counts = await runner.cleanup(archived="remove")

    assert counts["archived"] == 1
    assert await runner.get_job(archived) is None
    assert await runner.list_jobs(archived=True) == []


@pytest.mark.parametrize("status", FINISHED)
async def test_archive_moves_finished_jobs_out_of_the_jobs_table(runner: TaskRunner, status: str):
    job_id = await make_job(runner, status)

    counts = await runner.cleanup(**{status: "archive"})  # type: ignore[arg-type]

    assert counts[status] == 1
    assert await runner.list_jobs() == []
    assert [j.id for j in await runner.list_jobs(archived=True)] == [job_id]


@pytest.mark.parametrize("status", ["paused", *FINISHED])
async def test_rerun_puts_jobs_back_to_queued_with_attempts_reset(runner: TaskRunner, status: str):
    job_id = await make_job(runner, status)

    counts = await runner.cleanup(**{status: "rerun"})  # type: ignore[arg-type]

    job = await runner.get_job(job_id)
    assert counts[status] == 1
    assert job is not None
    assert (job.status, job.attempts, job.finished_at, job.result) == (
        JobStatus.QUEUED,
        0,
        None,
        None,
    )


async def test_rerun_on_running_touches_only_jobs_whose_lease_has_run_out(runner: TaskRunner):
    gone = await make_job(runner, "running", lease_expired=True)
    alive = await make_job(runner, "running", lease_expired=False)

    counts = await runner.cleanup(running="rerun")

    assert counts["running"] == 1
    assert (await runner.get_job(gone)).status is JobStatus.QUEUED  # type: ignore[union-attr]
    assert (await runner.get_job(alive)).status is JobStatus.RUNNING  # type: ignore[union-attr]


async def test_keep_is_the_default_and_acts_on_nothing(runner: TaskRunner):
    ids = [await make_job(runner, s) for s in ("queued", "paused", "running", *FINISHED)]

    counts = await runner.cleanup()

    assert set(counts.values()) == {0}
    assert set(counts) == {"queued", "paused", "running", *FINISHED, "archived"}
    assert sorted(j.id for j in await runner.list_jobs()) == sorted(ids)


# ---- ages ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", FINISHED)
async def test_the_age_of_a_finished_job_is_the_time_since_it_finished(
    runner: TaskRunner, status: str
):
    recent = await make_job(runner, status, age=60, created_age=10 * HOUR)
    old = await make_job(runner, status, age=2 * HOUR)

    counts = await runner.cleanup(**{status: "remove"}, older_than=timedelta(hours=1))  # type: ignore[arg-type]

    assert counts[status] == 1
    assert await runner.get_job(old) is None
    assert await runner.get_job(recent) is not None


@pytest.mark.parametrize("status", ["queued", "paused"])
async def test_the_age_of_a_queued_or_paused_job_is_the_time_since_it_was_created(
    runner: TaskRunner, status: str
):
    recent = await make_job(runner, status, age=60)
    old = await make_job(runner, status, age=2 * HOUR)

    counts = await runner.cleanup(**{status: "remove"}, older_than=HOUR)  # type: ignore[arg-type]

    assert counts[status] == 1
    assert await runner.get_job(old) is None
    assert await runner.get_job(recent) is not None


async def test_the_age_of_a_running_job_is_the_time_since_it_started(runner: TaskRunner):
    recent = await make_job(runner, "running", age=60, created_age=10 * HOUR)
    old = await make_job(runner, "running", age=2 * HOUR)

    counts = await runner.cleanup(running="rerun", older_than=HOUR)

    assert counts["running"] == 1
    assert (await runner.get_job(old)).status is JobStatus.QUEUED  # type: ignore[union-attr]
    assert (await runner.get_job(recent)).status is JobStatus.RUNNING  # type: ignore[union-attr]


async def test_the_age_of_an_archived_job_is_the_time_since_it_finished(runner: TaskRunner):
    recent = await archive(runner, age=60)
    old = await archive(runner, age=2 * HOUR)

    counts = await runner.cleanup(archived="remove", older_than=HOUR)

    assert counts["archived"] == 1
    assert [j.id for j in await runner.list_jobs(archived=True)] == [recent]
    assert await runner.get_job(old) is None


async def test_a_cleanup_object_gives_its_status_an_age_of_its_own(runner: TaskRunner):
    failed_day_old = await make_job(runner, "failed", age=26 * HOUR)
    failed_hour_old = await make_job(runner, "failed", age=2 * HOUR)
    succeeded_hour_old = await make_job(runner, "succeeded", age=2 * HOUR)

    counts = await runner.cleanup(
        succeeded="remove",
        failed=Cleanup("remove", older_than=timedelta(days=1)),
        older_than=timedelta(hours=1),
    )

    assert (counts["succeeded"], counts["failed"]) == (1, 1)
    assert await runner.get_job(succeeded_hour_old) is None
    assert await runner.get_job(failed_day_old) is None
    assert await runner.get_job(failed_hour_old) is not None


# ---- refusals -----------------------------------------------------------------------

NOT_ALLOWED = [
    ("queued", "archive"),
    ("queued", "rerun"),
    ("paused", "archive"),
    ("running", "remove"),
    ("running", "archive"),
    ("archived", "archive"),
    ("archived", "rerun"),
]


@pytest.mark.parametrize(("status", "action"), NOT_ALLOWED)
async def test_an_action_its_status_does_not_allow_raises_value_error_and_changes_nothing(
    runner: TaskRunner, status: str, action: str
):
    finished = await make_job(runner, "succeeded")
    before = await runner.list_jobs()

    with pytest.raises(ValueError, match=f"{status}: '{action}' is not allowed") as raised:
        await runner.cleanup(succeeded="remove", **{status: action})  # type: ignore[arg-type]

    assert isinstance(raised.value, InvalidArguments)
    assert await runner.list_jobs() == before
    assert await runner.get_job(finished) is not None


@pytest.mark.parametrize(
    "options",
    [
        {"failed": "delete"},
        {"failed": Cleanup("explode")},
        {"older_than": -1},
        {"failed": Cleanup("remove", older_than=timedelta(seconds=-5))},
        {"older_than": "7d"},
    ],
)
async def test_an_unknown_action_or_a_bad_age_raises_value_error_and_changes_nothing(
    runner: TaskRunner, options: dict[str, object]
):
    job_id = await make_job(runner, "succeeded")

    with pytest.raises(ValueError):
        await runner.cleanup(succeeded="remove", **options)  # type: ignore[arg-type]

    assert await runner.get_job(job_id) is not None


# ---- the archive --------------------------------------------------------------------


async def test_get_job_finds_an_archived_job_with_the_same_fields(runner: TaskRunner):
    job_id = await make_job(runner, "succeeded", key="k-1")
    before = await runner.get_job(job_id)

    await runner.cleanup(succeeded="archive")

    assert await runner.get_job(job_id) == before


async def test_list_jobs_lists_archived_jobs_only_when_asked_with_its_filters(runner: TaskRunner):
    done = await archive(runner, "succeeded")
    failed = await archive(runner, "failed")
    live = await make_job(runner, "succeeded")

    assert [j.id for j in await runner.list_jobs()] == [live]
    assert [j.id for j in await runner.list_jobs(archived=True)] == [failed, done]
    assert [j.id for j in await runner.list_jobs(archived=True, status="failed")] == [failed]


async def test_no_claim_takes_an_archived_job_even_after_its_status_says_queued(
    runner: TaskRunner,
):
    job_id = await archive(runner)
    # Even a row edited by hand to look runnable stays out of every claim.
    await runner.job_queue.db.execute(
        f"UPDATE \"{runner.schema}\".archived_jobs SET status = 'queued', finished_at = NULL"
    )

    claimed = await runner.job_queue.claim(["t"], limit=10, owner="w")

    assert claimed == []
    assert (await runner.get_job(job_id)).status is JobStatus.QUEUED  # type: ignore[union-attr]


async def test_the_archive_table_has_every_column_of_the_jobs_table(runner: TaskRunner):
    query = (
        "SELECT array_agg(column_name::text ORDER BY column_name) FROM "
        "information_schema.columns WHERE table_schema = $1 AND table_name = $2"
    )
    jobs = await runner.job_queue.db.fetchval(query, runner.schema, "jobs")
    archived = await runner.job_queue.db.fetchval(query, runner.schema, "archived_jobs")

    assert set(archived) - set(jobs) == {"archived_at"}
    assert set(jobs) <= set(archived)


# ---- idempotency keys ---------------------------------------------------------------


@pytest.mark.parametrize("action", ["remove", "archive"])
async def test_removing_or_archiving_a_keyed_job_frees_its_key(runner: TaskRunner, action: str):
    @runner.task(name="t")
    async def handler(n: int) -> None: ...

    first = await handler.enqueue(1, idempotency_key="order-1")
    await runner.cancel(first.id)

    counts = await runner.cleanup(cancelled=action)  # type: ignore[arg-type]
    again = await handler.enqueue(1, idempotency_key="order-1")

    assert counts["cancelled"] == 1
    assert not again.deduplicated
    assert again.id != first.id


async def test_a_kept_keyed_job_still_deduplicates(runner: TaskRunner):
    @runner.task(name="t")
    async def handler(n: int) -> None: ...

    first = await handler.enqueue(1, idempotency_key="order-1")
    await runner.cancel(first.id)
    await runner.cleanup(cancelled=Cleanup("remove", older_than=timedelta(hours=1)))

    again = await handler.enqueue(1, idempotency_key="order-1")

    assert again.deduplicated
    assert again.id == first.id


# ---- dry run, batches ---------------------------------------------------------------


async def test_a_dry_run_counts_what_it_would_do_and_changes_nothing(runner: TaskRunner):
    for status in ("succeeded", "succeeded", "failed", "running"):
        await make_job(runner, status)
    await make_job(runner, "running", lease_expired=False)
    before = await runner.list_jobs()

    counts = await runner.cleanup(
        succeeded="remove", failed="archive", running="rerun", dry_run=True
    )

    assert (counts["succeeded"], counts["failed"], counts["running"]) == (2, 1, 1)
    assert await runner.list_jobs() == before
    assert await runner.list_jobs(archived=True) == []


async def test_removal_goes_in_batches_and_reports_progress_after_each(runner: TaskRunner):
    await runner.job_queue.db.execute(
        f'INSERT INTO "{runner.schema}".jobs (task, status, finished_at) '
        "SELECT 't', 'succeeded', now() - interval '1 hour' FROM generate_series(1, 25)"
    )
    seen: list[tuple[str, int, int]] = []

    counts = await runner.cleanup(
        succeeded="remove", batch_size=10, progress=lambda *p: seen.append(p)
    )

    assert counts["succeeded"] == 25
    assert seen == [("succeeded", 1, 10), ("succeeded", 2, 20), ("succeeded", 3, 25)]


async def test_a_cleanup_with_a_duty_cycle_rests_between_batches_and_still_does_everything(
    runner: TaskRunner,
):
    await runner.job_queue.db.execute(
        f'INSERT INTO "{runner.schema}".jobs (task, status, finished_at) '
        "SELECT 't', 'succeeded', now() - interval '1 hour' FROM generate_series(1, 30)"
    )

    counts = await runner.cleanup(succeeded="remove", batch_size=10, duty_cycle=0.5)

    assert counts["succeeded"] == 30
    assert await runner.list_jobs() == []


@pytest.mark.parametrize("duty_cycle", [0, -0.5, 1.5, float("nan"), "half", True])
async def test_a_duty_cycle_outside_zero_to_one_is_refused(runner: TaskRunner, duty_cycle: object):
    with pytest.raises(InvalidArguments, match="duty_cycle"):
        await runner.cleanup(succeeded="remove", duty_cycle=duty_cycle)  # type: ignore[arg-type]


async def test_a_cleanup_measures_ages_from_when_it_started_so_it_ends(runner: TaskRunner):
    # Rerun jobs are queued again, and any that finish again are younger than the
    # cleanup: a second pass over them is impossible.
    job_id = await make_job(runner, "failed")

    counts = await runner.cleanup(failed="rerun", batch_size=1)

    assert counts["failed"] == 1
    assert (await runner.get_job(job_id)).status is JobStatus.QUEUED  # type: ignore[union-attr]
