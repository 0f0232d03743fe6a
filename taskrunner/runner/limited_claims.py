"""The worker's claims of limited queues (concurrency or rate), beside its ordinary claim.

The ordinary claim leaves paused and limited queues out, whatever this worker believes;
this part only learns, every poll interval, which queues are limited, and claims from
them through the database's `claim_limited`, which holds each queue's lock while it
counts. A stale list costs at most a poll interval of delay, never a broken limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from taskrunner.queue import AckResult, JobRow
from taskrunner.queue.queues import QueueControls

log = logging.getLogger("taskrunner")


class LimitedClaims:
    """Which limited queues this worker serves, and the claims from them."""

    def __init__(self, schema: str, queues: Sequence[str] | None, refresh_every: float) -> None:
        self.schema = schema
        self.served = set(queues) if queues is not None else None
        self.refresh_every = refresh_every
        self.names: list[str] = []
        self._refreshed_at = float("-inf")
        self._turn = 0
        self._held: set[int] = set()  # jobs claimed here whose outcome is not written yet

    @property
    def active(self) -> bool:
        """Whether this worker serves any limited queue (as of the last refresh)."""
        return bool(self.names)

    async def claim(
        self,
        db: Any,
        tasks: Sequence[str],
        *,
        limit: int,
        owner: str,
        lease: Mapping[str, float],
    ) -> list[JobRow]:
        """Up to `limit` jobs from the limited queues, each queue taking its turn first."""
        controls = QueueControls(db, self.schema)
        if time.monotonic() - self._refreshed_at >= self.refresh_every:
            names = await controls.limited()
            self.names = [n for n in names if self.served is None or n in self.served]
            self._refreshed_at = time.monotonic()
        if not self.names or limit <= 0:
            return []
        self._turn = (self._turn + 1) % len(self.names)
        order = self.names[self._turn :] + self.names[: self._turn]
        claimed: list[JobRow] = []
        for name in order:
            if len(claimed) >= limit:
                break
            rows = await controls.claim_limited(
                name, tasks, limit=limit - len(claimed), owner=owner, lease=lease
            )
            for row in rows:
                if row.status == "running":
                    claimed.append(row)
                    self._held.add(row.id)
                else:
                    log.error(
                        "job %s failed without running: %s",
                        row.id,
                        row.last_error,
                        extra={"job_id": row.id, "task": row.task, "request_id": row.request_id},
                    )
        return claimed

    def written(self, result: AckResult) -> bool:
        """Outcomes were written (or found lost): whether one of those jobs held a slot
        of a limited queue, free now and so worth claiming into at once."""
        if not self._held:
            return False
        done = set(result.applied).union(lease.job_id for lease in result.lost)
        freed = self._held.intersection(done)
        self._held.difference_update(done)
        return bool(freed)
