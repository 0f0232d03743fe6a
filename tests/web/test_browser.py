"""The dashboard in a real browser: headless Chromium (Debian's, with its chromedriver)
opens the overview, filters the job list, opens a failed job, retries it, and sees it
succeed, with a worker and the dashboard running as processes of their own.

With $TASKRUNNER_SCREENSHOTS set to a folder, it also saves the screenshots the README
shows (overview, job page, and the overview at a phone's width).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import drop_schema, need_binary, new_schema_name
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from taskrunner import JobStatus, TaskRunner

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.web.browser_app:runner"
WAIT = 20.0  # seconds any one step may take


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`taskrunner ARGS` in a process of its own, its output into `log`."""
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "taskrunner", *args],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _wait_until_serving(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the dashboard exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    pytest.fail(f"the dashboard did not answer at {url} within {WAIT}s")


async def _seed(dsn: str, schema: str) -> int:
    """A few jobs of the shop, one of them a failed charge; returns that job's id."""
    async with TaskRunner(dsn, schema=schema, strict_names=False) as runner:
        await runner.enqueue_many(
            "shop.send_receipt",
            [{"order": n, "email": f"customer{n}@example.com"} for n in range(1001, 1013)],
            queue="emails",  # by name, the runner here does not know the task's queue
        )
        await runner.enqueue("shop.build_report", "2026-12-06", queue="reports", delay=3600)
        charge = await runner.enqueue(
            "shop.charge_card",
            order=1042,
            amount_cents=12_900,
            idempotency_key="order-1042",
            queue="billing",
            max_attempts=1,
        )
        for _ in range(int(WAIT * 10)):
            job = await runner.get_job(charge.id)
            assert job is not None
            if job.status is JobStatus.FAILED:
                return charge.id
            await asyncio.sleep(0.1)
        pytest.fail("the worker did not fail the first charge in time")


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    chromium = need_binary("chromium", "Debian package chromium; the dashboard's browser test")
    driver_path = need_binary(
        "chromedriver", "Debian package chromium-driver; the dashboard's browser test"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,860")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def app_schema(pg_dsn: str) -> Iterator[str]:
    schema = new_schema_name()
    yield schema
    asyncio.run(drop_schema(pg_dsn, schema))


def test_a_browser_filters_the_jobs_opens_a_failed_one_retries_it_and_sees_it_succeed(
    browser: webdriver.Chrome, pg_dsn: str, app_schema: str, tmp_path: Path
):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "TASKRUNNER_DSN": pg_dsn,
        "BROWSER_APP_SCHEMA": app_schema,
    }
    port = _free_port()
    worker = _start(
        env, tmp_path / "worker.log", "worker", APP, "--poll-interval", "0.2", "--concurrency", "2"
    )
    try:
        failed_id = asyncio.run(_seed(pg_dsn, app_schema))
        dashboard = _start(env, tmp_path / "dashboard.log", "dashboard", APP, "--port", str(port))
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_until_serving(
                base + "/static/dashboard.css", dashboard, tmp_path / "dashboard.log"
            )
            _browse(browser, base, failed_id)
        finally:
            _stop(dashboard)
    finally:
        _stop(worker)


def _browse(browser: webdriver.Chrome, base: str, failed_id: int) -> None:
    wait = WebDriverWait(browser, WAIT, poll_frequency=0.1)
    shots = os.environ.get("TASKRUNNER_SCREENSHOTS")

    # The overview: a row per queue; the billing queue's failure counted in the last hour.
    browser.get(base + "/")
    billing = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, 'tr[data-queue="billing"]'))
    assert billing.find_element(By.CSS_SELECTOR, '[data-recent="failed"]').text == "1"
    wait.until(  # every receipt sent, seen through the live counts
        lambda b: (
            b.find_element(
                By.CSS_SELECTOR, 'tr[data-queue="emails"] [data-recent="succeeded"]'
            ).text
            == "12"
        )
    )
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(shots) / "overview.png"))

    # The job list, filtered to failed jobs through its form: the charge alone.
    browser.find_element(By.LINK_TEXT, "Jobs").click()
    wait.until(lambda b: b.find_element(By.ID, "filters"))
    Select(browser.find_element(By.NAME, "status")).select_by_value("failed")
    browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    wait.until(lambda b: "status=failed" in b.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-job-id]")
    assert [r.get_attribute("data-job-id") for r in rows] == [str(failed_id)]

    # Its page: failed, with its error; retried from there, it succeeds.
    rows[0].find_element(By.LINK_TEXT, str(failed_id)).click()
    wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "h1 .status-failed"))
    assert "card declined for order 1042" in browser.find_element(By.ID, "error").text
    if shots:  # the fold stops above the traceback, which names the machine's paths
        browser.save_screenshot(str(Path(shots) / "job.png"))
    browser.find_element(By.CSS_SELECTOR, 'button[data-action="Retry"]').click()
    wait.until(lambda b: "retry done" in b.find_element(By.CSS_SELECTOR, ".message").text)

    def succeeded(b: webdriver.Chrome) -> bool:
        b.refresh()
        return bool(b.find_elements(By.CSS_SELECTOR, "h1 .status-succeeded"))

    wait.until(succeeded)
    assert '"charged": 12900' in browser.find_element(By.ID, "result").text
    if shots:
        browser.set_window_size(400, 860)  # a phone's width
        browser.get(base + "/")
        wait.until(lambda b: b.find_element(By.CSS_SELECTOR, 'tr[data-queue="billing"]'))
        browser.save_screenshot(str(Path(shots) / "overview-phone.png"))
