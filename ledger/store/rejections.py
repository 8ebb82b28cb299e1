"""Rejected source documents (`ledger_sync_errors`): one record per document per sync."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection

from ledger.ids import rejection_id
from ledger.sources import Rejection


class RejectionStore:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.create_index([("syncId", ASCENDING), ("sourceType", ASCENDING)], name="by_sync")

    def record(self, sync_id: str, rejections: list[Rejection], at: datetime,
               session: ClientSession | None = None) -> None:
        """One record per rejected document per sync; a retried batch overwrites nothing (upserts:
        idempotent inside a transaction too)."""
        operations = [UpdateOne({"_id": rejection_id(sync_id, r.type, r.id)}, {"$setOnInsert": {
            "syncId": sync_id, "vendorId": r.vendor_id, "sourceType": r.type, "sourceId": r.id, "number": r.number,
            "field": r.field, "reason": r.reason, "date": r.date, "amount": r.amount,
            "recordedAt": at}}, upsert=True) for r in rejections]
        if operations:
            self.collection.bulk_write(operations, ordered=True, session=session)

    def source_ids(self, sync_id: str, source_type: str) -> list[Any]:
        return [doc["sourceId"] for doc in self.collection.find({"syncId": sync_id, "sourceType": source_type},
                                                                {"sourceId": 1})]

    def of_run(self, sync_id: str, vendor_id: str, limit: int = 500) -> list[dict[str, Any]]:
        return list(self.collection.find({"syncId": sync_id, "vendorId": vendor_id}, {"_id": 0})
                    .sort([("sourceType", ASCENDING), ("_id", ASCENDING)]).limit(limit))
