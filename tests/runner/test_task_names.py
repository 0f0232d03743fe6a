"""Default task names do not depend on how a module was imported: a file run as a script
and a worker that imports it as a module register the same names, and a worker warns
about queued jobs of tasks it does not know."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskrunner import TaskRunner
from taskrunner.project import project_root, script_module_name

ROOT = Path(__file__).resolve().parents[2]

APP = textwrap.dedent(
    """
    from taskrunner import TaskRunner

    runner = TaskRunner("postgresql://postgres@127.0.0.1:1/unused")

    @runner.task
    def build(n: int) -> int:
        return n

    if __name__ == "__main__":
        print(sorted(runner.tasks))
    """
)


def run_python(cwd: Path, *argv: str) -> str:
    proc = subprocess.run(
        [sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=60, check=True
    )
    return proc.stdout.strip()


def names_when_imported(cwd: Path, module: str) -> str:
    code = (
        f"import sys; sys.path.insert(0, ''); import {module} as m;"
        f"print(sorted(m.runner.tasks))"
    )
    return run_python(cwd, "-c", code)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    return tmp_path


def test_a_script_in_a_project_folder_and_its_import_register_the_same_names(project: Path):
    (project / "jobs").mkdir()
    (project / "jobs" / "app.py").write_text(APP)

    as_script = run_python(project, "jobs/app.py")
    from_elsewhere = run_python(project / "jobs", "app.py")

    assert as_script == from_elsewhere == "['jobs.app.build']"
    assert names_when_imported(project, "jobs.app") == as_script


def test_a_script_inside_a_package_is_named_from_the_folder_above_the_top_package(
    project: Path,
):
    package = project / "src" / "shop" / "tasks"
    package.mkdir(parents=True)
    for folder in (package, package.parent):
        (folder / "__init__.py").write_text("")
    (package / "mail.py").write_text(APP)

    assert run_python(project, "src/shop/tasks/mail.py") == "['shop.tasks.mail.build']"


def test_python_dash_m_names_tasks_after_the_module(project: Path):
    (project / "jobs").mkdir()
    (project / "jobs" / "app.py").write_text(APP)

    assert run_python(project, "-m", "jobs.app") == "['jobs.app.build']"


def test_the_quickstart_names_its_tasks_as_the_worker_that_imports_it_does():
    imported = names_when_imported(ROOT, "examples.quickstart")

    assert script_module_name(ROOT / "examples" / "quickstart.py") == "examples.quickstart"
    assert "examples.quickstart.send_welcome_email" in imported


def test_the_project_root_is_the_nearest_folder_with_a_project_file(project: Path):
    deep = project / "a" / "b"
    deep.mkdir(parents=True)

    assert project_root(deep) == project.resolve()


# ---- the warning about unknown tasks --------------------------------------------------


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def warnings_log() -> Iterator[list[logging.LogRecord]]:
    logger = logging.getLogger("taskrunner")
    handler = Collect()
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def unknown_task_warnings(records: list[logging.LogRecord]) -> list[str]:
    return [
        r.getMessage()
        for r in records
        if r.levelno == logging.WARNING and "does not know" in r.getMessage()
    ]


async def test_a_worker_warns_once_naming_tasks_of_queued_jobs_it_does_not_know(
    runner: TaskRunner, pg_dsn: str, warnings_log: list[logging.LogRecord]
):
    @runner.task(name="known.task")
    async def known() -> None: ...

    producer = TaskRunner(pg_dsn, schema=runner.schema)

    @producer.task(name="quickstart.send_email")
    async def send_email(to: str) -> None: ...

    async with producer:
        for to in ("a", "b"):
            await send_email.enqueue(to)

    for _ in range(2):
        await runner.run_worker(stop_when_idle=True, poll_interval=0.05, handle_signals=False)

    # A new worker warns again (once); within one worker the same task is named once.
    messages = unknown_task_warnings(warnings_log)
    assert len(messages) == 2, messages
    assert "'quickstart.send_email' (2 jobs)" in messages[0]
    assert "'known.task'" in messages[0]


async def test_a_worker_whose_every_queued_task_is_known_does_not_warn(
    runner: TaskRunner, warnings_log: list[logging.LogRecord]
):
    @runner.task(name="known.task")
    async def known() -> None: ...

    await known.enqueue()
    await runner.run_worker(stop_when_idle=True, poll_interval=0.05, handle_signals=False)

    assert unknown_task_warnings(warnings_log) == []


async def test_the_check_repeats_and_names_only_tasks_not_named_before(runner: TaskRunner):
    from taskrunner.runner.unknown_tasks import UnknownTaskWatch

    other = TaskRunner(runner.dsn, schema=runner.schema, strict_names=False)
    async with other:
        await other.enqueue("first.task")
        watch = UnknownTaskWatch(runner.job_queue, ["known"], None)
        assert await watch.check() == {"first.task": 1}
        await other.enqueue("second.task")
        await other.enqueue("first.task")
        assert await watch.check() == {"second.task": 1}
