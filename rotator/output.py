"""Plain-text output for people: aligned tables, dates, short ids. No colour, no dependencies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from core.clock import to_utc


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, indent: str = "") -> str:
    """An aligned table: a header, a rule, one line per row. Cells are str()-ed; None is '-'."""
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(values: Sequence[str]) -> str:
        return (indent + "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return date(value)
    return str(value)


def date(value: datetime | None) -> str:
    return to_utc(value).strftime("%Y-%m-%d") if value else "-"


def stamp(value: datetime | None) -> str:
    return to_utc(value).strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def short(identifier: str, keep: int = 8) -> str:
    """The first characters of a GUID: enough to tell key ids apart on a screen."""
    return identifier if len(identifier) <= keep + 1 else identifier[:keep] + "…"


def days_left(expires: datetime | None, now: datetime) -> str:
    if expires is None:
        return "-"
    days = (to_utc(expires) - now).days
    return f"{days} d" if days >= 0 else f"expired {-days} d ago"
