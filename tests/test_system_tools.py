"""Tests that need a system program skip where it is missing, except in CI."""

from __future__ import annotations

import pytest
from conftest import need_binary


def test_a_missing_system_program_skips_the_test_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKRUNNER_REQUIRE_SYSTEM_TOOLS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-program is not installed"):
        need_binary("no-such-program", "for this test")


def test_a_missing_system_program_fails_the_test_where_every_test_must_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKRUNNER_REQUIRE_SYSTEM_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception, match="makes this a failure"):
        need_binary("no-such-program", "for this test")
