"""Monthly and daily movements per account (`ledger_balances`): one document per vendor and month.

`{_id: "<vendor>|<YYYY-MM>", vendorId, month, accounts: {<key>: {debit, credit}},
days: {<DD>: {<key>: {debit, credit}}}}`, kept by `$inc` in the same transaction as the
entries they sum (`ledger.balances`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128
from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection

from ledger.balances import by_month
from ledger.parsing import to_decimal128
from ledger.store.codec import cents
from ledger.verification import Balances


class BalanceStore:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.create_index([("vendorId", ASCENDING), ("month", ASCENDING)], name="by_vendor_month")

    def add(self, vendor_id: str, daily: Mapping[str, Balances], session: ClientSession | None = None) -> None:
        """Add a batch's movements by day (one upsert per month it touches, its days with it)."""
        sums: dict[str, dict[str, Decimal]] = {}
        for day, balances in daily.items():
            month = sums.setdefault(day[:7], {})
            for side, amounts in (("debit", balances.debits), ("credit", balances.credits)):
                for account, amount in amounts.items():
                    for path in (f"accounts.{account}.{side}", f"days.{day[8:]}.{account}.{side}"):
                        month[path] = month.get(path, _ZERO) + amount
        updates = [UpdateOne({"_id": f"{vendor_id}|{month}"},
                             {"$inc": {path: to_decimal128(amount) for path, amount in changes.items()},
                              "$setOnInsert": {"vendorId": vendor_id, "month": month}}, upsert=True)
                   for month, changes in sums.items()]
        if updates:
            self.collection.bulk_write(updates, ordered=True, session=session)

    def monthly(self, vendor_id: str, before_month: str | None = None) -> dict[str, Balances]:
        """The vendor's movements by month (only the months before `before_month`, if given)."""
        query: dict[str, Any] = {"vendorId": vendor_id}
        if before_month is not None:
            query["month"] = {"$lt": before_month}
        return {doc["month"]: _balances(doc.get("accounts") or {})
                for doc in self.collection.find(query, {"days": 0}).sort("month", ASCENDING)}

    def days_of(self, vendor_id: str, month: str) -> dict[str, Balances]:
        """The movements of each day of one month (`YYYY-MM-DD` → balances)."""
        doc = self.collection.find_one({"_id": f"{vendor_id}|{month}"}, {"days": 1}) or {}
        return {f"{month}-{day}": _balances(accounts) for day, accounts in sorted((doc.get("days") or {}).items())}

    def daily(self, vendor_id: str) -> dict[str, Balances]:
        """Every day's movements the vendor's months hold (the full sync's check against the entries)."""
        return {f"{doc['month']}-{day}": _balances(accounts)
                for doc in self.collection.find({"vendorId": vendor_id}, {"month": 1, "days": 1})
                for day, accounts in (doc.get("days") or {}).items()}

    def replace(self, vendor_id: str, daily: Mapping[str, Balances]) -> None:
        """Rebuild a vendor's months from what the entries say, by day (a full sync, or a ledger
        written before these balances existed)."""
        months = by_month(daily)
        operations: list[Any] = [ReplaceOne({"_id": f"{vendor_id}|{month}"}, {
            "vendorId": vendor_id, "month": month, "accounts": _accounts(balances),
            "days": {day[8:]: _accounts(moved) for day, moved in daily.items() if day[:7] == month}}, upsert=True)
            for month, balances in months.items()]
        self.collection.delete_many({"vendorId": vendor_id, "month": {"$nin": list(months)}})
        if operations:
            self.collection.bulk_write(operations, ordered=False)


_ZERO = cents(0)


def _balances(accounts: Mapping[str, Mapping[str, Any]]) -> Balances:
    return Balances(debits={key: cents(value.get("debit", 0)) for key, value in accounts.items()},
                    credits={key: cents(value.get("credit", 0)) for key, value in accounts.items()})


def _accounts(balances: Balances) -> dict[str, dict[str, Decimal128]]:
    return {account: {"debit": to_decimal128(balances.debits.get(account, _ZERO)),
                      "credit": to_decimal128(balances.credits.get(account, _ZERO))}
            for account in sorted(set(balances.debits) | set(balances.credits))}
