"""Reading a vendor's books cheaply: from the monthly and daily balances plus at most one day of entries."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from ledger.balances import books_as_of, day_end, month_of, month_start, next_month, total
from ledger.entries import JournalEntry
from ledger.store.balances import BalanceStore
from ledger.store.entries import EntryStore
from ledger.store.vendors import VendorStore
from ledger.verification import Balances


class Books:
    def __init__(self, entries: EntryStore, balances: BalanceStore, vendors: VendorStore):
        self.entries = entries
        self.balances = balances
        self.vendors = vendors

    def current(self, vendor_id: str) -> Balances:
        """Debits and credits per account of everything posted: the sum of its months (a ledger
        whose months were never built is added up from its entries)."""
        if not self.vendors.balances_built(vendor_id):
            return self.entries.balances(vendor_id)
        return total(self.balances.monthly(vendor_id).values())

    def as_of(self, vendor_id: str, day: date) -> Balances:
        """… of every entry dated on or before `day`: the months before its month, plus its days
        through `day` (two reads of the monthly balances, whatever the size of the ledger)."""
        if not self.vendors.balances_built(vendor_id):
            return self.entries.movements_between(vendor_id, month_start("0001-01"), day_end(day))
        month = month_of(day)
        return books_as_of(self.balances.monthly(vendor_id, before_month=month).values(),
                           self.balances.days_of(vendor_id, month), day)

    def account_balance(self, vendor_id: str, account: str, before: datetime, through_id: str | None = None) -> Decimal:
        """Debits − credits on one account of the entries dated before `before` (and those dated exactly
        `before` with an id up to `through_id`): the books through the day before, plus one indexed
        range of that day's entries."""
        if not self.vendors.balances_built(vendor_id):
            return self.entries.account_movement(vendor_id, account, month_start("0001-01"), before, through_id)
        day_start = datetime.combine((before.astimezone(UTC) if before.tzinfo else before).date(), time(), UTC)
        held = self.as_of(vendor_id, day_start.date() - timedelta(days=1)).balance(account)
        return held + self.entries.account_movement(vendor_id, account, day_start, before, through_id)

    def account_page(self, vendor_id: str, account: str, start: datetime, end: datetime,
                     after: tuple[datetime, str] | None, limit: int) -> list[JournalEntry]:
        """A page of the account's entries in [start, end), in (date, id) order after the keyset `after`.

        The server sorts what a query's range holds (a multikey index gives no order), so the range
        is kept to about a page: the days' line counts say how many days hold `limit` lines, and only
        months and days with lines on the account are read (a page costs about a page of its lines,
        whatever the ledger's size)."""
        begin = start if after is None else max(start, after[0])
        if not self.vendors.balances_built(vendor_id):
            return self.entries.account_window(vendor_id, account, begin, end, after, limit)
        found: list[JournalEntry] = []
        for month, balances in self.balances.monthly(vendor_id).items():
            if (account not in balances.debits and account not in balances.credits) \
                    or month_start(next_month(month)) <= begin or month_start(month) >= end:
                continue
            window_start, pending = max(begin, month_start(month)), 0
            for day, lines in self.balances.lines_by_day(vendor_id, month, account).items():
                window_end = min(end, day_end(date.fromisoformat(day)))
                if window_end <= window_start:
                    continue
                pending += lines
                if pending >= limit - len(found) or window_end >= end:
                    found += self.entries.account_window(vendor_id, account, window_start, window_end, after,
                                                         limit - len(found))
                    if len(found) >= limit or window_end >= end:
                        return found
                    window_start, pending = window_end, 0
            if pending:
                found += self.entries.account_window(vendor_id, account, window_start,
                                                     min(end, month_start(next_month(month))), after,
                                                     limit - len(found))
                if len(found) >= limit:
                    return found
        return found
