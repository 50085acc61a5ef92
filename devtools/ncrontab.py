"""NCRONTAB, the schedule language of the Functions host's timer triggers: six fields, ``{second} {minute}
{hour} {day} {month} {day-of-week}`` (``0 */15 * * * *``: every 15 minutes), each ``*``, a value, a range
``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of those; months and days of the week also by their
English names (``Jan``, ``Mon``); day of week 0-6 from Sunday. Times are UTC, as the host's default.

As NCrontab (the host's library) does, a restricted day of month and a restricted day of week must both
match (cron's own rule is either)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# name, lowest, highest, names (their index + lowest is the value)
FIELDS = (("second", 0, 59, ()), ("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day", 1, 31, ()),
          ("month", 1, 12, MONTHS), ("day-of-week", 0, 6, DAYS))
SEARCH_YEARS = 8  # a schedule that matches no instant in this long (30 February) never fires


class CronError(ValueError):
    """An expression the host would refuse to index; the message names the field at fault."""


@dataclass(frozen=True)
class Schedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    def matches(self, when: datetime) -> bool:
        return (when.second in self.seconds and when.minute in self.minutes and when.hour in self.hours
                and self._day(when))

    def _day(self, when: datetime) -> bool:
        return (when.month in self.months and when.day in self.days
                and (when.isoweekday() % 7) in self.weekdays)

    def next_after(self, when: datetime) -> datetime | None:
        """The first instant strictly after ``when`` (whole seconds) the schedule fires at; None if none comes
        within SEARCH_YEARS. Day by day, then the day's first matching time: fast for any schedule."""
        start = when.replace(microsecond=0) + timedelta(seconds=1)
        day = start.replace(hour=0, minute=0, second=0)
        end = day + timedelta(days=366 * SEARCH_YEARS)
        while day < end:
            if self._day(day):
                today = day == start.replace(hour=0, minute=0, second=0)
                for hour in sorted(h for h in self.hours if not today or h >= start.hour):
                    for minute in sorted(m for m in self.minutes if not today or (hour, m) >= (start.hour, start.minute)):
                        for second in sorted(self.seconds):
                            at = day.replace(hour=hour, minute=minute, second=second)
                            if at >= start:
                                return at
            day += timedelta(days=1)
        return None


def parse(expression: str) -> Schedule:
    parts = expression.split()
    if len(parts) != 6:
        raise CronError(f"{expression!r}: an NCRONTAB expression has 6 fields ({{second}} {{minute}} {{hour}} "
                        f"{{day}} {{month}} {{day-of-week}}), not {len(parts)}")
    values = [_field(part, *spec, expression) for part, spec in zip(parts, FIELDS, strict=True)]
    return Schedule(expression, *values)


def _field(text: str, name: str, low: int, high: int, names: tuple[str, ...], expression: str) -> frozenset[int]:
    def bad(why: str) -> CronError:
        return CronError(f"{expression!r}: {name} field {text!r}: {why}")

    def number(token: str) -> int:
        if token.lower() in names:
            return names.index(token.lower()) + low
        if not token.isdigit():
            raise bad(f"{token!r} is not a number" + (f" or a name ({', '.join(names)})" if names else ""))
        value = int(token)
        if not low <= value <= high:
            raise bad(f"{value} is outside {low}-{high}")
        return value

    out: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise bad(f"step {step_text!r} must be a whole number above 0")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = number(a), number(b)
            if first > last:
                raise bad(f"range {span!r} runs backwards")
        else:
            first = number(span)
            last = high if step_text else first  # "5/15": from 5, every 15
        out.update(range(first, last + 1, step))
    return frozenset(out)
