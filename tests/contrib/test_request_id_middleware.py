"""taskrunner.contrib.fastapi.RequestIdMiddleware: the request's id is taskrunner's current
request id inside the endpoint, async or sync, and comes back in the response."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Response

from taskrunner import current_request_id
from taskrunner.contrib.fastapi import RequestIdMiddleware


def make_app(**options: object) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestIdMiddleware, **options)  # type: ignore[arg-type]

    @app.get("/async")
    async def in_async() -> dict[str, str | None]:
        return {"seen": current_request_id()}

    @app.get("/sync")
    def in_sync() -> dict[str, str | None]:  # run in a worker thread by Starlette
        return {"seen": current_request_id()}

    @app.get("/own-header")
    async def own_header(response: Response) -> dict[str, str]:
        response.headers["X-Request-ID"] = "set-by-the-endpoint"
        return {}

    return app


async def get(app: FastAPI, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return await client.get(path, headers=headers)


async def test_an_async_endpoint_sees_the_id_of_the_header():
    response = await get(make_app(), "/async", **{"X-Request-ID": "req-7"})
    assert response.json() == {"seen": "req-7"}
    assert response.headers["X-Request-ID"] == "req-7"


async def test_a_sync_endpoint_sees_the_id_of_the_header():
    response = await get(make_app(), "/sync", **{"X-Request-ID": "req-8"})
    assert response.json() == {"seen": "req-8"}


async def test_outside_a_request_there_is_no_request_id():
    await get(make_app(), "/async", **{"X-Request-ID": "req-9"})
    assert current_request_id() is None


async def test_a_header_too_long_for_a_job_is_replaced_by_a_new_id():
    response = await get(make_app(), "/async", **{"X-Request-ID": "x" * 201})
    seen = response.json()["seen"]
    assert seen
    assert seen != "x" * 201
    assert response.headers["X-Request-ID"] == seen


async def test_a_header_with_control_characters_is_replaced_by_a_new_id():
    response = await get(make_app(), "/async", **{"X-Request-ID": "req\x01-1"})
    assert response.json()["seen"] not in (None, "req\x01-1")


async def test_an_empty_header_is_replaced_by_a_new_id():
    response = await get(make_app(), "/async", **{"X-Request-ID": "  "})
    assert response.json()["seen"]


async def test_the_response_carries_one_request_id_the_middlewares():
    response = await get(make_app(), "/own-header", **{"X-Request-ID": "req-10"})
    assert response.headers.get_list("X-Request-ID") == ["req-10"]


async def test_an_untrusted_header_is_ignored():
    response = await get(make_app(trust_header=False), "/async", **{"X-Request-ID": "forged"})
    assert response.json()["seen"] not in (None, "forged")


async def test_another_header_name_can_be_used():
    app = make_app(header="X-Correlation-ID")
    response = await get(app, "/async", **{"X-Correlation-ID": "corr-1"})
    assert response.json() == {"seen": "corr-1"}
    assert response.headers["X-Correlation-ID"] == "corr-1"


async def test_the_lifespan_passes_through_the_middleware():
    started: list[bool] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        started.append(True)
        yield

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(RequestIdMiddleware)
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])

    await asyncio.wait_for(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send), 10)
    assert started == [True]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
