"""taskrunner in a FastAPI app: the runner opened in the lifespan, request ids from
`X-Request-ID`, a job enqueued in the request's own transaction, and the dashboard under
`/jobs` behind the app's own auth.

    python examples/fastapi_app.py                         # a short tour, in-process
    uvicorn examples.fastapi_app:app                       # the app, served for real
    taskrunner worker examples.fastapi_app:runner          # a worker for its jobs

`POST /signup` inserts a user and enqueues a welcome email on one asyncpg connection, in
one transaction: a signup whose card is declined raises after the enqueue, and then
neither the user row nor the job exists. `/jobs` is the dashboard (`pip install
'taskrunner[web]' fastapi`), served only to staff: the app's own check runs before the
dashboard sees the request. Staff here is a bearer token ($STAFF_TOKEN; without one, no
one); use your app's session check instead.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from taskrunner import TaskRunner, current_request_id
from taskrunner.contrib.fastapi import RequestIdMiddleware
from taskrunner.web import create_app as create_dashboard

SCHEMA = "taskrunner_fastapi_example"

runner = TaskRunner(schema=SCHEMA)


@runner.task
async def send_welcome_email(user_id: int, email: str) -> str:
    await asyncio.sleep(0.01)  # pretend to talk to a mail service
    return f"welcome email sent to {email} (user {user_id})"


class Signup(BaseModel):
    email: str
    card: str = "ok"


class StaffOnly:
    """The app's own auth in front of a mounted ASGI app (a mount gets no FastAPI
    dependencies, so the check is ASGI middleware): 401 unless the bearer token is staff's."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None  # no token: no one

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if self.expected is None or not hmac.compare_digest(given, self.expected):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                refused = PlainTextResponse(
                    "staff only", status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(tasks: TaskRunner = runner, *, staff_token: str | None = None) -> FastAPI:
    """The app, for `tasks` (a test passes a runner of its own schema)."""
    users = f"{tasks.schema}.example_users"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with tasks:  # connects and migrates, once per process
            pool = await asyncpg.create_pool(tasks.target.dsn, min_size=1, max_size=5)
            try:
                await pool.execute(
                    f"CREATE TABLE IF NOT EXISTS {users} ("
                    " id bigserial PRIMARY KEY, email text NOT NULL UNIQUE)"
                )
                app.state.db = pool  # the app's own connections for its own data
                yield
            finally:
                await pool.close()

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(RequestIdMiddleware)

    @app.post("/signup", status_code=201)
    async def signup(body: Signup, request: Request) -> dict[str, Any]:
        pool: asyncpg.Pool = request.app.state.db
        async with pool.acquire() as conn, conn.transaction():
            user_id: int = await conn.fetchval(
                f"INSERT INTO {users} (email) VALUES ($1) RETURNING id", body.email
            )
            job = await tasks.enqueue(send_welcome_email.name, user_id, body.email, connection=conn)
            if body.card == "declined":  # fails after the enqueue: all of it rolls back
                raise HTTPException(402, f"card for {body.email} was declined")
        return {"user_id": user_id, "job_id": job.id, "request_id": job.request_id}

    @app.get("/whoami")
    async def whoami() -> dict[str, str | None]:
        return {"request_id": current_request_id()}

    # The dashboard, behind our auth (so without a password of its own). The auth goes in
    # the Mount's middleware rather than around the dashboard, so that its links, which
    # are looked up among the mounted app's routes, resolve.
    board = create_dashboard(tasks, read_only=False, password=None)
    token = staff_token or os.environ.get("STAFF_TOKEN", "")
    app.router.routes.append(
        Mount("/jobs", app=board, middleware=[Middleware(StaffOnly, token=token)])
    )
    return app


app = create_app()


async def tour() -> None:
    import httpx

    demo = create_app(staff_token="let-me-in")
    async with demo.router.lifespan_context(demo):  # what a server does at start and stop
        pool: asyncpg.Pool = demo.state.db
        await pool.execute(f"TRUNCATE {SCHEMA}.example_users RESTART IDENTITY")  # clean reruns
        await runner.job_queue.clear()
        transport = httpx.ASGITransport(app=demo)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            ada = {"email": "ada@example.com"}
            ok = await client.post("/signup", json=ada, headers={"X-Request-ID": "req-1"})
            print(f"POST /signup ada: {ok.status_code} {ok.json()}")
            print(f"   X-Request-ID echoed: {ok.headers['x-request-id']}")
            bob = {"email": "bob@example.com", "card": "declined"}
            bad = await client.post("/signup", json=bob)
            print(f"POST /signup bob: {bad.status_code} {bad.json()['detail']}")
            rows = await pool.fetch(f"SELECT email FROM {SCHEMA}.example_users")
            jobs = await runner.list_jobs()
            print(f"users: {[r['email'] for r in rows]}; jobs: {[j.args for j in jobs]}")
            staff = {"Authorization": "Bearer let-me-in"}
            refused = (await client.get("/jobs/")).status_code
            allowed = (await client.get("/jobs/", headers=staff)).status_code
            print(f"GET /jobs/ without the token: {refused}, with it: {allowed}")
        await runner.run_worker(stop_when_idle=True, poll_interval=0.1)
        done = await runner.wait(ok.json()["job_id"], timeout=10)
        print(f"job {done.id} {done.status}: {done.result}")


if __name__ == "__main__":
    asyncio.run(tour())
