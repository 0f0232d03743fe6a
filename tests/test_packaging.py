"""The built distributions carry everything the package reads at run time.

Migrations live at the top of the checkout and are force-included into the wheel as
taskrunner/migrations; the queue's SQL ships inside the package. A wheel missing either
installs fine and fails only at the first migrate or claim, so it is checked here.
"""

from __future__ import annotations

import configparser
import importlib.util
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

import taskrunner
from taskrunner.db import migrator

# One worker builds the sdist and wheel (a module fixture) for all of them.
pytestmark = pytest.mark.xdist_group("packaging")

REPO = Path(__file__).resolve().parents[1]
LOCAL_ONLY = {
    "site-packages",
    "__pycache__",
    ".taskrunner",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
}


def _files(folder: Path, pattern: str) -> set[str]:
    names = {p.name for p in folder.glob(pattern) if p.is_file()}
    assert names, f"nothing matches {pattern} in {folder}"
    return names


@dataclass(frozen=True)
class Dists:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """An sdist, and a wheel built from that sdist, as `python -m build` makes them."""
    if importlib.util.find_spec("build") is None:
        pytest.fail("the 'build' package is missing: pip install -e '.[dev]'")
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--outdir", str(out)]
    # Without the backend at hand, let build fetch it into an isolated environment.
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-isolation")
    command.append(str(REPO))
    done = subprocess.run(
        command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=110
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    (wheel,) = out.glob("taskrunner-*.whl")
    (sdist,) = out.glob("taskrunner-*.tar.gz")
    return Dists(wheel=wheel, sdist=sdist)


def _wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def _sdist_names(sdist: Path) -> set[str]:
    """Member paths with the leading "taskrunner-<version>/" removed."""
    with tarfile.open(sdist) as tf:
        return {
            str(PurePosixPath(*PurePosixPath(m.name).parts[1:]))
            for m in tf.getmembers()
            if m.isfile()
        }


@pytest.mark.slow
def test_wheel_ships_migrations(dists: Dists) -> None:
    names = _wheel_names(dists.wheel)
    shipped = {PurePosixPath(n).name for n in names if n.startswith("taskrunner/migrations/")}
    assert "0001_initial.sql" in shipped
    assert shipped == _files(REPO / "migrations", "*"), "wheel migrations differ from migrations/"


@pytest.mark.slow
def test_wheel_ships_queue_sql_and_marker(dists: Dists) -> None:
    names = _wheel_names(dists.wheel)
    sql = {PurePosixPath(n).name for n in names if n.startswith("taskrunner/queue/sql/")}
    assert sql == _files(REPO / "taskrunner" / "queue" / "sql", "*.sql")
    assert "taskrunner/py.typed" in names


@pytest.mark.slow
def test_wheel_ships_the_dashboards_templates_and_vendored_htmx(dists: Dists) -> None:
    names = _wheel_names(dists.wheel)
    web = REPO / "taskrunner" / "web"
    for folder in ("templates", "static"):
        shipped = {
            PurePosixPath(n).name for n in names if n.startswith(f"taskrunner/web/{folder}/")
        }
        assert shipped == _files(web / folder, "*"), f"wheel web/{folder} differs"
    assert "taskrunner/web/static/htmx.min.js" in names
    with zipfile.ZipFile(dists.wheel) as zf:
        (metadata,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        assert "Provides-Extra: web" in zf.read(metadata).decode()


@pytest.mark.slow
def test_wheel_ships_every_module(dists: Dists) -> None:
    names = _wheel_names(dists.wheel)
    modules = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "taskrunner").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"


@pytest.mark.slow
def test_wheel_declares_console_script(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as zf:
        (entry_points,) = [n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = zf.read(entry_points).decode()
    parser = configparser.ConfigParser()
    parser.read_string(text)
    assert parser.has_section("console_scripts"), text
    assert parser["console_scripts"].get("taskrunner") == "taskrunner.cli:main"


@pytest.mark.slow
def test_wheel_declares_the_pytest_plugin(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as zf:
        (entry_points,) = [n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = zf.read(entry_points).decode()
    parser = configparser.ConfigParser()
    parser.read_string(text)
    assert parser.has_section("pytest11"), text
    assert parser["pytest11"].get("taskrunner") == "taskrunner.testing.plugin"


@pytest.mark.slow
def test_sdist_ships_migrations_and_sources(dists: Dists) -> None:
    names = _sdist_names(dists.sdist)
    migrations = {PurePosixPath(n).name for n in names if n.startswith("migrations/")}
    assert "0001_initial.sql" in migrations
    assert migrations >= _files(REPO / "migrations", "*.sql")
    assert {"pyproject.toml", "README.md", "taskrunner/py.typed"} <= names
    sql = {PurePosixPath(n).name for n in names if n.startswith("taskrunner/queue/sql/")}
    assert sql == _files(REPO / "taskrunner" / "queue" / "sql", "*.sql")
    # Include patterns match at any depth unless anchored: a venv inside the checkout has
    # files named like them (site-packages/**/tests, bin/taskrunner, README.md).
    junk = sorted(n for n in names if _is_local_file(PurePosixPath(n)))
    assert not junk, f"the sdist carries local files: {junk[:5]}"


def _is_local_file(path: PurePosixPath) -> bool:
    top = path.parts[0]
    return (
        top.startswith(".venv")
        or top in {"venv", "dist", "build"}
        or not LOCAL_ONLY.isdisjoint(path.parts)
    )


def test_migrations_resolve_from_the_checkout() -> None:
    """Tests run against the checkout (an editable install): migrations come from there."""
    assert Path(taskrunner.__file__).resolve().is_relative_to(REPO), taskrunner.__file__
    folder = migrator._migrations_dir()
    assert folder.resolve() == (REPO / "migrations").resolve()
    assert (folder / "0001_initial.sql").is_file()
    loaded = [m.name for m in migrator.load_migrations()]
    assert loaded[0] == "0001_initial"
    assert loaded == sorted(p.stem for p in folder.glob("*.sql"))
