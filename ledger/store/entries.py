"""Journal entries (`ledger_entries`): written once, never updated or deleted; read by index."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128
from pymongo import ASCENDING
from pymongo.collection import Collection

from ledger.entries import JournalEntry
from ledger.ids import id_key
from ledger.store.bulk import insert_new
from ledger.store.codec import cents, entry_from_document, entry_to_document
from ledger.verification import Balances


class EntryIdCollision(Exception):
    """An entry id is taken by a different posting: never counted as "already posted"."""


@dataclass
class WriteResult:
    inserted_postings: int = 0
    inserted_reversals: int = 0
    duplicates: int = 0
    inserted_ids: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Written:
    """What the ledger holds of one sync."""

    entries: int
    unbalanced: int
    balances: Balances


def _line_sum(side: str) -> dict[str, Any]:
    # $reduce rather than {"$sum": "$lines.debit"}: not every server resolves a path through an
    # array inside $project (SecantusDB 0.7 answers 0, which would hide every unbalanced entry).
    return {"$reduce": {"input": "$lines", "initialValue": Decimal128("0"),
                        "in": {"$add": ["$$value", f"$$this.{side}"]}}}


_UNBALANCED = {"$cond": [{"$eq": [_line_sum("debit"), _line_sum("credit")]}, 0, 1]}


class EntryStore:
    def __init__(self, collection: Collection, batch_size: int):
        self.collection = collection
        self.batch_size = batch_size

    def ensure_indexes(self) -> None:
        self.collection.create_index([("vendorId", ASCENDING), ("source.type", ASCENDING), ("source.id", ASCENDING)],
                                     name="by_source")
        self.collection.create_index([("vendorId", ASCENDING), ("syncId", ASCENDING)], name="by_sync")

    # ---- writing ---------------------------------------------------------------

    def insert(self, entries: Iterable[JournalEntry], sync_id: str, posted_at: datetime,
               documents: list[dict[str, Any]] | None = None) -> WriteResult:
        """Insert in one unordered batch; an entry that exists already (the same posting) is a no-op.
        `documents` are the entries as stored (`entry_to_document`), when the caller built them already."""
        if documents is None:
            documents = [entry_to_document(entry, sync_id, posted_at) for entry in entries]
        result = WriteResult()
        failed = insert_new(self.collection, documents)
        if failed:
            self._check_same_postings([documents[index] for index in sorted(failed)])
        for index, document in enumerate(documents):
            if index in failed:
                result.duplicates += 1
            elif document.get("reversalOf"):
                result.inserted_reversals += 1
                result.inserted_ids.add(document["_id"])
            else:
                result.inserted_postings += 1
                result.inserted_ids.add(document["_id"])
        return result

    def _check_same_postings(self, documents: list[dict[str, Any]]) -> None:
        """Entries that were there already must be the very postings we meant to write (another
        writer, an earlier attempt); anything else under the same id is a collision."""
        held = {doc["_id"]: doc for doc in self.collection.find({"_id": {"$in": [d["_id"] for d in documents]}})}
        for document in documents:
            existing = held.get(document["_id"])
            if existing is None or _posting_identity(existing) != _posting_identity(document):
                raise EntryIdCollision(
                    f"entry id {document['_id']!r} is already taken by a different posting "
                    f"({_describe(existing)}); nothing was counted as posted for it. The ledger may have been "
                    "written by another program: run a full sync after checking it")

    # ---- what is posted for documents ------------------------------------------

    def for_sources(self, vendor_id: str, source_type: str, ids: list[Any]) -> list[JournalEntry]:
        """Every entry already posted for these documents, in one query."""
        cursor = self.collection.find({"vendorId": vendor_id, "source.type": source_type, "source.id": {"$in": ids}})
        return [entry_from_document(doc) for doc in cursor]

    def in_source_range(self, vendor_id: str, source_type: str, after_id: Any, upto_id: Any) -> list[JournalEntry]:
        """Every entry of documents with `after_id < _id <= upto_id` (either bound open when None).

        A full sync reads sources in `_id` order, so this one query per batch also
        returns the entries of documents deleted from that stretch of ids.
        """
        bounds: dict[str, Any] = {}
        if after_id is not None:
            bounds["$gt"] = after_id
        if upto_id is not None:
            bounds["$lte"] = upto_id
        query: dict[str, Any] = {"vendorId": vendor_id, "source.type": source_type}
        if bounds:
            query["source.id"] = bounds
        return [entry_from_document(doc) for doc in self.collection.find(query)]

    def posted_source_id_batches(self, vendor_id: str, source_type: str, date_from: datetime | None,
                                 date_until: datetime | None) -> Iterator[list[Any]]:
        """Ids of the source documents the ledger has entries for, a batch at a time."""
        match: dict[str, Any] = {"vendorId": vendor_id, "source.type": source_type}
        date_range: dict[str, datetime] = {}
        if date_from is not None:
            date_range["$gte"] = date_from
        if date_until is not None:
            date_range["$lt"] = date_until
        if date_range:
            match["source.documentDate"] = date_range
        pipeline = [{"$match": match}, {"$group": {"_id": "$source.id"}}, {"$sort": {"_id": 1}}]
        batch: list[Any] = []
        for row in self.collection.aggregate(pipeline, batchSize=self.batch_size):
            batch.append(row["_id"])
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def has_entries(self, vendor_id: str, source_type: str) -> bool:
        return self.collection.find_one({"vendorId": vendor_id, "source.type": source_type}, {"_id": 1}) is not None

    def for_source_id(self, vendor_id: str, source_type: str | None, source_id: Any) -> list[dict[str, Any]]:
        """Entries of one source document, in the order written (`$in`: the id is always a value)."""
        query: dict[str, Any] = {"vendorId": vendor_id, "source.id": {"$in": [source_id]}}
        if source_type is not None:
            query["source.type"] = source_type
        return list(self.collection.find(query).sort([("postedAt", ASCENDING), ("_id", ASCENDING)]).limit(1000))

    # ---- sums, added up by the server -------------------------------------------

    def balances(self, vendor_id: str) -> Balances:
        rows = self.collection.aggregate([
            {"$match": {"vendorId": vendor_id}},
            {"$unwind": "$lines"},
            {"$group": {"_id": "$lines.account", "debit": {"$sum": "$lines.debit"},
                        "credit": {"$sum": "$lines.credit"}}},
        ])
        debits: dict[str, Decimal] = {}
        credits: dict[str, Decimal] = {}
        for row in rows:
            debits[row["_id"]] = cents(row["debit"])
            credits[row["_id"]] = cents(row["credit"])
        return Balances(debits=debits, credits=credits)

    def summary(self, vendor_id: str) -> dict[str, int]:
        """Entry counts and how many entries do not balance, in one aggregate."""
        rows = list(self.collection.aggregate([
            {"$match": {"vendorId": vendor_id}},
            {"$project": {"reversal": {"$cond": [{"$ifNull": ["$reversalOf", False]}, 1, 0]},
                          "unbalanced": _UNBALANCED}},
            {"$group": {"_id": None, "entries": {"$sum": 1}, "reversals": {"$sum": "$reversal"},
                        "unbalanced": {"$sum": "$unbalanced"}}},
        ]))
        row = rows[0] if rows else {"entries": 0, "reversals": 0, "unbalanced": 0}
        return {"entries": row["entries"], "reversals": row["reversals"], "unbalanced": row["unbalanced"]}

    def written_by(self, vendor_id: str, sync_id: str) -> Written:
        """What the ledger holds of one sync: entries, debits and credits per account, unbalanced
        entries, added up by the server in one aggregation (index `by_sync`)."""
        rows = list(self.collection.aggregate([
            {"$match": {"vendorId": vendor_id, "syncId": sync_id}},
            {"$project": {"lines": 1, "unbalanced": _UNBALANCED}},
            {"$unwind": {"path": "$lines", "includeArrayIndex": "line"}},
            # Each entry is counted once: with its first line.
            {"$group": {"_id": "$lines.account", "debit": {"$sum": "$lines.debit"}, "credit": {"$sum": "$lines.credit"},
                        "entries": {"$sum": {"$cond": [{"$eq": ["$line", 0]}, 1, 0]}},
                        "unbalanced": {"$sum": {"$cond": [{"$eq": ["$line", 0]}, "$unbalanced", 0]}}}},
        ]))
        return Written(entries=sum(row["entries"] for row in rows), unbalanced=sum(row["unbalanced"] for row in rows),
                       balances=Balances(debits={row["_id"]: cents(row["debit"]) for row in rows},
                                         credits={row["_id"]: cents(row["credit"]) for row in rows}))


def _posting_identity(document: dict[str, Any]) -> tuple[Any, ...]:
    source = document.get("source") or {}
    payment = source.get("paymentId")
    return (document.get("vendorId"), source.get("type"), id_key(source.get("id")),
            None if payment is None else id_key(payment), document.get("reversalOf"), document.get("fingerprint"))


def _describe(document: dict[str, Any] | None) -> str:
    if document is None:
        return "it could not be read back"
    source = document.get("source") or {}
    return f"vendor {document.get('vendorId')}, {source.get('type')} {source.get('id')!r}"
