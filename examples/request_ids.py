"""Request ids: follow one request through every job it causes, in the logs.

    python examples/request_ids.py

Every job carries a request id:

* inside `with request_context("req-..."):` a job gets that id;
* inside a handler the running job's id is the current one, so jobs a handler enqueues
  inherit it (and keep it through retries);
* an explicit `enqueue(..., request_id=...)` wins over both;
* otherwise a new id is generated.

The runner's own log records about a job carry `job_id`, `task` and `request_id` as
record attributes. A small `logging.Filter` on the handler fills in `request_id` for
every other record (your app's, or the runner's records about no particular job) from
`taskrunner.current_request_id()`, so a single format string works for all of them:

    %(levelname)s [%(request_id)s] %(message)s

Grep your logs for one request id and you see the web request and every job after it.
"""

from __future__ import annotations

import asyncio
import logging
import sys

from taskrunner import RetryLater, TaskRunner, current_job, current_request_id, request_context

runner = TaskRunner(schema="taskrunner_request_ids_example")
log = logging.getLogger("shop")


class RequestIdFilter(logging.Filter):
    """Give records without them default `request_id` (the current one, or "-")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id() or "-"
        return True


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(RequestIdFilter())  # on the handler: it sees records of every logger
    handler.setFormatter(logging.Formatter("%(levelname)-7s [%(request_id)s] %(message)s"))
    logging.getLogger().addHandler(handler)  # the root logger: WARNING and up from anyone
    log.setLevel(logging.INFO)  # this app's logger
    logging.getLogger("taskrunner").setLevel(logging.DEBUG)  # show "job N started" too


# --- tasks: place_order -> charge_card (retried once) + send_receipt -------------------


@runner.task
async def place_order(order_id: int) -> str:
    log.info("placing order %d", order_id)
    await charge_card.enqueue(order_id, 4999)  # inherits this job's request id
    await send_receipt.enqueue(order_id)
    return "placed"


@runner.task
async def charge_card(order_id: int, amount_cents: int) -> str:
    job = current_job()
    assert job is not None
    if job.attempt == 1:
        log.info("payment provider busy for order %d; asking for a retry", order_id)
        raise RetryLater(0.1)
    log.info("charged %d cents for order %d (attempt %d)", amount_cents, order_id, job.attempt)
    return "charged"


@runner.task
def send_receipt(order_id: int) -> str:
    """A thread task: the request id is visible here too."""
    log.info(
        "receipt for order %d sent (request id seen in the thread: %s)",
        order_id,
        current_request_id(),
    )
    return "sent"


async def run_until_done() -> None:
    """Run a worker until nothing is queued or running (a retry waits 0.1 s, and an idle
    worker with stop_when_idle=True does not wait for it, so go round again)."""
    while True:
        await runner.run_worker(concurrency=4, stop_when_idle=True, poll_interval=0.1)
        totals = (await runner.stats()).totals
        if not totals["queued"] and not totals["running"]:
            return
        await asyncio.sleep(0.1)


async def main() -> None:
    async with runner:
        await runner.job_queue.clear()

        print("--- the web request ---")
        with request_context("req-checkout-7"):
            log.info("POST /checkout")
            order = await place_order.enqueue(7)
            log.info("enqueued job %d (request_id=%s)", order.id, order.request_id)
        other = await place_order.enqueue(8, request_id="req-explicit")  # explicit wins
        plain = await place_order.enqueue(9)  # no context: a new id is generated
        log.info(
            "order 8 -> request_id=%s; order 9 (no context) -> request_id=%s",
            other.request_id,
            plain.request_id,
        )

        print("--- the worker ---")
        await run_until_done()

        print("--- the jobs ---")
        jobs = sorted(await runner.list_jobs(limit=100), key=lambda j: j.id)
        for j in jobs:
            print(
                f"  job {j.id:>3}  {j.task:<26} attempts={j.attempts}  "
                f"status={j.status:<9}  request_id={j.request_id}"
            )
        chain = [j for j in jobs if j.request_id == "req-checkout-7"]
        print(
            f"{len(chain)} jobs carry request id 'req-checkout-7': "
            + ", ".join(j.task.rsplit(".", 1)[-1] for j in chain)
        )
        assert {j.task.rsplit(".", 1)[-1] for j in chain} == {
            "place_order",
            "charge_card",
            "send_receipt",
        }


if __name__ == "__main__":
    setup_logging()
    asyncio.run(main())
