"""A table whose inserts enqueue jobs: the SQL interface from a trigger.

    python examples/triggers.py

Every schema of taskrunner has SQL functions (`enqueue`, `claim`, `complete`, `fail`
and the trigger functions `enqueue_row`, `enqueue_row_id`, `enqueue_fields`). Here a
`signups` table gets a trigger: each inserted row enqueues a welcome job in the same
transaction, so a signup that rolls back sends no mail, and the Python worker runs it.
"""

from __future__ import annotations

import asyncio

from taskrunner import TaskRunner

SCHEMA = "taskrunner_triggers"
runner = TaskRunner(schema=SCHEMA)
sent: list[str] = []


@runner.task(name="emails.welcome")
async def welcome(id: int, email: str) -> None:
    sent.append(email)
    print(f"welcome mail to {email} (signup {id})")


async def main() -> None:
    async with runner:
        db = runner.job_queue.db
        await runner.job_queue.clear()  # a clean start on every run
        await db.execute(
            f"""
            DROP TABLE IF EXISTS {SCHEMA}.signups;
            CREATE TABLE {SCHEMA}.signups (id serial PRIMARY KEY, email text NOT NULL);
            CREATE TRIGGER welcome AFTER INSERT ON {SCHEMA}.signups FOR EACH ROW
                EXECUTE FUNCTION {SCHEMA}.enqueue_fields('emails.welcome', 'id', 'email');
            """
        )
        await db.execute(f"INSERT INTO {SCHEMA}.signups (email) VALUES ('ada@example.com')")
        async with db.acquire() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(
                        f"INSERT INTO {SCHEMA}.signups (email) VALUES ('bob@example.com')"
                    )
                    raise RuntimeError("payment failed")
            except RuntimeError:
                print("bob's signup rolled back: no job for it")
        # Any language can enqueue with one SELECT.
        job_id = await db.fetchval(
            f"SELECT {SCHEMA}.enqueue('emails.welcome', kwargs => $1::jsonb)",
            '{"id": 0, "email": "from-sql@example.com"}',
        )
        print(f"enqueued job {job_id} with SELECT {SCHEMA}.enqueue(...)")

        await runner.run_worker(concurrency=4, stop_when_idle=True)
        print(f"sent {len(sent)} mails: {', '.join(sorted(sent))}")


if __name__ == "__main__":
    asyncio.run(main())
