"""The vendors' charts of accounts (`ledger_accounts`): opened as entries first use them.

Codes are unique within a vendor: the standard accounts have theirs, and each expense
category gets the next of 6001, 6002, … in the order it is first posted, never reassigned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection

from ledger.accounts import EXPENSES_PREFIX, Account, account_for

LEGACY_EXPENSE_CODE = "6000"  # what every expense account was numbered before codes were unique


class AccountStore:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.create_index([("vendorId", ASCENDING), ("key", ASCENDING)], name="by_vendor_key", unique=True)
        self.collection.create_index([("vendorId", ASCENDING), ("code", ASCENDING), ("key", ASCENDING)],
                                     name="by_vendor_code")

    def keys(self, vendor_id: str) -> set[str]:
        return {doc["key"] for doc in self.collection.find({"vendorId": vendor_id}, {"key": 1})}

    def open(self, vendor_id: str, keys: Iterable[str], expense_codes: Mapping[str, int],
             session: ClientSession | None = None) -> None:
        """Open accounts not opened yet (an upsert each: idempotent inside a transaction);
        `expense_codes` numbers the new expense accounts."""
        operations = []
        for key in sorted(set(keys)):
            account = account_for(key)
            if key in expense_codes:
                account = account.model_copy(update={"code": str(expense_codes[key])})
            operations.append(UpdateOne({"_id": f"{vendor_id}|{key}"},
                                        {"$setOnInsert": _account_document(vendor_id, account)}, upsert=True))
        if operations:
            self.collection.bulk_write(operations, ordered=True, session=session)

    def legacy_expense_keys(self, vendor_id: str) -> list[str]:
        """Expense accounts opened before codes were unique, in key order."""
        return sorted(doc["key"] for doc in self.collection.find(  # no regex: it would lose the index
            {"vendorId": vendor_id, "code": LEGACY_EXPENSE_CODE}, {"key": 1}) if doc["key"].startswith(EXPENSES_PREFIX))

    def renumber(self, vendor_id: str, codes: Mapping[str, int]) -> None:
        """Give accounts opened with the shared legacy code their own (accounts are not entries)."""
        operations = [UpdateOne({"_id": f"{vendor_id}|{key}", "code": LEGACY_EXPENSE_CODE},
                                {"$set": {"code": str(code)}}) for key, code in codes.items()]
        if operations:
            self.collection.bulk_write(operations, ordered=False)

    def chart(self, vendor_id: str) -> list[dict[str, Any]]:
        return list(self.collection.find({"vendorId": vendor_id}, {"_id": 0}).sort("code", ASCENDING))


def is_expense(key: str) -> bool:
    return key.startswith(EXPENSES_PREFIX)


def _account_document(vendor_id: str, account: Account) -> dict[str, Any]:
    return {"vendorId": vendor_id, "key": account.key, "code": account.code, "name": account.name,
            "type": account.type.value}
