"""Random calls through the public surface: `enqueue`, `enqueue_many`, the job verbs and
the command line's `enqueue`, with arguments and options good and bad.

Each call either raises a TaskRunnerError with a one-line message, writing nothing, or
returns jobs that exist as returned and that the worker can run; none hangs. At the end
a worker runs every due job, and every stored job decodes for its handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
import types
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import msgspec
import pytest
from conftest import drop_schema, new_schema_name
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskrunner import Job, JobStatus, TaskRunner, TaskRunnerError
from taskrunner.cli import main as cli_main
from taskrunner.db import validate_schema

R = TypeVar("R")
CALL_TIMEOUT = 10.0
APP_MODULE = "taskrunner_fuzz_app"


class Point(msgspec.Struct):
    x: int
    y: float


def register(runner: TaskRunner) -> None:
    @runner.task(name="fuzz.echo")
    async def echo(n: int, label: str = "x") -> int:
        return n

    @runner.task(name="fuzz.anything")
    async def anything(value: Any, *rest: Any, **extra: Any) -> None:
        return None

    @runner.task(name="fuzz.ratio")
    async def ratio(x: float) -> float:
        return x

    @runner.task(name="fuzz.point")
    async def point(p: Point) -> float:
        return p.y


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


TEXT = st.text(st.characters(codec=None, categories=None), max_size=8) | st.sampled_from(
    ["", "a\x00b", "\ud800", "x" * 500, "null", "\\u0000", "[" * 70]
)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
INTS = st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from(
    [0, 1, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**63]
)
SCALARS = st.none() | st.booleans() | INTS | FLOATS | TEXT
def as_stored(value: Any) -> Any:
    """`value` as jsonb keeps it: jsonb stores numbers as decimals, so an untyped float
    with a whole value comes back as an int (3.6e16 as 36000000000000000); compared as
    floats, the two are the same number."""
    if isinstance(value, float) and value.is_integer():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value) if abs(value) > 2**53 else value
    if isinstance(value, list | tuple):
        return [as_stored(v) for v in value]
    if isinstance(value, dict):
        return {k: as_stored(v) for k, v in value.items()}
    return value


VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
) | st.sampled_from(
    [nested(70), nested(3000), Point(1, float("nan")), Point(1, 2.0), object(), b"bytes"]
)

WILD = (
    st.none()
    | INTS
    | FLOATS
    | TEXT
    | st.booleans()
    | st.sampled_from(
        [
            [1],
            timedelta(seconds=5),
            timedelta(days=-1),
            timedelta(days=999_999),
            datetime(2030, 1, 1),
            datetime(2030, 1, 1, tzinfo=UTC),
            datetime(1, 1, 1, tzinfo=UTC),
            datetime.max.replace(tzinfo=UTC),
            datetime.min.replace(tzinfo=timezone(timedelta(hours=5))),
            "nope",
        ]
    )
)
OPTION_NAMES = [
    "idempotency_key",
    "request_id",
    "delay",
    "run_at",
    "priority",
    "queue",
    "max_attempts",
    "connection",
]
OPTIONS = st.dictionaries(st.sampled_from(OPTION_NAMES), WILD, max_size=3)
TASKS = st.sampled_from(
    ["fuzz.echo", "fuzz.ratio", "fuzz.anything", "fuzz.point", "fuzz.missing", 5, ""]
)
JOB_IDS = st.sampled_from([1, 2, 1.5, True, "1", None, -1, 2**63, [1]])


class Surface:
    """One schema, one runner, one loop for every example of a test."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.schema = new_schema_name()
        self.loop = asyncio.new_event_loop()
        self.runner = TaskRunner(dsn, schema=self.schema)
        register(self.runner)
        self.run(self.runner.open())
        self.ids: set[int] = set()

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        return self.loop.run_until_complete(asyncio.wait_for(coro, CALL_TIMEOUT))

    def rows(self) -> int:
        count: int = self.run(
            self.runner.job_queue.db.fetchval(f'SELECT count(*) FROM "{self.schema}".jobs')
        )
        return count

    def check_outcome(self, call: Coroutine[Any, Any, Any]) -> None:
        before = self.rows()
        refused: TaskRunnerError | None = None
        try:
            result = self.run(call)
        except TaskRunnerError as exc:
            refused = exc
        if refused is not None:
            message = str(refused)
            assert message, f"{type(refused).__name__} without a message"
            assert "\n" not in message, message
            assert self.rows() == before, f"{type(refused).__name__} left rows behind: {message}"
            return
        jobs = result if isinstance(result, list) else [result]
        new = {job.id for job in jobs if isinstance(job, Job)} - self.ids
        if all(isinstance(job, Job) for job in jobs):
            for job in jobs:
                stored = self.run(self.runner.get_job(job.id))
                assert stored is not None
                assert as_stored((stored.args, stored.kwargs)) == as_stored((job.args, job.kwargs))
                assert (stored.priority, stored.queue) == (job.priority, job.queue)
            self.ids |= new
            assert self.rows() == before + len(new)

    def finish(self) -> None:
        """Every due job runs and succeeds; every stored job decodes for its handler."""
        try:
            self.run(
                self.runner.run_worker(
                    stop_when_idle=True, handle_signals=False, poll_interval=0.05
                )
            )
            for job in self.run(self.runner.list_jobs(limit=10_000)):
                task = self.runner.tasks[job.task]
                row = self.run(self.runner.job_queue.get(job.id))
                assert row is not None
                task.codec.decode(row.args, row.kwargs)
                assert job.status is not JobStatus.FAILED, job  # the verbs cancel and pause
                if job.status is JobStatus.QUEUED:
                    assert job.run_at > datetime.now(UTC), job
            self.run(self.runner.stats())
        finally:
            self.run(self.runner.close())
            self.run(drop_schema(self.dsn, self.schema))
            self.loop.close()


