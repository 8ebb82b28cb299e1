"""Reading a vendor's books cheaply: from the monthly balances plus at most one month of entries."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from ledger.balances import day_end, month_of, month_start, next_month, total
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
        """… of every entry dated on or before `day`: the months before its month, plus the
        entries of its month up to it (one indexed range)."""
        if not self.vendors.balances_built(vendor_id):
            return self.entries.movements_between(vendor_id, month_start("0001-01"), day_end(day))
        month = month_of(day)
        before = total(self.balances.monthly(vendor_id, before_month=month).values())
        return before.plus(self.entries.movements_between(vendor_id, month_start(month), day_end(day)))

    def account_balance(self, vendor_id: str, account: str, before: datetime, through_id: str | None = None) -> Decimal:
        """Debits − credits on one account of the entries dated before `before` (and those dated exactly
        `before` with an id up to `through_id`): the months before its month, plus one indexed range."""
        if not self.vendors.balances_built(vendor_id):
            return self.entries.account_movement(vendor_id, account, month_start("0001-01"), before, through_id)
        month = month_of(before)
        held = total(self.balances.monthly(vendor_id, before_month=month).values()).balance(account)
        return held + self.entries.account_movement(vendor_id, account, month_start(month), before, through_id)

    def account_page(self, vendor_id: str, account: str, start: datetime, end: datetime,
                     after: tuple[datetime, str] | None, limit: int) -> list[JournalEntry]:
        """A page of the account's entries in [start, end), in (date, id) order after the keyset `after`:
        read a month at a time from the cursor, only the months the monthly balances say touch the
        account (a page costs about a month of its lines, whatever the ledger's size)."""
        begin = start if after is None else max(start, after[0])
        windows = [(begin, end)]
        if self.vendors.balances_built(vendor_id):
            windows = [(max(begin, month_start(month)), min(end, month_start(next_month(month))))
                       for month, balances in self.balances.monthly(vendor_id).items()
                       if (account in balances.debits or account in balances.credits)
                       and month_start(month) < end and month_start(next_month(month)) > begin]
        found: list[JournalEntry] = []
        for window_start, window_end in windows:
            if len(found) >= limit:
                break
            found += self.entries.account_window(vendor_id, account, window_start, window_end, after,
                                                 limit - len(found))
        return found
