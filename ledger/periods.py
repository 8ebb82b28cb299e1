"""Closed periods (SPEC §9): once a vendor's books are closed through a date, nothing is
dated on or before it. An entry that would be — a new or changed document dated in the
closed period, or a reversal of one of its entries — is dated the day after the close
date (its document keeps its own date in `source.documentDate`) and counted as late.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


class PeriodRefused(ValueError):
    """A close or reopen that cannot be done; the message says why."""


@dataclass(frozen=True)
class PeriodEvent:
    """One close or reopen, in the order they happened."""

    action: str  # "close" | "reopen"
    through: date


def open_from(closed_through: date | None) -> datetime | None:
    """The first moment an entry may be dated at: the day after the close date."""
    if closed_through is None:
        return None
    return datetime.combine(closed_through + timedelta(days=1), time(), UTC)


def booking_date(moment: datetime, closed_through: date | None) -> datetime:
    """When an entry meant for `moment` is booked: then, or the day after the close date."""
    first_open = open_from(closed_through)
    return first_open if first_open is not None and moment < first_open else moment


def check_close(through: date, current: date | None, today: date) -> None:
    if through > today:
        raise PeriodRefused(f"cannot close through {through}: it is after today ({today})")
    if current is not None and through < current:
        raise PeriodRefused(f"cannot close through {through}: the books are closed through {current} already; "
                            "reopen first to move the close date back")


def check_reopen(through: date, current: date | None, reason: str) -> None:
    if not reason or not reason.strip():
        raise PeriodRefused("a reopen needs a reason (it is kept with the books' history)")
    if current is None:
        raise PeriodRefused("the books are not closed: there is nothing to reopen")
    if through >= current:
        raise PeriodRefused(f"reopening moves the close date back: {through} is not before the current close "
                            f"date {current}")


def effective_closes(events: Iterable[PeriodEvent]) -> list[date]:
    """The close dates still in force: every close not undone by a later reopen to before it, and
    the date each reopen moved the close back to (the books stay closed through it)."""
    closes: list[date] = []
    for event in events:
        if event.action == "reopen":
            closes = [through for through in closes if through < event.through]
        closes.append(event.through)
    return sorted(set(closes))
