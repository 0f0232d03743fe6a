"""The taskrunner side's worker process: `runner.run_worker` under uvloop, as the CLI
runs it, stopped by SIGTERM.

    python -m benchmarks.workflows.taskrunner_worker --concurrency 16

Prints READY once the runner is open, right before the worker loop starts.
"""

from __future__ import annotations

import argparse
import logging
import sys

import uvloop

from benchmarks.workflows.taskrunner_app import runner


async def work(concurrency: int) -> None:
    async with runner:
        print("READY", flush=True)
        await runner.run_worker(concurrency=concurrency)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    uvloop.run(work(args.concurrency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
