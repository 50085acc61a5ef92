"""devtools/ncrontab.py: the next occurrence of the schedules the app's timers declare (infra's defaults), the
forms NCRONTAB allows, and an expression the host would not index refused naming its field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devtools.ncrontab import CronError, parse


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("expression", "after", "expected"), [
    ("0 */15 * * * *", "2026-11-25T10:07:30", "2026-11-25T10:15:00"),  # VMKEEPER_SCHEDULE's default
    ("0 */15 * * * *", "2026-11-25T10:15:00", "2026-11-25T10:30:00"),  # strictly after
    ("0 */15 * * * *", "2026-11-25T23:59:59.5", "2026-11-26T00:00:00"),
    ("0 30 3 * * *", "2026-11-25T03:30:00", "2026-11-26T03:30:00"),  # retention: tomorrow's
    ("0 10,40 * * * *", "2026-11-25T10:11:00", "2026-11-25T10:40:00"),  # replication sweep
    ("0 0 3 * * Mon", "2026-11-25T00:00:00", "2026-11-30T03:00:00"),  # a Wednesday → Monday
    ("0 0 0 13 * 5", "2026-01-01T00:00:00", "2026-02-13T00:00:00"),  # day AND weekday: Friday the 13th
    ("*/20 * * * * *", "2026-11-25T10:00:41", "2026-11-25T10:01:00"),
    ("5/20 * * * * *", "2026-11-25T10:00:26", "2026-11-25T10:00:45"),  # from 5, every 20
    ("0 0 9-17/4 * Jan-Mar *", "2026-11-25T00:00:00", "2027-01-01T09:00:00"),
    ("0 0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
])
def test_next_occurrence(expression, after, expected):
    assert parse(expression).next_after(at(after)) == at(expected)


def test_a_schedule_that_never_comes_has_no_next_occurrence():
    assert parse("0 0 0 30 2 *").next_after(at("2026-01-01T00:00:00")) is None


@pytest.mark.parametrize(("expression", "named"), [
    ("0 */15 * * *", "6 fields"),
    ("61 * * * * *", "second field '61'"),
    ("0 0 25 * * *", "hour field '25'"),
    ("0 */0 * * * *", "minute field '*/0'"),
    ("0 0 0 * Foo *", "month field 'Foo'"),
    ("0 0 0 * * 9-1", "day-of-week field '9-1'"),
    ("0 0 0 20-10 * *", "runs backwards"),
])
def test_an_expression_the_host_would_refuse_names_its_field(expression, named):
    with pytest.raises(CronError, match=named.replace("*", r"\*")):
        parse(expression)