@pytest.fixture(scope="module")
def surface(pg_dsn: str) -> Iterator[Surface]:
    found = Surface(pg_dsn)
    yield found
    found.finish()


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=st.data(),
    task=TASKS,
    args=st.lists(VALUES, max_size=3),
    kwargs=st.dictionaries(st.sampled_from(["label", "n", "value", "p", "zz"]), VALUES, max_size=2),
    options=OPTIONS,
)
def test_random_enqueues_give_a_clear_error_or_jobs_the_worker_can_run(
    surface: Surface,
    data: st.DataObject,
    task: Any,
    args: list[Any],
    kwargs: dict[str, Any],
    options: dict[str, Any],
):
    runner = surface.runner
    if data.draw(st.booleans(), label="batch"):
        calls = data.draw(st.lists(st.tuples(VALUES) | st.just(tuple(args)), max_size=4))
        keys = data.draw(st.none() | st.lists(st.none() | TEXT, max_size=5), label="keys")
        options.pop("idempotency_key", None)
        surface.check_outcome(
            runner.enqueue_many(task, calls, idempotency_keys=keys, **options)  # type: ignore[arg-type]
        )
    else:
        surface.check_outcome(runner.enqueue(task, *args, **kwargs, **options))


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    verb=st.sampled_from(["get_job", "cancel", "pause", "resume", "retry", "wait", "result"]),
    job_id=JOB_IDS,
)
def test_random_job_verbs_give_a_clear_error_or_an_answer(surface: Surface, verb: str, job_id: Any):
    call = getattr(surface.runner, verb)
    timed = verb in ("wait", "result")
    valid = type(job_id) is int and -(2**63) <= job_id < 2**63
    message = None
    try:
        surface.run(call(job_id, timeout=0.05) if timed else call(job_id))
    except TaskRunnerError as exc:
        message = str(exc)
    except TimeoutError:
        message = "timed out" if timed else ""
    assert message is None or (message and "\n" not in message)
    if not valid:
        assert message is not None, f"{verb}({job_id!r}) was not refused"
        assert "job_id" in message


def schedule_rows(surface: Surface) -> int:
    count: int = surface.run(
        surface.runner.job_queue.db.fetchval(f'SELECT count(*) FROM "{surface.schema}".schedules')
    )
    return count


SCHEDULE_OPTIONS = st.dictionaries(
    st.sampled_from(["queue", "priority", "max_attempts", "timezone", "missed"]), WILD, max_size=3
)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=TEXT,
    task=TASKS,
    every=WILD,
    args=st.lists(VALUES, max_size=2) | WILD,
    kwargs=st.dictionaries(st.sampled_from(["label", "n", "value"]), VALUES, max_size=2) | WILD,
    options=SCHEDULE_OPTIONS,
)
def test_random_schedules_give_a_clear_error_or_a_schedule_of_what_was_given(
    surface: Surface,
    name: Any,
    task: Any,
    every: Any,
    args: Any,
    kwargs: Any,
    options: dict[str, Any],
):
    runner = surface.runner
    before = schedule_rows(surface)
    message = None
    try:
        made = surface.run(
            runner.add_schedule(name, task, every=every, args=args, kwargs=kwargs, **options)
        )
    except TaskRunnerError as exc:
        message = str(exc)
    if message is not None:
        assert message
        assert "\n" not in message, message
        assert schedule_rows(surface) == before, message
        return
    try:
        found = runner.tasks[made.task]
        assert (made.name, made.queue, made.priority, made.max_attempts) == (
            name,
            options.get("queue", found.queue),
            options.get("priority", found.priority),
            options.get("max_attempts", found.max_attempts),
        )
        (stored,) = [s for s in surface.run(runner.list_schedules()) if s.name == name]
        assert stored == made
    finally:
        surface.run(runner.remove_schedule(name))


CLI_TEXT = st.sampled_from(
    ["", "-5", "nan", "inf", "1e12", "1.5", "3", "abc", "a\x00b", "2**31", "2147483648", "[1]"]
)


