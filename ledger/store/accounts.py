"""The vendors' charts of accounts (`ledger_accounts`): opened as entries first use them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo import ASCENDING
from pymongo.collection import Collection

from ledger.accounts import Account, account_for
from ledger.store.bulk import insert_new


class AccountStore:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.create_index([("vendorId", ASCENDING), ("key", ASCENDING)], name="by_vendor_key", unique=True)

    def keys(self, vendor_id: str) -> set[str]:
        return {doc["key"] for doc in self.collection.find({"vendorId": vendor_id}, {"key": 1})}

    def open(self, vendor_id: str, keys: Iterable[str]) -> None:
        insert_new(self.collection, [_account_document(vendor_id, account_for(key)) for key in sorted(set(keys))])

    def chart(self, vendor_id: str) -> list[dict[str, Any]]:
        return list(self.collection.find({"vendorId": vendor_id}, {"_id": 0}).sort("code", ASCENDING))


def _account_document(vendor_id: str, account: Account) -> dict[str, Any]:
    return {"_id": f"{vendor_id}|{account.key}", "vendorId": vendor_id, "key": account.key, "code": account.code,
            "name": account.name, "type": account.type.value}
