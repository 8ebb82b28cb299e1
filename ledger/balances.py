"""Monthly movements: what reading the books as of any date is built from (SPEC §7).

Every sync adds what it writes to the debits and credits of each account in the month of
each entry's date, in the same transaction as the entries (`ledger_balances`: vendor,
month, account → debit and credit sums). The books as of a day are then the months
before it plus at most one month of entries: O(months), never O(entries).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from ledger.entries import ZERO, JournalEntry
from ledger.verification import Balances


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


def movements(entries: Iterable[JournalEntry]) -> dict[str, Balances]:
    """Debits and credits per account per month of these entries."""
    debits: dict[str, dict[str, Decimal]] = {}
    credits: dict[str, dict[str, Decimal]] = {}
    for entry in entries:
        month = month_of(entry.date)
        month_debits = debits.setdefault(month, {})
        month_credits = credits.setdefault(month, {})
        for line in entry.lines:
            month_debits[line.account] = month_debits.get(line.account, ZERO) + line.debit
            month_credits[line.account] = month_credits.get(line.account, ZERO) + line.credit
    return {month: Balances(debits=debits[month], credits=credits[month]) for month in sorted(debits)}


def total(months: Iterable[Balances]) -> Balances:
    result = Balances(debits={}, credits={})
    for balances in months:
        result = result.plus(balances)
    return result


def months_before(monthly: Mapping[str, Balances], day: date) -> Balances:
    """Every month that ends before `day`'s month."""
    this_month = month_of(day)
    return total(balances for month, balances in monthly.items() if month < this_month)
