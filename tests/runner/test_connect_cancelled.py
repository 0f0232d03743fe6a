"""A connection being opened when its opener is cancelled (a worker stopping while its
LISTEN connection is still being set up) is closed, not left for the garbage collector
to find open."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from taskrunner.db import ResolvedDsn, pool


async def test_a_connect_cancelled_while_it_sets_the_connection_up_closes_the_connection(
    target: ResolvedDsn, monkeypatch: pytest.MonkeyPatch
):
    setting_up = asyncio.Event()
    opened: list[Any] = []
    init_connection = pool.init_connection

    async def slow_set_up(conn: Any) -> None:  # a set-up query on a loaded server
        opened.append(conn)
        setting_up.set()
        await asyncio.sleep(10)
        await init_connection(conn)

    monkeypatch.setattr(pool, "init_connection", slow_set_up)
    connecting = asyncio.create_task(pool.connect(target))
    await asyncio.wait_for(setting_up.wait(), 10)
    connecting.cancel()

    with pytest.raises(asyncio.CancelledError):
        await connecting
    assert opened[0].is_closed()