@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    task=st.sampled_from(["fuzz.echo", "fuzz.ratio", "fuzz.anything", "fuzz.missing"]),
    payload=st.sampled_from(
        ["[1]", "[1.5]", '["x"]', "[NaN]", '["a\\u0000"]', "[[[[1]]]]", "{", "5"]
    ),
    flags=st.dictionaries(
        st.sampled_from(
            ["--delay", "--priority", "--max-attempts", "--queue", "--idempotency-key", "--run-at"]
        ),
        CLI_TEXT,
        max_size=2,
    ),
)
def test_random_cli_enqueues_exit_cleanly(
    surface: Surface,
    monkeypatch: pytest.MonkeyPatch,
    task: str,
    payload: str,
    flags: dict[str, str],
):
    argv = ["enqueue", f"{APP_MODULE}:runner", task, "--args", payload]
    for flag, value in flags.items():
        argv += [f"{flag}={value}"]

    before = surface.rows()
    code, stderr = run_cli_in_process(surface, monkeypatch, argv)

    if code == 0:
        assert surface.rows() in (before, before + 1)
        (newest,) = surface.run(surface.runner.job_queue.list_jobs(limit=1))
        surface.runner.tasks[newest.task].codec.decode(newest.args, newest.kwargs)
        return
    assert surface.rows() == before, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    if code == 1:  # the only failure at run time here: a key reused for other arguments
        assert "idempotency" in stderr, stderr
    else:
        assert code == 2, stderr


def run_cli_in_process(
    surface: Surface, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> tuple[int, str]:
    """`taskrunner ARGV` through its main(), with an app of the fuzz tasks on the fuzz
    schema; the exit code and stderr. Never a traceback."""
    app = types.ModuleType(APP_MODULE)
    cli_runner = TaskRunner(surface.dsn, schema=surface.schema)
    register(cli_runner)
    app.runner = cli_runner  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, APP_MODULE, app)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli_main(argv)
        except SystemExit as exit_:  # argparse refuses a flag's type: usage, exit 2
            code = exit_.code  # type: ignore[assignment]
    assert "Traceback" not in stderr.getvalue(), stderr.getvalue()
    return code, stderr.getvalue()


def _refused_by(check: Callable[[str], object]) -> Callable[[str], bool]:
    def refused(text: str) -> bool:
        try:
            check(text)
        except (ValueError, TypeError):
            return True
        return False

    return refused


def _log_level(text: str) -> None:
    if text.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError(text)


def _status(text: str) -> None:
    JobStatus(text)


def _key(key: str) -> str:
    return json.dumps(key)


APP = f"{APP_MODULE}:runner"
ANY_TEXT = st.text(st.characters(codec="utf-8"), max_size=12) | CLI_TEXT
BAD_USAGE = st.one_of(
    ANY_TEXT.filter(_refused_by(_log_level)).map(
        lambda level: [f"--log-level={level}", "stats", "--app", APP]
    ),
    (
        (st.integers(max_value=0) | st.integers(min_value=2**31)).map(str)
        | st.sampled_from(["", "abc", "1.5", "nan"])
    ).map(lambda n: ["worker", APP, f"--concurrency={n}"]),
    ANY_TEXT.filter(_refused_by(_status)).map(lambda s: ["jobs", "--app", APP, f"--status={s}"]),
    ANY_TEXT.filter(_refused_by(validate_schema)).map(lambda name: ["stats", f"--schema={name}"]),
    st.text(max_size=5).map(
        lambda k: ["enqueue", APP, "fuzz.echo", "--kwargs", f"{{{_key(k)}: 1, {_key(k)}: 2}}"]
    ),
    (st.floats(max_value=-1e-9) | st.just(float("nan"))).map(
        lambda d: ["enqueue", APP, "fuzz.echo", "--args", "[1]", f"--delay={d}"]
    ),
    st.sampled_from(
        ["--queue=", "--idempotency-key=", "--max-attempts=0", "--priority=2147483648"]
    ).map(lambda flag: ["enqueue", APP, "fuzz.echo", "--args", "[1]", flag]),
    (ANY_TEXT.filter(_refused_by(int)) | st.integers(min_value=2**63).map(str)).map(
        lambda job_id: ["job", "show", job_id, "--app", APP]
    ),
    st.sampled_from(["--schema=other", "--dsn=postgresql://nobody@127.0.0.1:1/x"]).map(
        lambda flag: ["migrate", "--app", APP, flag]
    ),
)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(argv=BAD_USAGE)
def test_bad_command_lines_exit_2_with_one_line_and_write_nothing(
    surface: Surface, monkeypatch: pytest.MonkeyPatch, argv: list[str]
):
    before = surface.rows()
    code, stderr = run_cli_in_process(surface, monkeypatch, argv)
    assert code == 2, (argv, code, stderr)
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("taskrunner"), stderr
    assert surface.rows() == before
