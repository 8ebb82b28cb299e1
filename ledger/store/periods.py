"""Closes and reopens of a vendor's books (`ledger_periods`): every one kept, in order."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.collection import Collection

from ledger.chain import Head
from ledger.periods import PeriodEvent


class PeriodStore:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.create_index([("vendorId", ASCENDING), ("at", ASCENDING)], name="by_vendor_time")

    def record(self, vendor_id: str, action: str, through: date, at: datetime, reason: str | None,
               trial_balance: dict[str, Any], head: Head) -> dict[str, Any]:
        document = {"_id": f"{vendor_id}|{at.isoformat()}|{action}", "vendorId": vendor_id, "action": action,
                    "through": through.isoformat(), "at": at, "reason": reason, "trialBalance": trial_balance,
                    "chainHead": {"seq": head.seq, "hash": head.hash, "entryId": head.entry_id}}
        self.collection.insert_one(document)
        return document

    def history(self, vendor_id: str) -> list[dict[str, Any]]:
        return list(self.collection.find({"vendorId": vendor_id}).sort([("at", ASCENDING), ("_id", ASCENDING)]))

    def events(self, vendor_id: str) -> list[tuple[PeriodEvent, dict[str, Any]]]:
        """Each close and reopen as an event, with the record that keeps its figures."""
        return [(PeriodEvent(action=doc["action"], through=date.fromisoformat(doc["through"])), doc)
                for doc in self.history(vendor_id)]
