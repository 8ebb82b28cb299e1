"""Movements per account by month (`ledger_balances`) and by day (`ledger_balance_days`).

`ledger_balances`: `{_id: "<vendor>|<YYYY-MM>", vendorId, month, accounts: {<key>: {debit, credit}}}`,
small, so the books now or as of a month's start read a dozen small documents.
`ledger_balance_days`: `{_id: "<vendor>|<YYYY-MM>", vendorId, month, days: {<DD>: {<key>: {debit, credit,
lines}}}}`, read one month at a time (the books through a day, where an account's lines are). Kept
apart because the server decodes a whole document before it projects: days held in the month
documents made every trial balance pay for every day. Both are kept in the same transaction as the
entries they sum (`ledger.balances`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection

from ledger.balances import LineCounts, by_month
from ledger.parsing import to_decimal128
from ledger.store.codec import cents
from ledger.verification import Balances


class HeldDays:
    """The days of the months one writer wrote last, as it wrote them, so its next batch need not
    read them back. Only the writer holding the chain's head writes them (`write_batch` moves the
    head in the same transaction, and fails if another moved it), so what it wrote last is what the
    database holds. Updated only once a batch has committed."""

    def __init__(self) -> None:
        self.months: dict[str, dict[str, Any]] = {}


class BalanceStore:
    def __init__(self, months: Collection, days: Collection):
        self.months = months
        self.days = days

    def ensure_indexes(self) -> None:
        for collection in (self.months, self.days):
            collection.create_index([("vendorId", ASCENDING), ("month", ASCENDING)], name="by_vendor_month")

    def add(self, vendor_id: str, daily: Mapping[str, Balances], lines: LineCounts,
            session: ClientSession | None = None, held: HeldDays | None = None) -> dict[str, dict[str, Any]]:
        """Add a batch's movements by day: an `$inc` per month it touches on the months' totals, and
        each touched month's days added to and written back whole (in the batch's transaction, so a
        concurrent writer conflicts and retries: `$inc` on thousands of day paths cost the server
        three times as much as rewriting the documents). The days are read, or taken from `held`
        (what this writer wrote last); the days as written, by month, are returned for it."""
        totals: dict[str, dict[str, Decimal]] = {}
        for day, balances in daily.items():
            month = totals.setdefault(day[:7], {})
            for side, amounts in (("debit", balances.debits), ("credit", balances.credits)):
                for account, amount in amounts.items():
                    month[f"accounts.{account}.{side}"] = month.get(f"accounts.{account}.{side}", _ZERO) + amount
        if not totals:
            return {}
        self.months.bulk_write([_upsert(vendor_id, month, {path: to_decimal128(amount)
                                                           for path, amount in changes.items()})
                                for month, changes in totals.items()], ordered=True, session=session)
        known = held.months if held is not None else {}
        days = {month: dict(known[month]) for month in totals if month in known}  # copies: `held` stays as it was
        unread = [f"{vendor_id}|{month}" for month in totals if month not in known]
        if unread:
            days.update((doc["month"], doc.get("days") or {}) for doc in self.days.find(
                {"_id": {"$in": unread}}, {"month": 1, "days": 1}, session=session))
        for day, balances in daily.items():
            of_month = days.setdefault(day[:7], {})
            accounts = of_month[day[8:]] = dict(of_month.get(day[8:]) or {})
            counts = lines.get(day, {})
            for account in set(balances.debits) | set(balances.credits) | set(counts):
                value = accounts.get(account) or {}
                accounts[account] = {
                    "debit": to_decimal128(cents(value.get("debit", 0)) + balances.debits.get(account, _ZERO)),
                    "credit": to_decimal128(cents(value.get("credit", 0)) + balances.credits.get(account, _ZERO)),
                    "lines": int(value.get("lines", 0)) + counts.get(account, 0)}
        self.days.bulk_write([ReplaceOne({"_id": f"{vendor_id}|{month}"},
                                         {"vendorId": vendor_id, "month": month, "days": days[month]}, upsert=True)
                              for month in totals], ordered=True, session=session)
        return {month: days[month] for month in totals}

    def monthly(self, vendor_id: str, before_month: str | None = None) -> dict[str, Balances]:
        """The vendor's movements by month (only the months before `before_month`, if given)."""
        query: dict[str, Any] = {"vendorId": vendor_id}
        if before_month is not None:
            query["month"] = {"$lt": before_month}
        return {doc["month"]: _balances(doc.get("accounts") or {})
                for doc in self.months.find(query).sort("month", ASCENDING)}

    def days_of(self, vendor_id: str, month: str) -> dict[str, Balances]:
        """The movements of each day of one month (`YYYY-MM-DD` → balances)."""
        return {day: _balances(accounts) for day, accounts in self._days_of_month(vendor_id, month)}

    def lines_by_day(self, vendor_id: str, month: str, account: str) -> dict[str, int]:
        """How many lines each day of one month has on `account` (`YYYY-MM-DD` → count; days without none)."""
        return {day: int(accounts[account].get("lines", 0))
                for day, accounts in self._days_of_month(vendor_id, month) if account in accounts}

    def daily(self, vendor_id: str) -> tuple[dict[str, Balances], LineCounts]:
        """Every day's movements and line counts (the full sync's check against the entries)."""
        movements: dict[str, Balances] = {}
        lines: LineCounts = {}
        for doc in self.days.find({"vendorId": vendor_id}):
            for day, accounts in (doc.get("days") or {}).items():
                key = f"{doc['month']}-{day}"
                movements[key] = _balances(accounts)
                lines[key] = {account: int(value.get("lines", 0)) for account, value in accounts.items()}
        return movements, lines

    def _days_of_month(self, vendor_id: str, month: str) -> list[tuple[str, Mapping[str, Mapping[str, Any]]]]:
        """One month's days in date order (`YYYY-MM-DD`, accounts), read in one index lookup."""
        doc = self.days.find_one({"_id": f"{vendor_id}|{month}"}) or {}
        return [(f"{month}-{day}", accounts) for day, accounts in sorted((doc.get("days") or {}).items())]

    def replace(self, vendor_id: str, daily: Mapping[str, Balances], lines: LineCounts) -> None:
        """Rebuild a vendor's months and days from what the entries say (a full sync that found them
        wrong, or a ledger written before this layout)."""
        months = by_month(daily)
        for collection, documents in (
                (self.months, {month: {"accounts": _accounts(balances)} for month, balances in months.items()}),
                (self.days, {month: {"days": {day[8:]: _accounts(moved, lines.get(day, {}))
                                              for day, moved in daily.items() if day[:7] == month}}
                             for month in months})):
            collection.delete_many({"vendorId": vendor_id, "month": {"$nin": list(months)}})
            if documents:
                collection.bulk_write([ReplaceOne({"_id": f"{vendor_id}|{month}"},
                                                  {"vendorId": vendor_id, "month": month, **fields}, upsert=True)
                                       for month, fields in documents.items()], ordered=False)


_ZERO = cents(0)


def _upsert(vendor_id: str, month: str, increments: dict[str, Any]) -> UpdateOne:
    return UpdateOne({"_id": f"{vendor_id}|{month}"},
                     {"$inc": increments, "$setOnInsert": {"vendorId": vendor_id, "month": month}}, upsert=True)


def _balances(accounts: Mapping[str, Mapping[str, Any]]) -> Balances:
    return Balances(debits={key: cents(value.get("debit", 0)) for key, value in accounts.items()},
                    credits={key: cents(value.get("credit", 0)) for key, value in accounts.items()})


def _accounts(balances: Balances, lines: Mapping[str, int] | None = None) -> dict[str, dict[str, Any]]:
    accounts: dict[str, dict[str, Any]] = {}
    for account in sorted(set(balances.debits) | set(balances.credits)):
        accounts[account] = {"debit": to_decimal128(balances.debits.get(account, _ZERO)),
                             "credit": to_decimal128(balances.credits.get(account, _ZERO))}
        if lines is not None:
            accounts[account]["lines"] = lines.get(account, 0)
    return accounts
