"""The one module that talks to MongoDB.

Everything is batched: a sync costs a handful of commands per batch of source
documents (read, look up what is posted, insert, checkpoint), never one per
document. Identity is enforced by the database: entry `_id`s are deterministic,
and a partial unique index allows one active sync run per vendor.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from bson import ObjectId, Timestamp
from bson.binary import Binary
from bson.decimal128 import Decimal128
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from ledger.accounts import Account, account_for
from ledger.parsing import to_decimal, to_decimal128
from ledger.entries import ZERO, JournalEntry, Line, SourceRef
from ledger.ids import id_key, rejection_id
from ledger.sources import Rejection, SourceType
from ledger.verification import Balances

DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class CollectionNames:
    sales_invoices: str = "salesinvoices"
    purchase_invoices: str = "purchaseinvoices"
    expenses: str = "expenses"
    vendors: str = "vendors"
    ledger_prefix: str = "ledger_"

    def source(self, source_type: SourceType) -> str:
        return {
            SourceType.SALES_INVOICE: self.sales_invoices,
            SourceType.PURCHASE_INVOICE: self.purchase_invoices,
            SourceType.EXPENSE: self.expenses,
        }[source_type]


@dataclass(frozen=True)
class SourceQuery:
    """Which source documents of one type a sync step reads."""

    vendor_id: str
    source_type: SourceType
    date_from: datetime | None = None  # inclusive
    date_until: datetime | None = None  # exclusive (the day after dateTo)
    changed_since: datetime | None = None  # incremental: updatedAt at or after this
    after_id: Any = None  # resume: continue after this `_id` ...
    phase: int = 0  # ... in this phase (see `source_phases`)
    recheck_ids: tuple = ()  # incremental: also these unchanged documents (rejected last time)


class EntryIdCollision(Exception):
    """An entry id is taken by a different posting: never counted as "already posted"."""


class SyncAlreadyRunning(Exception):
    def __init__(self, sync_id: str):
        super().__init__(f"a sync is already running for this vendor: {sync_id}")
        self.sync_id = sync_id


@dataclass
class WriteResult:
    inserted_postings: int = 0
    inserted_reversals: int = 0
    duplicates: int = 0
    inserted_ids: set[str] = field(default_factory=set)


def _line_sum(side: str) -> dict:
    # $reduce rather than {"$sum": "$lines.debit"}: not every server resolves a path through an
    # array inside $project (SecantusDB 0.7 answers 0, which would hide every unbalanced entry).
    return {"$reduce": {"input": "$lines", "initialValue": Decimal128("0"), "in": {"$add": ["$$value", f"$$this.{side}"]}}}


_UNBALANCED = {"$cond": [{"$eq": [_line_sum("debit"), _line_sum("credit")]}, 0, 1]}


@dataclass(frozen=True)
class Written:
    """What the ledger holds of one sync."""

    entries: int
    unbalanced: int
    balances: Balances


def date_field(source_type: SourceType) -> str:
    return "date" if source_type is SourceType.EXPENSE else "invoiceDate"


class LedgerStore:
    def __init__(self, db: Database, names: CollectionNames = CollectionNames(), batch_size: int = 1000):
        self.db = db
        self.names = names
        self.batch_size = batch_size
        prefix = names.ledger_prefix
        self.accounts = db[prefix + "accounts"]
        self.entries = db[prefix + "entries"]
        self.runs = db[prefix + "sync_runs"]
        self.errors = db[prefix + "sync_errors"]
        self.vendor_state = db[prefix + "vendor_state"]

    # ---- set-up -----------------------------------------------------------

    def ensure_indexes(self) -> None:
        """Indexes for every query the product runs (idempotent)."""
        self.entries.create_index([("vendorId", ASCENDING), ("source.type", ASCENDING), ("source.id", ASCENDING)],
                                  name="by_source")
        self.runs.create_index([("vendorId", ASCENDING), ("startedAt", DESCENDING)], name="by_vendor_recent")
        self.runs.create_index([("vendorId", ASCENDING)], name="one_active_sync_per_vendor", unique=True,
                               partialFilterExpression={"active": True})
        self.runs.create_index([("active", ASCENDING), ("heartbeatAt", ASCENDING)], name="active_by_heartbeat",
                               partialFilterExpression={"active": True})
        self.entries.create_index([("vendorId", ASCENDING), ("syncId", ASCENDING)], name="by_sync")
        self.errors.create_index([("syncId", ASCENDING), ("sourceType", ASCENDING)], name="by_sync")
        self.accounts.create_index([("vendorId", ASCENDING), ("key", ASCENDING)], name="by_vendor_key", unique=True)
        for source_type in SourceType:
            collection = self.db[self.names.source(source_type)]
            collection.create_index([("vendorId", ASCENDING), ("_id", ASCENDING)], name="ledger_sync_by_vendor")
            collection.create_index([("vendorId", ASCENDING), ("updatedAt", ASCENDING)], name="ledger_sync_changed")
            collection.create_index([("vendorId", ASCENDING), (date_field(source_type), ASCENDING)],
                                    name="ledger_sync_by_date")

    # ---- source documents (read only) ---------------------------------------

    def base_currency(self, vendor_id: str, default: str) -> str:
        vendor = self.db[self.names.vendors].find_one(
            {"$or": [{"vendorId": vendor_id}, {"_id": vendor_id}]}, {"baseCurrency": 1})
        currency = (vendor or {}).get("baseCurrency")
        return currency.strip().upper() if isinstance(currency, str) and currency.strip() else default

    def count_sources(self, query: SourceQuery) -> int:
        """How many documents the query reads (for progress)."""
        collection = self.db[self.names.source(query.source_type)]
        return sum(collection.count_documents(part) for _, part in _remaining_reads(query))

    def source_batches(self, query: SourceQuery) -> Iterator[tuple[int, list[dict]]]:
        """(phase, documents) in `_id` order within each phase, a batch at a time
        (one getMore per two batches)."""
        collection = self.db[self.names.source(query.source_type)]
        for number, part in _remaining_reads(query):
            # Two batches per round trip: half the getMores, for one more batch of raw documents in memory.
            cursor = collection.find(part, sort=[("_id", ASCENDING)], batch_size=2 * self.batch_size)
            with cursor:
                batch: list[dict] = []
                for document in cursor:
                    batch.append(document)
                    if len(batch) == self.batch_size:
                        yield number, batch
                        batch = []
                if batch:
                    yield number, batch

    def posted_id_types(self, vendor_id: str, source_type: SourceType) -> set[str]:
        """The BSON types of the source ids the ledger holds for this type (one read by `_id`)."""
        state = self.vendor_state.find_one({"_id": vendor_id}, {f"idTypes.{source_type.value}": 1}) or {}
        return set(state.get("idTypes", {}).get(source_type.value, []))

    def has_entries(self, vendor_id: str, source_type: SourceType) -> bool:
        """Whether the ledger holds any entry of this vendor and document type."""
        return self.entries.find_one({"vendorId": vendor_id, "source.type": source_type.value}, {"_id": 1}) is not None

    def note_id_types(self, vendor_id: str, source_type: SourceType, kinds: set[str]) -> None:
        """Remember new id types before posting entries with them (rare: once per new type)."""
        self.vendor_state.update_one({"_id": vendor_id},
                                     {"$addToSet": {f"idTypes.{source_type.value}": {"$each": sorted(kinds)}}},
                                     upsert=True)

    def missing_source_ids(self, source_type: SourceType, vendor_id: str, ids: list) -> list:
        """Which of `ids` are gone from the source collection (hard deletes)."""
        found = {id_key(doc["_id"]) for doc in self.db[self.names.source(source_type)].find(
            {"vendorId": vendor_id, "_id": {"$in": ids}}, {"_id": 1})}
        return [source_id for source_id in ids if id_key(source_id) not in found]

    def posted_source_id_batches(self, source_type: SourceType, vendor_id: str, date_from: datetime | None,
                                 date_until: datetime | None) -> Iterator[list]:
        """Ids of the source documents the ledger has entries for, a batch at a time."""
        match: dict[str, Any] = {"vendorId": vendor_id, "source.type": source_type.value}
        date_range = _range(date_from, date_until)
        if date_range:
            match["source.documentDate"] = date_range
        pipeline = [{"$match": match}, {"$group": {"_id": "$source.id"}}, {"$sort": {"_id": 1}}]
        batch: list = []
        for row in self.entries.aggregate(pipeline, batchSize=self.batch_size):
            batch.append(row["_id"])
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    # ---- ledger entries -------------------------------------------------------

    def entries_for_sources(self, vendor_id: str, source_type: SourceType, ids: list) -> list[JournalEntry]:
        """Every entry already posted for these documents, in one query."""
        cursor = self.entries.find({"vendorId": vendor_id, "source.type": source_type.value, "source.id": {"$in": ids}})
        return [entry_from_document(doc) for doc in cursor]

    def entries_in_source_range(self, vendor_id: str, source_type: SourceType, after_id: Any,
                                upto_id: Any) -> list[JournalEntry]:
        """Every entry of documents with `after_id < _id <= upto_id` (either bound open when None).

        A full sync reads sources in `_id` order, so this one query per batch also
        returns the entries of documents deleted from that stretch of ids.
        """
        bounds: dict[str, Any] = {}
        if after_id is not None:
            bounds["$gt"] = after_id
        if upto_id is not None:
            bounds["$lte"] = upto_id
        query: dict[str, Any] = {"vendorId": vendor_id, "source.type": source_type.value}
        if bounds:
            query["source.id"] = bounds
        return [entry_from_document(doc) for doc in self.entries.find(query)]

    def latest_seal(self, vendor_id: str) -> dict | None:
        """The completed run that sealed the vendor's books last (highest run number)."""
        return self.runs.find_one({"vendorId": vendor_id, "state": "completed", "ledger.runNumber": {"$exists": True}},
                                  sort=[("ledger.runNumber", DESCENDING)])

    def next_run_number(self, vendor_id: str) -> int:
        """A per-vendor counter, bumped by every run that starts or resumes: the database's
        own order of runs, whatever the clocks of the machines that run them."""
        # Concurrent first upserts of one vendor race on `_id`: MongoDB may raise DuplicateKeyError,
        # SecantusDB 0.7 returns None (seen with ten simultaneous POST /sync-data). The counter
        # document exists by then, so trying again increments it.
        for _ in range(5):
            try:
                state = self.vendor_state.find_one_and_update({"_id": vendor_id}, {"$inc": {"runs": 1}}, upsert=True,
                                                              return_document=ReturnDocument.AFTER)
            except DuplicateKeyError:
                continue
            if state is not None:
                return state["runs"]
        raise RuntimeError(f"could not number a run of vendor {vendor_id}")

    def insert_entries(self, entries: Iterable[JournalEntry], sync_id: str, posted_at: datetime,
                       documents: list[dict] | None = None) -> WriteResult:
        """Insert in one unordered batch; an entry that exists already is a no-op, not an error.
        `documents` are the entries as stored (`entry_to_document`), when the caller built them already."""
        if documents is None:
            documents = [entry_to_document(entry, sync_id, posted_at) for entry in entries]
        result = WriteResult()
        if not documents:
            return result
        failed: set[int] = set()
        try:
            self.entries.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            for problem in error.details.get("writeErrors", []):
                if problem.get("code") != DUPLICATE_KEY:
                    raise
                failed.add(problem["index"])
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

    def _check_same_postings(self, documents: list[dict]) -> None:
        """Entries that were there already must be the very postings we meant to write (another
        writer, an earlier attempt); anything else under the same id is a collision."""
        held = {doc["_id"]: doc for doc in self.entries.find({"_id": {"$in": [d["_id"] for d in documents]}})}
        for document in documents:
            existing = held.get(document["_id"])
            if existing is None or _posting_identity(existing) != _posting_identity(document):
                raise EntryIdCollision(
                    f"entry id {document['_id']!r} is already taken by a different posting "
                    f"({_describe(existing)}); nothing was counted as posted for it. The ledger may have been "
                    "written by another program: run a full sync after checking it")

    def balances(self, vendor_id: str) -> Balances:
        rows = self.entries.aggregate([
            {"$match": {"vendorId": vendor_id}},
            {"$unwind": "$lines"},
            {"$group": {"_id": "$lines.account", "debit": {"$sum": "$lines.debit"}, "credit": {"$sum": "$lines.credit"}}},
        ])
        debits: dict[str, Decimal] = {}
        credits: dict[str, Decimal] = {}
        for row in rows:
            debits[row["_id"]] = _cents(row["debit"])
            credits[row["_id"]] = _cents(row["credit"])
        return Balances(debits=debits, credits=credits)

    def written_by(self, vendor_id: str, sync_id: str) -> Written:
        """What the ledger holds of one sync: entries, debits and credits per account, unbalanced
        entries, added up by the server in one aggregation (index `by_sync`)."""
        rows = list(self.entries.aggregate([
            {"$match": {"vendorId": vendor_id, "syncId": sync_id}},
            {"$project": {"lines": 1, "unbalanced": _UNBALANCED}},
            {"$unwind": {"path": "$lines", "includeArrayIndex": "line"}},
            # Each entry is counted once: with its first line.
            {"$group": {"_id": "$lines.account", "debit": {"$sum": "$lines.debit"}, "credit": {"$sum": "$lines.credit"},
                        "entries": {"$sum": {"$cond": [{"$eq": ["$line", 0]}, 1, 0]}},
                        "unbalanced": {"$sum": {"$cond": [{"$eq": ["$line", 0]}, "$unbalanced", 0]}}}},
        ]))
        return Written(entries=sum(row["entries"] for row in rows), unbalanced=sum(row["unbalanced"] for row in rows),
                       balances=Balances(debits={row["_id"]: _cents(row["debit"]) for row in rows},
                                         credits={row["_id"]: _cents(row["credit"]) for row in rows}))

    def ledger_summary(self, vendor_id: str) -> dict[str, int]:
        """Entry counts and how many entries do not balance, in one aggregate."""
        rows = list(self.entries.aggregate([
            {"$match": {"vendorId": vendor_id}},
            {"$project": {"reversal": {"$cond": [{"$ifNull": ["$reversalOf", False]}, 1, 0]},
                          "unbalanced": _UNBALANCED}},
            {"$group": {"_id": None, "entries": {"$sum": 1}, "reversals": {"$sum": "$reversal"},
                        "unbalanced": {"$sum": "$unbalanced"}}},
        ]))
        row = rows[0] if rows else {"entries": 0, "reversals": 0, "unbalanced": 0}
        return {"entries": row["entries"], "reversals": row["reversals"], "unbalanced": row["unbalanced"]}

    # ---- accounts -----------------------------------------------------------

    def known_accounts(self, vendor_id: str) -> set[str]:
        return {doc["key"] for doc in self.accounts.find({"vendorId": vendor_id}, {"key": 1})}

    def open_accounts(self, vendor_id: str, keys: Iterable[str]) -> None:
        documents = [_account_document(vendor_id, account_for(key)) for key in sorted(set(keys))]
        if not documents:
            return
        try:
            self.accounts.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            if any(problem.get("code") != DUPLICATE_KEY for problem in error.details.get("writeErrors", [])):
                raise

    def chart(self, vendor_id: str) -> list[dict]:
        return list(self.accounts.find({"vendorId": vendor_id}, {"_id": 0}).sort("code", ASCENDING))

    # ---- rejected documents -------------------------------------------------

    def record_rejections(self, sync_id: str, rejections: list[Rejection], at: datetime) -> None:
        """One record per rejected document per sync; a retried batch overwrites nothing."""
        if not rejections:
            return
        documents = [{
            "_id": rejection_id(sync_id, r.type.value, r.id), "syncId": sync_id, "vendorId": r.vendor_id,
            "sourceType": r.type.value, "sourceId": r.id, "number": r.number, "field": r.field,
            "reason": r.reason, "recordedAt": at,
        } for r in rejections]
        try:
            self.errors.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            if any(problem.get("code") != DUPLICATE_KEY for problem in error.details.get("writeErrors", [])):
                raise

    def rejected_source_ids(self, sync_id: str, source_type: SourceType) -> list:
        return [doc["sourceId"] for doc in self.errors.find({"syncId": sync_id, "sourceType": source_type.value},
                                                            {"sourceId": 1})]

    def rejections(self, sync_id: str, vendor_id: str, limit: int = 500) -> list[dict]:
        return list(self.errors.find({"syncId": sync_id, "vendorId": vendor_id}, {"_id": 0})
                    .sort([("sourceType", ASCENDING), ("_id", ASCENDING)]).limit(limit))

    # ---- sync runs ----------------------------------------------------------

    def create_run(self, run: dict) -> dict:
        """Insert a new active run; raise `SyncAlreadyRunning` if the vendor has one."""
        document = {**run, "_id": run["syncId"], "active": True}
        try:
            self.runs.insert_one(document)
        except DuplicateKeyError:
            running = self.runs.find_one({"vendorId": run["vendorId"], "active": True}, {"syncId": 1})
            if running is None:  # it finished between our insert and this read: try once more
                self.runs.insert_one(document)
                return document
            raise SyncAlreadyRunning(running["syncId"]) from None
        return document

    def run(self, sync_id: str, vendor_id: str | None = None) -> dict | None:
        query: dict[str, Any] = {"_id": sync_id}
        if vendor_id is not None:
            query["vendorId"] = vendor_id
        return self.runs.find_one(query)

    def running_run(self, vendor_id: str) -> dict | None:
        return self.runs.find_one({"vendorId": vendor_id, "active": True})

    def runs_of(self, vendor_id: str, limit: int = 20) -> list[dict]:
        return list(self.runs.find({"vendorId": vendor_id}).sort("startedAt", DESCENDING).limit(limit))

    def update_run(self, sync_id: str, changes: dict, unset: Iterable[str] = (), at_least: dict | None = None,
                   unless_completed: str | None = None) -> dict | None:
        """Apply `changes` (and raise the `at_least` fields to at least their values, never lower
        them) in one command; the record after. With `unless_completed`, only if that step has
        not completed (None otherwise)."""
        update: dict[str, Any] = {"$set": changes}
        if unset:
            update["$unset"] = {name: "" for name in unset}
        if at_least:
            update["$max"] = at_least
        query: dict[str, Any] = {"_id": sync_id}
        if unless_completed is not None:
            query[f"steps.{unless_completed}.state"] = {"$ne": "completed"}
        return self.runs.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)

    def reactivate_run(self, sync_id: str, changes: dict) -> dict:
        """Mark a finished run active again (resume), unless the vendor has another one running."""
        run = self.runs.find_one({"_id": sync_id})
        try:
            return self.runs.find_one_and_update({"_id": sync_id}, {"$set": {**changes, "active": True}},
                                                 return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            running = self.running_run(run["vendorId"]) if run else None
            raise SyncAlreadyRunning(running["syncId"] if running else sync_id) from None

    def finish_run(self, sync_id: str, changes: dict) -> dict | None:
        return self.update_run(sync_id, changes, unset=("active",))

    def last_covering_run(self, vendor_id: str, sync_type: str) -> dict | None:
        """The newest completed run that read every document of `sync_type` it was asked to."""
        return self.runs.find_one({"vendorId": vendor_id, "state": "completed", "coverage": sync_type},
                                  sort=[("startedAt", DESCENDING)])

    def stale_runs(self, heartbeat_before: datetime) -> list[dict]:
        """Active runs without a heartbeat since `heartbeat_before` (index `active_by_heartbeat`).

        A run still queued for a flow run that exists is not stale: it waits for a worker
        (the events bridge settles it if Prefect crashes or cancels that flow run)."""
        return list(self.runs.find({"active": True, "heartbeatAt": {"$lt": heartbeat_before},
                                    "$or": [{"state": {"$ne": "queued"}}, {"flowRunId": None}]}))

    def finish_stale_run(self, sync_id: str, heartbeat_before: datetime, changes: dict) -> dict | None:
        """Finish a run only if it is still active and still without a heartbeat (another detector, a
        late heartbeat or a resume may have moved it on meanwhile); None if it was not."""
        return self.runs.find_one_and_update({"_id": sync_id, "active": True, "heartbeatAt": {"$lt": heartbeat_before}},
                                             {"$set": changes, "$unset": {"active": ""}},
                                             return_document=ReturnDocument.AFTER)

    def source_vendor_ids(self) -> list[str]:
        vendors: set[str] = set()
        for source_type in SourceType:
            vendors.update(v for v in self.db[self.names.source(source_type)].distinct("vendorId") if isinstance(v, str))
        return sorted(vendors)

    # ---- API and events bridge (issue 4) ----------------------------------------
    # Conditional updates so the API, the events bridge and the flow can race on a
    # run record without overwriting each other's decisions; one command each.

    def attach_flow_run(self, sync_id: str, flow_run_id: str) -> dict | None:
        """Record the Prefect flow run that will execute this (still active) run."""
        return self.runs.find_one_and_update({"_id": sync_id, "active": True}, {"$set": {"flowRunId": flow_run_id}},
                                             return_document=ReturnDocument.AFTER)

    def request_cancel(self, sync_id: str, vendor_id: str, at: datetime) -> dict | None:
        """Flag an active run for cancellation (the flow checks the flag after every batch)."""
        return self.runs.find_one_and_update(
            {"_id": sync_id, "vendorId": vendor_id, "active": True},
            {"$set": {"cancelRequested": True, "cancelRequestedAt": at, "state": "cancelling",
                      "progress.message": "Cancelling…"}},
            return_document=ReturnDocument.AFTER)

    def finish_active_run(self, sync_id: str, changes: dict, flow_run_id: str | None = None,
                          only_if_flow_run: bool = False) -> dict | None:
        """Finish a run that is still active (and, if asked, still belongs to `flow_run_id`); None if it was not."""
        query: dict[str, Any] = {"_id": sync_id, "active": True}
        if only_if_flow_run:
            query["flowRunId"] = flow_run_id
        return self.runs.find_one_and_update(query, {"$set": changes, "$unset": {"active": ""}},
                                             return_document=ReturnDocument.AFTER)

    def entries_for_source_id(self, vendor_id: str, source_type: SourceType | None, source_id: Any) -> list[dict]:
        """Entries of one source document, in the order written (`$in`: the id is always a value)."""
        query: dict[str, Any] = {"vendorId": vendor_id, "source.id": {"$in": [source_id]}}
        if source_type is not None:
            query["source.type"] = source_type.value
        return list(self.entries.find(query).sort([("postedAt", ASCENDING), ("_id", ASCENDING)]).limit(1000))


# ---- documents <-> records ----------------------------------------------------

def entry_to_document(entry: JournalEntry, sync_id: str, posted_at: datetime) -> dict:
    source = {"type": entry.source.type.value, "id": entry.source.id, "number": entry.source.number,
              "documentDate": entry.source.document_date}
    if entry.source.payment_id is not None:
        source["paymentId"] = entry.source.payment_id
    document = {
        "_id": entry.id, "vendorId": entry.vendor_id, "date": entry.date, "source": source,
        "lines": [{"account": line.account, "debit": to_decimal128(line.debit), "credit": to_decimal128(line.credit)}
                  for line in entry.lines],
        "fingerprint": entry.fingerprint, "syncId": sync_id, "postedAt": posted_at,
    }
    if entry.reversal_of is not None:
        document["reversalOf"] = entry.reversal_of
    return document


def entry_from_document(document: dict) -> JournalEntry:
    source = document["source"]
    return JournalEntry(
        id=document["_id"], vendor_id=document["vendorId"], date=as_utc(document["date"]),
        source=SourceRef(type=SourceType(source["type"]), id=source["id"], number=source.get("number"),
                         payment_id=source.get("paymentId"), document_date=as_utc(source.get("documentDate"))),
        lines=tuple(Line(account=line["account"], debit=_decimal(line["debit"]), credit=_decimal(line["credit"]))
                    for line in document["lines"]),
        fingerprint=document["fingerprint"], reversal_of=document.get("reversalOf"), sync_id=document.get("syncId"),
    )


def _posting_identity(document: dict) -> tuple:
    source = document.get("source") or {}
    payment = source.get("paymentId")
    return (document.get("vendorId"), source.get("type"), id_key(source.get("id")),
            None if payment is None else id_key(payment), document.get("reversalOf"), document.get("fingerprint"))


def _describe(document: dict | None) -> str:
    if document is None:
        return "it could not be read back"
    source = document.get("source") or {}
    return f"vendor {document.get('vendorId')}, {source.get('type')} {source.get('id')!r}"


def balances_to_document(balances: Balances) -> dict:
    return {account: {"debit": str(balances.debits.get(account, ZERO)), "credit": str(balances.credits.get(account, ZERO))}
            for account in sorted(set(balances.debits) | set(balances.credits))}


def balances_from_document(document: dict) -> Balances:
    return Balances(debits={a: Decimal(v["debit"]) for a, v in document.items()},
                    credits={a: Decimal(v["credit"]) for a, v in document.items()})


def _account_document(vendor_id: str, account: Account) -> dict:
    return {"_id": f"{vendor_id}|{account.key}", "vendorId": vendor_id, "key": account.key, "code": account.code,
            "name": account.name, "type": account.type.value}


MAX_STRING = "\U0010ffff"  # bounds a string range so the server can seek it in an index


def source_phases(query: SourceQuery) -> list[dict]:
    """The filters that together read what `query` asks for, each one index-friendly.

    Dates may be BSON datetimes or ISO strings, which the server cannot compare
    with each other: documents with string dates are read by their own phase
    (strings compared as text, a day early for offsets) and filtered exactly once
    parsed. Incremental reads add the unchanged documents rejected last time.
    Separate queries instead of one `$or`, since not every server plans an `$or`
    over indexes; a document's field has one type, so no document is read twice.
    """
    date_options: list[dict] = [{}]
    date_range = _range(query.date_from, query.date_until)
    if date_range:
        name = date_field(query.source_type)
        date_options = [{name: date_range}, {name: {"$gte": "", "$lte": MAX_STRING}}]
    change_options: list[dict] = [{}]
    if query.changed_since is not None:
        text_since = (query.changed_since - timedelta(days=1)).strftime("%Y-%m-%d")
        change_options = [{"updatedAt": {"$gte": query.changed_since}}, {"updatedAt": None},
                          {"updatedAt": {"$gte": text_since, "$lte": MAX_STRING}}]
        if query.recheck_ids:
            change_options.append({"_id": {"$in": list(query.recheck_ids)}, "updatedAt": {"$lt": query.changed_since}})
    return [_and([{"vendorId": query.vendor_id}, date_clause, change_clause])
            for date_clause in date_options for change_clause in change_options]


def _remaining_reads(query: SourceQuery) -> Iterator[tuple[int, dict]]:
    """(phase, filter) of what is left to read: the phases from `query.phase` on, the first
    of them only after `query.after_id` (a resumed read)."""
    for number, phase in enumerate(source_phases(query)):
        if number < query.phase:
            continue
        if number == query.phase and query.after_id is not None:
            for after in ids_after(query.after_id):
                yield number, _and([phase, after])
        else:
            yield number, phase


# The lowest value of each BSON type bracket, in MongoDB's comparison order. A range
# only ever matches values of its bound's bracket, so "every `_id` after X" is X's
# bracket after X, then each later bracket from its lowest value (each one an index range).
_BRACKET_FLOORS: tuple[Any, ...] = (None, float("-inf"), "", {}, Binary(b"", 0), ObjectId("0" * 24), False,
                                    datetime(1, 1, 1, tzinfo=timezone.utc), Timestamp(0, 0))


def _bracket(value: Any) -> int:
    """The position of a value's BSON type bracket in `_BRACKET_FLOORS`."""
    if isinstance(value, bool):  # a bool is an int in Python, not in BSON
        return 6
    kinds: tuple[tuple[type, ...], ...] = ((type(None),), (int, float, Decimal128), (str,), (dict,), (bytes, Binary),
                                           (ObjectId,), (bool,), (datetime,), (Timestamp,))
    return next((number for number, kind in enumerate(kinds) if isinstance(value, kind)), len(kinds))


def ids_after(after_id: Any) -> list[dict]:
    """Filters that together match every `_id` sorting after `after_id`, whatever its type."""
    later = [{"_id": {"$gte": floor}} for floor in _BRACKET_FLOORS[_bracket(after_id) + 1:]]
    return [{"_id": {"$gt": after_id}}, *later]


def _and(clauses: list[dict]) -> dict:
    merged: dict = {}
    for clause in clauses:
        for key, value in clause.items():
            if key in merged:
                return {"$and": [c for c in clauses if c]}
            merged[key] = value
    return merged


def _range(start: datetime | None, end: datetime | None) -> dict:
    bounds: dict[str, datetime] = {}
    if start is not None:
        bounds["$gte"] = start
    if end is not None:
        bounds["$lt"] = end
    return bounds


def _decimal(value: Any) -> Decimal:
    return to_decimal(value) if isinstance(value, Decimal128) else Decimal(str(value))


def _cents(value: Any) -> Decimal:
    return _decimal(value).quantize(Decimal("0.01"))


def as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def utc_now() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
