"""Tests of one xdist_group run in one worker process, so tests that must not overlap can
say so (tests/conftest.py makes the groups count on pytest 9.2, where xdist alone drops
them). Tests that share no group run on any worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

GROUP = "parallel-groups-check"


def _shared_folder(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A folder every worker of this session sees: the parent of a worker's basetemp."""
    basetemp = tmp_path_factory.getbasetemp()
    return basetemp if worker_id == "master" else basetemp.parent


@pytest.mark.xdist_group(GROUP)
@pytest.mark.parametrize("n", range(8))
def test_the_tests_of_one_xdist_group_all_run_in_one_worker_process(
    n: int, worker_id: str, tmp_path_factory: pytest.TempPathFactory
):
    pids = _shared_folder(tmp_path_factory, worker_id) / f"{GROUP}.pids"
    with pids.open("a") as out:  # appends of a line are atomic across processes
        out.write(f"{os.getpid()}\n")

    assert set(pids.read_text().split()) == {str(os.getpid())}
