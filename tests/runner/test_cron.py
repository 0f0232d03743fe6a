"""The tick function: when cron and interval ticks fall (time zones and daylight-saving
changes included), and which due ticks a worker enqueues under each missed policy."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskrunner import InvalidSchedule
from taskrunner.runner.cron import MAX_MISSED, Ticks, plan_ticks, ticks_of

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=BERLIN, fold=fold).astimezone(UTC)  # type: ignore[misc]


def ticks_between(ticks: Ticks, start: datetime, end: datetime) -> list[datetime]:
    found, moment = [], start
    while (moment := ticks.after(moment)) <= end:
        found.append(moment)
    return found


# ---- daylight-saving changes (Europe/Berlin: 2026-03-29 02:00 -> 03:00 CEST,
# ---- 2026-10-25 03:00 CEST -> 02:00 CET) -------------------------------------------


def test_a_daily_time_that_spring_skips_runs_once_at_the_first_minute_after_the_change():
    ticks = ticks_of(cron="30 2 * * *", every=None, timezone="Europe/Berlin")
    found = ticks_between(ticks, berlin(2026, 3, 28, 12), berlin(2026, 3, 30, 12))
    assert found == [berlin(2026, 3, 29, 3, 0), berlin(2026, 3, 30, 2, 30)]


def test_a_daily_time_that_autumn_repeats_runs_once():
    ticks = ticks_of(cron="30 2 * * *", every=None, timezone="Europe/Berlin")
    found = ticks_between(ticks, berlin(2026, 10, 24, 12), berlin(2026, 10, 26, 12))
    assert found == [berlin(2026, 10, 25, 2, 30), berlin(2026, 10, 26, 2, 30)]


def test_an_hourly_schedule_ticks_every_real_hour_across_both_changes():
    ticks = ticks_of(cron="0 * * * *", every=None, timezone="Europe/Berlin")
    spring = ticks_between(ticks, berlin(2026, 3, 29, 0, 0), berlin(2026, 3, 30, 0, 0))
    autumn = ticks_between(ticks, berlin(2026, 10, 25, 0, 0), berlin(2026, 10, 26, 0, 0))
    assert len(spring) == 23  # the day has 23 hours
    assert len(autumn) == 25  # and this one 25, the repeated 02:00 included
    for day in (spring, autumn):
        assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(day))


def test_a_cron_time_is_read_in_its_zone():
    ticks = ticks_of(cron="0 3 * * *", every=None, timezone="Europe/Berlin")
    winter = ticks.after(datetime(2026, 1, 10, tzinfo=UTC))
    summer = ticks.after(datetime(2026, 7, 10, tzinfo=UTC))
    assert winter == datetime(2026, 1, 10, 2, 0, tzinfo=UTC)
    assert summer == datetime(2026, 7, 10, 1, 0, tzinfo=UTC)


def test_the_tick_after_a_moment_in_a_repeated_hour_is_after_it():
    ticks = ticks_of(cron="30 2 * * *", every=None, timezone="Europe/Berlin")
    second_pass = berlin(2026, 10, 25, 2, 15, fold=1)  # after 02:30 CEST has passed
    assert ticks.after(second_pass) == berlin(2026, 10, 26, 2, 30)


# ---- intervals ---------------------------------------------------------------------


def test_interval_ticks_are_multiples_of_every_since_the_epoch():
    ticks = ticks_of(cron=None, every=timedelta(minutes=5), timezone="UTC")
    assert ticks.after(datetime(2026, 5, 1, 10, 7, 13, tzinfo=UTC)) == datetime(
        2026, 5, 1, 10, 10, tzinfo=UTC
    )
    seven = ticks_of(cron=None, every=timedelta(seconds=7), timezone="UTC")
    tick = seven.after(datetime(2026, 5, 1, tzinfo=UTC))
    assert (tick - datetime(1970, 1, 1, tzinfo=UTC)) % timedelta(seconds=7) == timedelta(0)


moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)
rules = st.one_of(
    st.sampled_from(
        ["30 2 * * *", "0 * * * *", "*/15 * * * *", "0 3 * * 0", "5 1,2,3 * * 1-5"]
    ).map(lambda cron: ticks_of(cron=cron, every=None, timezone="Europe/Berlin")),
    st.integers(1, 90_000).map(
        lambda s: ticks_of(cron=None, every=timedelta(seconds=s), timezone="UTC")
    ),
)


@settings(max_examples=300, deadline=None)
@given(rule=rules, moment=moments)
def test_after_is_the_next_tick_and_back_from_the_one_before(rule: Ticks, moment: datetime):
    following = rule.after(moment)
    assert following > moment
    previous = next(rule.back_from(moment))
    assert previous <= moment
    assert rule.after(previous) == following  # nothing lies between the two
    assert next(rule.back_from(following)) == following


# ---- what is wrong writes nothing (the database side is in test_schedules.py) -----


@pytest.mark.parametrize(
    ("cron", "every", "timezone"),
    [
        ("61 * * * *", None, "UTC"),
        ("* * * *", None, "UTC"),
        ("0 0 * * * *", None, "UTC"),
        ("every day", None, "UTC"),
        ("0 0 31 2 *", None, "UTC"),
        ("0 3 * * *", None, "Mars/Olympus_Mons"),
        ("0 3 * * *", None, "../../etc/passwd"),
        (None, timedelta(milliseconds=500), "UTC"),
        (None, None, "UTC"),
        ("0 3 * * *", timedelta(minutes=1), "UTC"),
    ],
)
def test_a_bad_definition_is_an_invalid_schedule(cron, every, timezone):
    with pytest.raises(InvalidSchedule):
        ticks_of(cron=cron, every=every, timezone=timezone)


# ---- missed ticks -------------------------------------------------------------------

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
EVERY_SECOND = ticks_of(cron=None, every=timedelta(seconds=1), timezone="UTC")


def seconds(*offsets: int) -> list[datetime]:
    return [T0 + timedelta(seconds=s) for s in offsets]


def test_nothing_is_enqueued_before_the_next_tick():
    plan = plan_ticks(EVERY_SECOND, T0, T0 - timedelta(seconds=0.5), "all", 5.0)
    assert plan.enqueue == []
    assert plan.next_run_at == T0


@pytest.mark.parametrize("missed", ["latest", "skip", "all"])
def test_ticks_that_are_late_by_less_than_the_grace_are_all_enqueued(missed):
    now = T0 + timedelta(seconds=3.5)
    plan = plan_ticks(EVERY_SECOND, T0, now, missed, 5.0)
    assert plan.enqueue == seconds(0, 1, 2, 3)
    assert plan.next_run_at == T0 + timedelta(seconds=4)


def test_latest_enqueues_the_most_recent_missed_tick_once():
    now = T0 + timedelta(seconds=10.5)  # ticks 0..5 are missed, 6..10 on time
    plan = plan_ticks(EVERY_SECOND, T0, now, "latest", 5.0)
    assert plan.enqueue == seconds(5, 6, 7, 8, 9, 10)


def test_skip_enqueues_no_missed_tick():
    now = T0 + timedelta(seconds=10.5)
    plan = plan_ticks(EVERY_SECOND, T0, now, "skip", 5.0)
    assert plan.enqueue == seconds(6, 7, 8, 9, 10)
    assert plan.next_run_at == T0 + timedelta(seconds=11)


def test_all_enqueues_every_missed_tick():
    now = T0 + timedelta(seconds=10.5)
    plan = plan_ticks(EVERY_SECOND, T0, now, "all", 5.0)
    assert plan.enqueue == seconds(*range(11))


def test_all_enqueues_at_most_the_most_recent_thousand_missed_ticks():
    now = T0 + timedelta(hours=2, seconds=0.5)  # every tick is missed, 7,201 of them
    plan = plan_ticks(EVERY_SECOND, T0, now, "all", 0.0)
    assert len(plan.enqueue) == MAX_MISSED
    assert plan.enqueue[-1] == T0 + timedelta(hours=2)
    assert plan.enqueue == sorted(plan.enqueue)


def test_a_daily_schedule_missed_for_a_week_runs_once_under_latest():
    daily = ticks_of(cron="0 3 * * *", every=None, timezone="Europe/Berlin")
    first = daily.after(T0)
    plan = plan_ticks(daily, first, first + timedelta(days=7, hours=1), "latest", 5.0)
    assert plan.enqueue == [first + timedelta(days=7)]
    assert plan.next_run_at == first + timedelta(days=8)
