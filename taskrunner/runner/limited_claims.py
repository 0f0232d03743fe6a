"""The worker's claims of limited queues (concurrency or rate), beside its ordinary claim.

The ordinary claim leaves paused and limited queues out, whatever this worker believes;
this part only learns, every poll interval, which queues are limited, and claims from
them through the database's `claim_limited`, which holds each queue's lock while it
counts. A stale list costs at most a poll interval of delay, never a broken limit.

A slot is free once its handler has ended: the next claim of the queue names the
leases of this worker's jobs that ended since (their outcomes may still be on their way
to the database), so a limited queue does not wait one ack per job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from taskrunner.queue import AckResult, JobRow, Lease
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
        # Jobs claimed here that hold a slot as far as the database knows: by job id, the
        # queue and lease. Those whose handler ended wait in _ended for the next claim.
        self._held: dict[int, tuple[str, Lease]] = {}
        self._ended: dict[str, dict[int, Lease]] = {}
        self._ordinary_dry_until = float("-inf")
        self._controls: QueueControls | None = None  # over the claim connection of the time

    def ordinary_due(self) -> bool:
        """Whether the ordinary claim should run now. While this worker serves limited
        queues it wakes at every handler's end; the ordinary claim, once it found its
        queues dry, waits for a notification of new jobs or the poll interval, as an
        idle worker does, instead of costing a round trip per wake-up."""
        return time.monotonic() >= self._ordinary_dry_until

    def ordinary_claimed(self, ran_dry: bool) -> None:
        """The ordinary claim got fewer jobs than it asked for (`ran_dry`), or jobs
        were announced and it should run at the next wake-up."""
        if ran_dry and self.names:
            self._ordinary_dry_until = time.monotonic() + self.refresh_every
        else:
            self._ordinary_dry_until = float("-inf")

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
        controls = self._controls
        if controls is None or controls.db is not db:  # first claim, or a new connection
            controls = self._controls = QueueControls(db, self.schema)
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
            ended = self._ended.get(name, {})
            told = list(ended.values())
            rows = await controls.claim_limited(
                name, tasks, limit=limit - len(claimed), owner=owner, lease=lease, ended=told
            )
            for done in told:  # the database has let their slots go
                ended.pop(done.job_id, None)
                self._held.pop(done.job_id, None)
            for row in rows:
                if row.status == "running":
                    claimed.append(row)
                    self._held[row.id] = (name, row.lease)
                else:
                    log.error(
                        "job %s failed without running: %s",
                        row.id,
                        row.last_error,
                        extra={"job_id": row.id, "task": row.task, "request_id": row.request_id},
                    )
        return claimed

    def ended(self, job_id: int) -> bool:
        """A handler of this worker ended: whether it held a slot of a limited queue
        (free now, so worth claiming into at once)."""
        held = self._held.get(job_id)
        if held is None:
            return False
        queue, lease = held
        self._ended.setdefault(queue, {})[job_id] = lease
        return True

    def written(self, result: AckResult) -> bool:
        """Outcomes were written (or found lost): whether one of those jobs still held a
        slot of a limited queue (free now)."""
        if not self._held:
            return False
        freed = False
        for job_id in [*result.applied, *(lease.job_id for lease in result.lost)]:
            held = self._held.pop(job_id, None)
            if held is not None:
                freed = True
                self._ended.get(held[0], {}).pop(job_id, None)
        return freed
