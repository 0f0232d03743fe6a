"""The public API type-checks under `mypy --strict` as users write it, and `@runner.task`
keeps the function's signature so mypy catches a wrong call of a task."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# One worker runs them all, so mypy's cache (a module fixture) is warm after the first.
pytestmark = pytest.mark.xdist_group("typing")

ROOT = Path(__file__).resolve().parents[1]
USAGE = ROOT / "tests" / "typing" / "usage.py"

PREAMBLE = textwrap.dedent(
    """
    from taskrunner import TaskRunner

    runner = TaskRunner()


    @runner.task
    def add(a: int, b: int) -> int:
        return a + b

    """
)


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def mypy(path: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    """mypy --strict on one file; errors in taskrunner itself are the CI's other check."""
    return subprocess.run(
        [
            sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
            "--no-error-summary", "--cache-dir", str(cache), str(path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip


def test_the_public_api_used_as_documented_passes_mypy_strict(mypy_cache: Path):
    result = mypy(USAGE, mypy_cache)

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("snippet", "error"),
    [
        ('add("x", 2)\n', 'incompatible type "str"; expected "int"'),
        ("total: str = add(1, 2)\n", "incompatible types in assignment"),
        ("add(1)\n", "Missing positional argument"),
    ],
    ids=["argument-type", "return-type", "missing-argument"],
)
def test_a_wrong_call_of_a_task_fails_mypy(
    tmp_path: Path, mypy_cache: Path, snippet: str, error: str
):
    wrong = tmp_path / "wrong_call.py"
    wrong.write_text(PREAMBLE + snippet)

    result = mypy(wrong, mypy_cache)

    assert result.returncode == 1, result.stdout + result.stderr
    assert error.lower() in result.stdout.lower()
    assert result.stdout.count(": error:") == 1, result.stdout


def test_an_unknown_executor_fails_mypy(tmp_path: Path, mypy_cache: Path):
    wrong = tmp_path / "wrong_executor.py"
    wrong.write_text(PREAMBLE + '\n@runner.task(executor="gpu")\ndef f() -> None: ...\n')

    result = mypy(wrong, mypy_cache)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "executor" in result.stdout
