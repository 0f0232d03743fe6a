"""The app the browser test serves and works on, in processes of their own: a shop's
tasks over the DSN and schema the test puts in the environment."""

from __future__ import annotations

import os

from taskrunner import PermanentFailure, TaskRunner

runner = TaskRunner(os.environ.get("TASKRUNNER_DSN"), schema=os.environ["BROWSER_APP_SCHEMA"])
_charged: set[int] = set()


@runner.task(name="shop.send_receipt", queue="emails")
async def send_receipt(order: int, email: str) -> dict[str, object]:
    return {"order": order, "sent_to": email}


@runner.task(name="shop.charge_card", queue="billing", max_attempts=1)
async def charge_card(order: int, amount_cents: int) -> dict[str, object]:
    """Declined the first time an order is charged in this process; fine after that."""
    if order not in _charged:
        _charged.add(order)
        raise PermanentFailure(f"card declined for order {order} (gateway timeout)")
    return {"order": order, "charged": amount_cents}


@runner.task(name="shop.build_report", queue="reports")
async def build_report(day: str) -> str:
    return f"report for {day}"
