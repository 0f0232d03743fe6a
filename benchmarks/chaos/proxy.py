"""A TCP proxy between the workers and the server that can black-hole a worker's traffic.

Run as its own process (`python -m benchmarks.chaos.proxy --upstream-port P --listeners
N`): it opens N listening ports on 127.0.0.1, one per worker slot, prints them as one
JSON line, then reads commands from stdin, one a line:

    block I    stop forwarding anything on listener I, in both directions, without
               closing a connection (bytes read are held; new connections are accepted
               and held without an upstream): a network partition or a half-open link
    heal I     forward again (held bytes first)
    quit       close everything and exit

Every command is answered with `ok` once it has taken effect. When stdin closes, the
proxy exits, so it never outlives the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys


class Listener:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.open = asyncio.Event()
        self.open.set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        up_writer: asyncio.StreamWriter | None = None
        try:
            await self.open.wait()
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            await asyncio.gather(self.pump(reader, up_writer), self.pump(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self.tasks.discard(task)
            for w in (writer, up_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if not self.open.is_set():
                    await self.open.wait()
                writer.write(data)
                await writer.drain()
        finally:
            # One side ended: end the other, as a real connection would, but not through
            # a partition (a FIN would not cross it either).
            await self.open.wait()
            with contextlib.suppress(Exception):
                writer.close()


async def main(upstream_port: int, count: int) -> None:
    listeners = [Listener(("127.0.0.1", upstream_port)) for _ in range(count)]
    ports = [await listener.start() for listener in listeners]
    print(json.dumps({"ports": ports}), flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while True:
        line = (await stdin.readline()).decode().split()
        if not line or line[0] == "quit":
            break
        verb, index = line[0], int(line[1])
        if verb == "block":
            listeners[index].open.clear()
        elif verb == "heal":
            listeners[index].open.set()
        print("ok", flush=True)
    for listener in listeners:
        if listener.server is not None:
            listener.server.close()
        for task in list(listener.tasks):
            task.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--listeners", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.upstream_port, args.listeners))
