"""The worker subprocess: one system's worker, under uvloop, recording every handler call.

    python -m benchmarks.compare.worker --system NAME --dsn DSN --out FILE
        [--concurrency 16] [--drain] [--stop-at N]

Prints ``READY`` on stdout right before the system's worker loop starts. When the loop
returns it writes FILE (JSON): the handler calls ``[seq, t_enqueued, t_started]``, the
time it printed READY and the time the loop returned.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import traceback

import uvloop

from benchmarks.compare import adapters, record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system", required=True, choices=sorted(adapters.MODULES))
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--drain", action="store_true", help="stop when the queue is empty")
    parser.add_argument("--stop-at", type=int, default=None, help="SIGTERM after N calls")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    record.RECORDER.stop_at = args.stop_at
    adapter = adapters.load(args.system, args.concurrency)

    error = None
    try:
        uvloop.run(adapter.run_worker(args.dsn, drain=args.drain))
    except BaseException as exc:  # report it in the output file, then fail
        error = "".join(traceback.format_exception(exc))
        sys.stderr.write(error)
    t_return = record.RECORDER.t_return or time.time()
    with open(args.out, "w") as f:
        json.dump(
            {
                "system": args.system,
                "calls": record.RECORDER.calls,
                "t_ready": record.RECORDER.t_ready,
                "t_return": t_return,
                "error": error,
            },
            f,
        )
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
