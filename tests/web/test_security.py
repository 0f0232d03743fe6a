"""The dashboard's security from outside: HTTP Basic with a password, everything from a
job escaped, the extra's absence named, and the command line's refusal of a non-loopback
host without a password."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from taskrunner import TaskRunner
from taskrunner.cli import build_parser, main
from taskrunner.web import DashboardUnavailable, create_app

ROOT = Path(__file__).resolve().parents[2]


def _basic(password: str, user: str = "admin") -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def test_with_a_password_every_request_needs_it_over_http_basic(
    runner: TaskRunner, client_for
):
    async with await client_for(create_app(runner, password="s3cret")) as client:
        for path in ("/", "/jobs", "/live", "/static/htmx.min.js"):
            refused = await client.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"].startswith("Basic realm=")
        assert (await client.get("/", headers=_basic("wrong"))).status_code == 401
        assert (await client.post("/queues/pause", data={"name": "x"})).status_code == 401
        assert (await client.get("/", headers=_basic("s3cret"))).status_code == 200
    assert not any(q.paused for q in await runner.queues())


async def test_everything_shown_from_a_job_is_escaped(
    runner: TaskRunner, client: httpx.AsyncClient, work
):
    script = "<script>alert(1)</script>"

    @runner.task(name="app.evil<script>", max_attempts=1, queue="q<script>")
    async def evil(text: str) -> str:
        raise ValueError(script)

    @runner.task(name="app.echo")
    async def echo(text: str) -> str:
        return text

    failed = await evil.enqueue(script, idempotency_key=script, request_id=script)
    done = await echo.enqueue(script)
    await work()

    pages = [
        f"/jobs/{failed.id}",
        f"/jobs/{done.id}",
        "/jobs",
        "/",
        "/queues",
        f"/jobs?q={script}",
    ]
    for path in pages:
        text = (await client.get(path, params=None)).text
        assert "<script>alert" not in text, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (await client.get(f"/jobs/{failed.id}")).text


def test_without_the_extra_creating_the_app_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
):
    for name in list(sys.modules):
        if name == "starlette" or name.startswith(("starlette.", "taskrunner.web.")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "starlette", None)  # import starlette fails

    with pytest.raises(DashboardUnavailable, match=r"pip install 'taskrunner\[web\]'"):
        create_app(TaskRunner("postgresql://nowhere/none"))


def _dashboard(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["dashboard", "no_such_module:runner", *args])
    return code, capsys.readouterr().err


def test_the_command_exits_2_refusing_a_non_loopback_host_without_a_password():
    result = subprocess.run(
        [sys.executable, "-m", "taskrunner", "dashboard", "app:runner", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )

    assert result.returncode == 2
    assert "without a password" in result.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.com", "::"])
def test_the_command_refuses_every_non_loopback_host_without_a_password(
    host: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("TASKRUNNER_DASHBOARD_PASSWORD", raising=False)

    code, err = _dashboard(capsys, "--host", host)

    assert code == 2
    assert "without a password" in err
    assert "TASKRUNNER_DASHBOARD_PASSWORD" in err


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--host", "0.0.0.0", "--password", "pw"], None),
        (["--host", "0.0.0.0"], "pw"),
        (["--host", "127.0.0.1"], None),
        (["--host", "::1"], None),
        ([], None),
    ],
)
def test_the_command_takes_a_password_off_loopback_and_none_on_it(
    args, env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    if env is None:
        monkeypatch.delenv("TASKRUNNER_DASHBOARD_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("TASKRUNNER_DASHBOARD_PASSWORD", env)

    # Past the host check, the command goes on to import the app, which does not exist.
    code, err = _dashboard(capsys, *args)

    assert code == 2
    assert "cannot import module 'no_such_module'" in err


def test_the_command_listens_on_loopback_unless_told_otherwise():
    args = build_parser().parse_args(["dashboard", "myapp.tasks:runner"])

    assert args.host == "127.0.0.1"
    assert args.read_only is False
    assert args.password is None


def test_without_the_extra_the_command_exits_1_naming_the_install_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn fails

    code, err = _dashboard(capsys)

    assert code == 1
    assert "pip install 'taskrunner[web]'" in err
