"""Workflows: chain, group and chord, moved along by PostgreSQL itself.

    python examples/workflows.py

An import: fetch a page, parse it, make two thumbnails in parallel, then publish once
both are done. Each box is a job; a step waits (status "waiting") until every step
before it succeeded, and the acknowledgement of its last parent queues it, in the same
transaction. No process watches the workflow: a worker may die at any moment and the
workflow goes on when any worker runs again.

    fetch ── parse ──┬── thumb(64) ──┬── publish
                     └── thumb(256) ─┘

The failure rule: when a step fails for good, every step that depends on it ends
cancelled (its last_error names the failed step), the others go on, and the workflow
ends failed. `retry_workflow` queues the failed and cancelled steps again.
"""

from __future__ import annotations

import asyncio
import uuid

from taskrunner import PermanentFailure, TaskRunner, chain, chord

runner = TaskRunner(schema="taskrunner_workflows_example")
broken_thumbnails = {256}  # the 256 px thumbnail fails until we "fix" it


@runner.task
async def fetch(url: str) -> str:
    return f"<html>{url}</html>"


@runner.task
async def parse(page: str) -> dict[str, str]:
    return {"title": page.removeprefix("<html>").removesuffix("</html>")}


@runner.task(max_attempts=1)
async def thumb(doc: dict[str, str], size: int) -> str:
    if size in broken_thumbnails:
        raise PermanentFailure(f"no converter for {size} px")
    return f"{doc['title']}@{size}px"


@runner.task
async def publish(thumbnails: list[str]) -> str:
    return "published " + ", ".join(thumbnails)


async def work() -> None:
    await runner.run_worker(stop_when_idle=True, poll_interval=0.05, handle_signals=False)


async def main() -> None:
    async with runner:
        await runner.job_queue.clear()
        canvas = chain(
            fetch.s("example.org/a"),
            parse.s(),
            chord([thumb.s(size=s) for s in (64, 256)], publish.s()),
        )
        key = f"import-{uuid.uuid4().hex[:8]}"
        wf = await runner.enqueue_workflow(canvas, idempotency_key=key)
        again = await runner.enqueue_workflow(canvas, idempotency_key=key)
        print(
            f"workflow {wf.id}: {len(wf.job_ids)} steps, same key again -> "
            f"workflow {again.id}, deduplicated={again.deduplicated}"
        )

        await work()
        done = await runner.wait_workflow(wf.id, timeout=30)
        print(f"first run: {done.status}")
        for job_id in done.job_ids:
            job = await runner.get_job(job_id)
            assert job is not None
            error = (job.last_error or "").splitlines()[:1]
            print(f"  {job.task.rsplit('.', 1)[-1]:8} {job.status:10} {''.join(error)}")

        broken_thumbnails.clear()
        print(f"retry_workflow queued {await runner.retry_workflow(wf.id)} steps again")
        await work()
        print(f"second run: {(await runner.wait_workflow(wf.id, timeout=30)).status}")
        print(f"result: {await runner.workflow_result(wf.id)}")


if __name__ == "__main__":
    asyncio.run(main())
