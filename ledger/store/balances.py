"""Monthly movements per account (`ledger_balances`): one document per vendor and month.

`{_id: "<vendor>|<YYYY-MM>", vendorId, month, accounts: {<key>: {debit, credit}}}`, kept
by `$inc` in the same transaction as the entries they sum (`ledger.balances`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson.decimal128 import Decimal128
from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection

from ledger.parsing import to_decimal128
from ledger.store.codec import cents
from ledger.verification import Balances


class BalanceStore:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.create_index([("vendorId", ASCENDING), ("month", ASCENDING)], name="by_vendor_month")

    def add(self, vendor_id: str, movements: Mapping[str, Balances], session: ClientSession | None = None) -> None:
        """Add a batch's movements (one upsert per month it touches)."""
        updates = []
        for month, balances in movements.items():
            increments: dict[str, Decimal128] = {}
            for account in set(balances.debits) | set(balances.credits):
                increments[f"accounts.{account}.debit"] = to_decimal128(balances.debits.get(account, _ZERO))
                increments[f"accounts.{account}.credit"] = to_decimal128(balances.credits.get(account, _ZERO))
            updates.append(UpdateOne({"_id": f"{vendor_id}|{month}"},
                                     {"$inc": increments, "$setOnInsert": {"vendorId": vendor_id, "month": month}},
                                     upsert=True))
        if updates:
            self.collection.bulk_write(updates, ordered=True, session=session)

    def monthly(self, vendor_id: str, before_month: str | None = None) -> dict[str, Balances]:
        """The vendor's movements by month (only the months before `before_month`, if given)."""
        query: dict[str, Any] = {"vendorId": vendor_id}
        if before_month is not None:
            query["month"] = {"$lt": before_month}
        return {doc["month"]: _balances(doc.get("accounts") or {})
                for doc in self.collection.find(query).sort("month", ASCENDING)}

    def replace(self, vendor_id: str, movements: Mapping[str, Balances]) -> None:
        """Rebuild a vendor's months from what the entries say (a full sync, or a ledger written
        before monthly balances existed)."""
        operations: list[Any] = [ReplaceOne({"_id": f"{vendor_id}|{month}"},
                                            {"vendorId": vendor_id, "month": month, "accounts": _accounts(balances)},
                                            upsert=True)
                                 for month, balances in movements.items()]
        self.collection.delete_many({"vendorId": vendor_id, "month": {"$nin": list(movements)}})
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
