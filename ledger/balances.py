"""Monthly movements: what reading the books as of any date is built from (SPEC §7).

Every sync adds what it writes to the debits and credits of each account in the month and
on the day of each entry's date, in the same transaction as the entries (`ledger_balances`:
vendor, month, account → debit and credit sums, and the same per day of the month). The
books as of a day are then the months before it plus that month's days through it:
O(months), never O(entries).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from ledger.entries import ZERO, JournalEntry
from ledger.verification import Balances, describe_differences


def month_of(moment: datetime | date) -> str:
    """`2026-03` for any moment in March 2026 (UTC)."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return f"{moment.year:04d}-{moment.month:02d}"


def month_start(month: str) -> datetime:
    year, number = (int(part) for part in month.split("-"))
    return datetime(year, number, 1, tzinfo=UTC)


def next_month(month: str) -> str:
    """`2026-04` after `2026-03`, `2027-01` after `2026-12`."""
    year, number = (int(part) for part in month.split("-"))
    return f"{year + number // 12:04d}-{number % 12 + 1:02d}"


def day_end(day: date) -> datetime:
    """The first moment after `day` (entries dated before it are dated on or before `day`)."""
    return datetime.combine(day + timedelta(days=1), time(), UTC)


def day_of(moment: datetime | date) -> str:
    """`2026-03-07` for any moment of 7 March 2026 (UTC)."""
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC) if moment.tzinfo else moment
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"


def daily_movements(entries: Iterable[JournalEntry]) -> dict[str, Balances]:
    """Debits and credits per account per day (`YYYY-MM-DD`) of these entries."""
    debits: dict[str, dict[str, Decimal]] = {}
    credits: dict[str, dict[str, Decimal]] = {}
    for entry in entries:
        day = day_of(entry.date)
        day_debits = debits.setdefault(day, {})
        day_credits = credits.setdefault(day, {})
        for line in entry.lines:
            day_debits[line.account] = day_debits.get(line.account, ZERO) + line.debit
            day_credits[line.account] = day_credits.get(line.account, ZERO) + line.credit
    return {day: Balances(debits=debits[day], credits=credits[day]) for day in sorted(debits)}


LineCounts = dict[str, dict[str, int]]
"""How many lines each day has on each account (`YYYY-MM-DD` → account → count): where an account
ledger's page starts and ends is found from these, not by sorting a month of its lines."""


def line_counts(entries: Iterable[JournalEntry]) -> LineCounts:
    counts: LineCounts = {}
    for entry in entries:
        day = counts.setdefault(day_of(entry.date), {})
        for line in entry.lines:
            day[line.account] = day.get(line.account, 0) + 1
    return counts


def by_month(daily: Mapping[str, Balances]) -> dict[str, Balances]:
    """Days added up into their months."""
    months: dict[str, list[Balances]] = {}
    for day, balances in sorted(daily.items()):
        months.setdefault(day[:7], []).append(balances)
    return {month: total(days) for month, days in months.items()}


def total(months: Iterable[Balances]) -> Balances:
    result = Balances(debits={}, credits={})
    for balances in months:
        result = result.plus(balances)
    return result


def books_as_of(months_before: Iterable[Balances], days_of_month: Mapping[str, Balances], day: date) -> Balances:
    """The books at the end of `day`: the months before its month, plus its month's days through it."""
    through = day_of(day)
    return total(months_before).plus(total(balances for key, balances in days_of_month.items() if key <= through))


def line_count_difference(held: LineCounts, expected: LineCounts) -> str:
    """The first day whose line counts differ, with the accounts ("" when none do)."""
    for day in sorted(set(held) | set(expected)):
        accounts = sorted(account for account in set(held.get(day, {})) | set(expected.get(day, {}))
                          if held.get(day, {}).get(account, 0) != expected.get(day, {}).get(account, 0))
        if accounts:
            return f"{day}: line counts of {', '.join(accounts)}"
    return ""


def daily_difference(held: Mapping[str, Balances], expected: Mapping[str, Balances]) -> str:
    """The first day whose movements differ, with the accounts ("" when none do)."""
    empty = Balances(debits={}, credits={})
    for day in sorted(set(held) | set(expected)):
        mismatch = describe_differences(held.get(day, empty), expected.get(day, empty))
        if mismatch:
            return f"{day}: {mismatch}"
    return ""
