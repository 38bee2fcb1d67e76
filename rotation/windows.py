"""Rotation windows: when unattended rotations may start (``ROTATION_WINDOW``, UTC), and how a
night's due tenants are spread over one. Pure functions of their arguments: no clock, no I/O.

A window opens on some weekdays at ``start`` and stays open for ``length`` (an end at or before
the start crosses midnight: the occurrence that opens Friday 22:00 closes Saturday 02:00, and it
is Friday's). Occurrences are half-open, [opens, closes): at the closing minute it is shut.

- ``next_start(now)``: ``now`` inside an occurrence, else the next opening.
- ``slots(n, now)``: ``n`` start times evenly over the rest of the current occurrence, or over
  the whole of the next one: tenant ``i`` starts at ``begin + i * (closes - begin) / n``, where
  ``begin`` is ``now`` inside the window and the opening outside it. The first starts at
  ``begin``, the last one gap before the close.
- ``must_not_wait(expires_on, closes)``: the safety rule. A secret that expires before the close
  of the window it would wait for, plus ``URGENT_MARGIN``, does not wait: it would leave no time
  to repair a failed run before Nylas can no longer sign users in.

The grammar is ``core.settings.window_parts`` (settings are checked when read, and ``core`` may not
import this module); ``parse`` makes a ``Window`` of its parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.clock import to_utc
from core.settings import WEEKDAYS, window_parts

DAY_MINUTES = 24 * 60
# A secret that would expire within this of the window's close is rotated at once instead. A day
# leaves a failed run its queue retries, the poison alert and a person's reaction, and the next
# nightly scan (which, a day on, finds the tenant urgent if the window is still far away).
URGENT_MARGIN = timedelta(days=1)


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # weekdays an occurrence opens on (Monday 0)
    start: int  # minutes after 00:00 UTC
    end: int  # minutes after 00:00 UTC (24:00 is 1440); at or before ``start``: crosses midnight

    def __post_init__(self) -> None:
        if not self.days or not self.days <= set(range(7)):
            raise ValueError(f"a window opens on at least one weekday (0-6), got {sorted(self.days)}")
        if not (0 <= self.start < DAY_MINUTES and 0 <= self.end <= DAY_MINUTES and self.start != self.end):
            raise ValueError(f"window hours out of range: {self.start}-{self.end} minutes")

    @property
    def length(self) -> timedelta:
        """How long one occurrence stays open (more than 0, at most a day)."""
        return timedelta(minutes=(self.end - self.start) % DAY_MINUTES or DAY_MINUTES)

    def occurrence(self, now: datetime) -> tuple[datetime, datetime]:
        """(opens, closes) of the occurrence ``now`` is in, or else of the next one."""
        now = to_utc(now)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        # Yesterday's occurrence may still be open (it crossed midnight); a weekly one is at most 7 days on.
        for offset in range(-1, 8):
            day = midnight + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opens = day + timedelta(minutes=self.start)
            closes = opens + self.length
            if closes > now:
                return opens, closes
        raise AssertionError("unreachable: a window opens at least once a week")

    def is_open(self, now: datetime) -> bool:
        opens, _ = self.occurrence(now)
        return opens <= to_utc(now)

    def next_start(self, now: datetime) -> datetime:
        """When a rotation held for the window may start: ``now`` if it is open, else its next opening."""
        opens, _ = self.occurrence(now)
        return max(opens, to_utc(now))

    def slots(self, n: int, now: datetime) -> list[datetime]:
        """``n`` start times spread evenly over the rest of the open occurrence, or over the next one."""
        if n < 0:
            raise ValueError(f"n must be 0 or more, got {n}")
        _, closes = self.occurrence(now)
        begin = self.next_start(now)
        gap = (closes - begin) / n if n else timedelta(0)
        return [begin + i * gap for i in range(n)]

    def describe(self) -> str:
        """The canonical form, e.g. ``Mon-Fri 02:00-04:00 UTC`` (the days are when it opens)."""
        return f"{_days_text(self.days)} {_hhmm(self.start)}-{_hhmm(self.end)} UTC"


def parse(text: str) -> Window | None:
    """``ROTATION_WINDOW`` as a ``Window``; None when empty (no window: rotations start when queued).
    A malformed value raises ``core.settings.SettingsError`` naming the setting."""
    parts = window_parts("ROTATION_WINDOW", text)
    return None if parts is None else Window(*parts)


def must_not_wait(expires_on: datetime | None, closes: datetime, margin: timedelta = URGENT_MARGIN) -> bool:
    """True when a secret expiring at ``expires_on`` must not wait for a window that closes at ``closes``:
    it expires before the close plus ``margin`` (an expired one included). No expiry: it may wait."""
    return expires_on is not None and to_utc(expires_on) < to_utc(closes) + margin


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _days_text(days: frozenset[int]) -> str:
    if len(days) == 7:
        return "daily"
    names = [WEEKDAYS[d].title() for d in range(7)]
    runs: list[tuple[int, int]] = []
    for d in sorted(days):
        if runs and runs[-1][1] == d - 1:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    if len(runs) > 1 and runs[0][0] == 0 and runs[-1][1] == 6:  # a run through Sunday into Monday: Fri-Mon
        runs = [(runs[-1][0], runs[0][1]), *runs[1:-1]]
    parts = []
    for first, last in runs:
        span = (last - first) % 7
        if span == 0:
            parts.append(names[first])
        elif span == 1:
            parts.append(f"{names[first]},{names[last]}")
        else:
            parts.append(f"{names[first]}-{names[last]}")
    return ",".join(parts)


__all__ = ["URGENT_MARGIN", "Window", "must_not_wait", "parse"]
