"""Property-testing your own workflow with Hypothesis and `taskrunner.testing`.

    python -m pytest examples/test_workflow_properties.py

The database is $TASKRUNNER_TEST_DSN (or `--taskrunner-dsn`, or the ini option
`taskrunner_dsn`), else the runner's own ($TASKRUNNER_DSN, $DATABASE_URL, embedded).

The application below checks an order out with a workflow: every line of the order is
priced in parallel (a chord), the total is charged to the card, then a receipt is sent,
which asks the warehouse to ship. The properties say, for any order Hypothesis makes up:
the customer is charged exactly the sum of the lines and the warehouse is asked once;
an order over the card's limit fails at the charge, is never receipted and never shipped.
In a real project the application part lives in your package and the tests import it.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskrunner import JobStatus, PermanentFailure, TaskRunner, chain, chord
from taskrunner.testing import assert_enqueued, assert_not_enqueued, run_until_idle

# ---- the application -------------------------------------------------------------------

runner = TaskRunner(schema="shop")
PRICES = {"apple": 30, "bread": 250, "cheese": 700}
CARD_LIMIT = 5_000


@runner.task(name="shop.price_line")
async def price_line(item: str, quantity: int) -> int:
    return PRICES[item] * quantity


@runner.task(name="shop.add_up")
async def add_up(line_totals: list[int]) -> int:
    return sum(line_totals)


@runner.task(name="shop.charge")
async def charge(amount: int, order_id: int) -> int:
    if amount > CARD_LIMIT:
        raise PermanentFailure(f"order {order_id}: {amount} is over the card's limit")
    return amount


@runner.task(name="shop.send_receipt")
async def send_receipt(charged: int, order_id: int) -> str:
    await ship.enqueue(order_id)
    return f"order {order_id}: charged {charged}"


@runner.task(name="shop.ship")
async def ship(order_id: int) -> None: ...


def checkout(order_id: int, lines: list[tuple[str, int]]) -> object:
    """The checkout workflow of one order."""
    return chain(
        chord([price_line.s(item, quantity) for item, quantity in lines], add_up.s()),
        charge.s(order_id),
        send_receipt.s(order_id),
    )


# ---- the tests -------------------------------------------------------------------------


@pytest.fixture
def taskrunner_app() -> TaskRunner:
    """Tells the plugin which runner the tasks are declared on (an ini option
    `taskrunner_app = "shop.tasks:runner"` does the same)."""
    return runner


orders = st.lists(
    st.tuples(st.sampled_from(sorted(PRICES)), st.integers(min_value=1, max_value=5)),
    min_size=1,
    max_size=6,
)
# One schema serves every example of a test (fresh_runner is made once per test), so
# each example checks out an order of its own.
order_ids = itertools.count(1)
EXAMPLES = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@EXAMPLES
@given(lines=orders)
async def test_a_checkout_charges_the_sum_of_its_lines_or_fails_at_the_charge(
    fresh_runner: TaskRunner, lines: list[tuple[str, int]]
) -> None:
    order_id = next(order_ids)
    total = sum(PRICES[item] * quantity for item, quantity in lines)
    workflow = await fresh_runner.enqueue_workflow(checkout(order_id, lines))

    ran = await run_until_idle(fresh_runner)

    done = await fresh_runner.get_workflow(workflow.id)
    assert done is not None
    charged = [job for job in ran if job.task == "shop.charge"]
    if total <= CARD_LIMIT:
        assert done.status == "succeeded"
        assert await fresh_runner.workflow_result(workflow.id) == (
            f"order {order_id}: charged {total}"
        )
        assert [job.result for job in charged] == [total]
        await assert_enqueued(fresh_runner, ship, order_id)
    else:
        assert done.status == "failed"
        assert [job.status for job in charged] == [JobStatus.FAILED]
        assert "shop.send_receipt" not in {job.task for job in ran}
        await assert_not_enqueued(fresh_runner, ship, order_id)


@EXAMPLES
@given(lines=orders)
async def test_every_line_is_priced_once_before_the_total(
    fresh_runner: TaskRunner, lines: list[tuple[str, int]]
) -> None:
    workflow = await fresh_runner.enqueue_workflow(checkout(next(order_ids), lines))
    ran = await run_until_idle(fresh_runner)
    mine = [job for job in ran if job.id in workflow.job_ids]
    priced = [job for job in mine if job.task == "shop.price_line"]
    (added,) = [job for job in mine if job.task == "shop.add_up"]
    assert len(priced) == len(lines)
    assert all(job.attempts == 1 for job in priced)
    assert added.started_at is not None
    assert all(
        job.finished_at is not None and job.finished_at <= added.started_at for job in priced
    )
    assert added.args == [[job.result for job in sorted(priced, key=lambda j: j.id)]]
