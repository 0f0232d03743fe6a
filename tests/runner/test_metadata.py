"""Metadata: a small key/value store in the runner's schema (API.md, "Metadata")."""

from __future__ import annotations

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskrunner import InvalidArguments, TaskRunner, TaskRunnerError

KEYS = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=255,
)


async def rows(runner: TaskRunner) -> int:
    count: int = await runner.job_queue.db.fetchval(
        f'SELECT count(*) FROM "{runner.schema}".metadata'
    )
    return count


async def test_a_stored_value_is_read_back_as_the_same_bytes(runner: TaskRunner):
    await runner.set_metadata("import.cursor", b"\x00\x01\xff")

    assert await runner.get_metadata("import.cursor") == b"\x00\x01\xff"


async def test_a_key_never_set_reads_as_none(runner: TaskRunner):
    assert await runner.get_metadata("nothing.here") is None


async def test_setting_a_key_again_replaces_its_value(runner: TaskRunner):
    await runner.set_metadata("k", b"one")
    await runner.set_metadata("k", b"two")

    assert await runner.get_metadata("k") == b"two"
    assert await rows(runner) == 1


async def test_deleting_a_key_says_whether_it_was_set_and_removes_it(runner: TaskRunner):
    await runner.set_metadata("k", b"v")

    assert await runner.delete_metadata("k") is True
    assert await runner.delete_metadata("k") is False
    assert await runner.get_metadata("k") is None


async def test_an_empty_value_is_a_value(runner: TaskRunner):
    await runner.set_metadata("k", b"")

    assert await runner.get_metadata("k") == b""


async def test_bytearray_and_memoryview_values_are_stored_as_bytes(runner: TaskRunner):
    await runner.set_metadata("a", bytearray(b"ab"))
    await runner.set_metadata("m", memoryview(b"mv"))

    assert (await runner.get_metadata("a"), await runner.get_metadata("m")) == (b"ab", b"mv")


async def test_set_metadata_with_a_connection_commits_with_the_callers_transaction(
    runner: TaskRunner, pg_dsn: str
):
    conn = await asyncpg.connect(pg_dsn)
    try:
        async with conn.transaction():
            await runner.set_metadata("kept", b"1", connection=conn)
        transaction = conn.transaction()
        await transaction.start()
        await runner.set_metadata("dropped", b"2", connection=conn)
        await transaction.rollback()
    finally:
        await conn.close()

    assert await runner.get_metadata("kept") == b"1"
    assert await runner.get_metadata("dropped") is None


async def test_metadata_lives_in_the_schema_and_outlives_the_runner(
    runner: TaskRunner, pg_dsn: str
):
    await runner.set_metadata("k", b"v")

    async with TaskRunner(pg_dsn, schema=runner.schema) as again:
        assert await again.get_metadata("k") == b"v"


async def test_two_schemas_keep_their_own_metadata(
    runner: TaskRunner, pg_dsn: str, second_schema: str
):
    await runner.set_metadata("k", b"first")

    async with TaskRunner(pg_dsn, schema=second_schema) as other:
        assert await other.get_metadata("k") is None


async def test_a_key_of_255_characters_is_accepted(runner: TaskRunner):
    await runner.set_metadata("é" * 255, b"v")

    assert await runner.get_metadata("é" * 255) == b"v"


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("", "1 to 255 characters"),
        ("k" * 256, "1 to 255 characters"),
        ("a\x00b", "without NUL"),
        ("\ud800", "lone surrogate"),
        (42, "must be a str, not int"),
        (b"k", "must be a str, not bytes"),
    ],
)
async def test_a_bad_key_is_refused_naming_the_rule_and_nothing_is_written(
    runner: TaskRunner, key: object, says: str
):
    with pytest.raises(InvalidArguments, match=says) as refused:
        await runner.set_metadata(key, b"v")  # type: ignore[arg-type]

    assert refused.value.field == "key"
    assert await rows(runner) == 0
    with pytest.raises(InvalidArguments):
        await runner.get_metadata(key)  # type: ignore[arg-type]
    with pytest.raises(InvalidArguments):
        await runner.delete_metadata(key)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["text", 1, None, [1, 2]])
async def test_a_value_that_is_not_bytes_is_refused_and_nothing_is_written(
    runner: TaskRunner, value: object
):
    with pytest.raises(InvalidArguments, match="must be bytes"):
        await runner.set_metadata("k", value)  # type: ignore[arg-type]

    assert await rows(runner) == 0


async def test_a_connection_that_is_not_one_is_refused(runner: TaskRunner):
    with pytest.raises(InvalidArguments, match="asyncpg connection"):
        await runner.set_metadata("k", b"v", connection="nope")  # type: ignore[arg-type]


async def test_metadata_of_a_runner_that_is_not_open_is_a_taskrunner_error(pg_dsn: str):
    closed = TaskRunner(pg_dsn, schema="t_never_opened")

    with pytest.raises(TaskRunnerError):
        await closed.get_metadata("k")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=KEYS, value=st.binary(max_size=2048))
async def test_any_valid_key_and_bytes_round_trip_exactly(
    runner: TaskRunner, key: str, value: bytes
):
    await runner.set_metadata(key, value)

    assert await runner.get_metadata(key) == value
