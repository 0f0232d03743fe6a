"""Enqueue from a web request handler, inside the request's own database transaction.

    python examples/web_transaction.py

A signup handler inserts a user and enqueues a welcome email. If it enqueued through a
separate connection, a request that fails after enqueueing would still send an email
to a user who does not exist (or a crash between commit and enqueue would lose it).
Passing `connection=conn` writes the job in the handler's transaction instead, so:

* the request commits  -> the user row and the job both exist;
* the request raises   -> the transaction rolls back and neither exists.

No web framework is needed to show it: `signup(conn, email)` stands in for a request
handler, with `request_context(...)` giving each request its id (a real app would do
that in a middleware). The app uses asyncpg directly, on the database the runner uses.
"""

from __future__ import annotations

import asyncio

import asyncpg

from taskrunner import TaskRunner, request_context

SCHEMA = "taskrunner_web_example"

runner = TaskRunner(schema=SCHEMA)


@runner.task
async def send_welcome_email(user_id: int, email: str) -> str:
    await asyncio.sleep(0.02)  # pretend to talk to a mail service
    return f"welcome email sent to {email} (user {user_id})"


# email -> id of the job its request enqueued (so we can look for it afterwards)
enqueued: dict[str, int] = {}


class PaymentDeclined(Exception):
    """Something that goes wrong in the request after the job was enqueued."""


async def signup(conn: asyncpg.Connection, email: str, *, fail_after_enqueue: bool = False) -> int:
    """The request handler: one transaction for the user row and the job."""
    async with conn.transaction():
        user_id: int = await conn.fetchval(
            f"INSERT INTO {SCHEMA}.example_users (email) VALUES ($1) RETURNING id", email
        )
        job = await send_welcome_email.enqueue(user_id, email, connection=conn)
        enqueued[email] = job.id
        print(f"   inserted user {user_id}, enqueued job {job.id} (request_id={job.request_id})")
        if fail_after_enqueue:
            raise PaymentDeclined(f"card for {email} was declined")
    return user_id


async def handle_request(conn: asyncpg.Connection, request_id: str, email: str, **kw: bool) -> None:
    """What a framework would do around the handler: a request id, and a 500 on errors."""
    print(f"-> request {request_id}: signup {email}")
    with request_context(request_id):
        try:
            user_id = await signup(conn, email, **kw)
        except PaymentDeclined as exc:
            print(f"   500: {exc}; the transaction was rolled back")
        else:
            print(f"   200: user {user_id} created; the transaction committed")


async def main() -> None:
    async with runner:  # creates the schema and the runner's tables in it
        print(f"Database: {runner.target.redacted} (from {runner.target.source})\n")
        conn = await asyncpg.connect(runner.target.dsn)  # the app's own connection
        try:
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {SCHEMA}.example_users ("
                " id bigserial PRIMARY KEY, email text NOT NULL UNIQUE)"
            )
            await conn.execute(f"TRUNCATE {SCHEMA}.example_users RESTART IDENTITY")  # clean reruns
            await runner.job_queue.clear()

            await handle_request(conn, "req-alice", "alice@example.com")
            await handle_request(conn, "req-bob", "bob@example.com", fail_after_enqueue=True)

            print("\nIn the database now:")
            users = await conn.fetch(f"SELECT id, email FROM {SCHEMA}.example_users ORDER BY id")
            for u in users:
                print(f"   user {u['id']}: {u['email']}")
            jobs = sorted(await runner.list_jobs(), key=lambda j: j.id)
            for j in jobs:
                print(
                    f"   job {j.id}: {j.task}{tuple(j.args)} status={j.status} "
                    f"request_id={j.request_id}"
                )
            emails = {u["email"] for u in users}
            assert emails == {"alice@example.com"}, emails
            assert [j.request_id for j in jobs] == ["req-alice"], jobs
            bob_job = await runner.get_job(enqueued["bob@example.com"])
            print(f"   runner.get_job({enqueued['bob@example.com']}) (bob's job) -> {bob_job}")
            assert bob_job is None
            print("   bob: no user row and no job -- both were rolled back together")

            print("\nRunning a worker until idle...")
            await runner.run_worker(concurrency=4, stop_when_idle=True, poll_interval=0.1)
            for j in jobs:
                done = await runner.wait(j.id, timeout=5)
                print(f"   job {done.id} {done.status}: {done.result}")
        finally:
            await conn.close()
    print("\nOK: committed request -> user + job; rolled-back request -> neither.")


if __name__ == "__main__":
    asyncio.run(main())
