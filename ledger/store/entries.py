"""Journal entries (`ledger_entries`): written once, never updated or deleted; read by index."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128
from pymongo import ASCENDING
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from ledger.balances import LineCounts
from ledger.entries import ZERO, JournalEntry
from ledger.ids import id_key
from ledger.store.bulk import DUPLICATE_KEY, insert_new
from ledger.store.codec import cents, decimal, entry_from_document, entry_to_document
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
    foreign: int = 0  # entries carrying another sync's id
    places: tuple[int, int] | None = None  # the lowest and the highest place in the chain they hold
    unplaced: int = 0  # entries without a place in the chain


def _line_sum(side: str) -> dict[str, Any]:
    # $reduce rather than {"$sum": "$lines.debit"}: not every server resolves a path through an
    # array inside $project (SecantusDB 0.7 answers 0, which would hide every unbalanced entry).
    return {"$reduce": {"input": "$lines", "initialValue": Decimal128("0"),
                        "in": {"$add": ["$$value", f"$$this.{side}"]}}}


_UNBALANCED = {"$cond": [{"$eq": [_line_sum("debit"), _line_sum("credit")]}, 0, 1]}


# `by_date` is a prefix of `by_date_id`, which serves its queries; every index costs each insert
# (on SecantusDB about a tenth of a millisecond per entry each).
_OBSOLETE_INDEXES = {"by_date"}


class EntryStore:
    def __init__(self, collection: Collection, batch_size: int):
        self.collection = collection
        self.batch_size = batch_size

    def ensure_indexes(self) -> None:
        self.collection.create_index([("vendorId", ASCENDING), ("source.type", ASCENDING), ("source.id", ASCENDING)],
                                     name="by_source")
        self.collection.create_index([("vendorId", ASCENDING), ("syncId", ASCENDING)], name="by_sync")
        # The chain: one entry per place, so two writers can never fork it (entries from before it have no seq).
        self.collection.create_index([("vendorId", ASCENDING), ("seq", ASCENDING)], name="by_chain", unique=True,
                                     partialFilterExpression={"seq": {"$exists": True}})
        # The chain's reads: SecantusDB plans no query on a partial index (a scan of the whole
        # collection instead), so a full index of the same order serves them on every server.
        self.collection.create_index([("vendorId", ASCENDING), ("seq", ASCENDING), ("_id", ASCENDING)],
                                     name="by_chain_order")
        for obsolete in _OBSOLETE_INDEXES & set(self.collection.index_information()):
            self.collection.drop_index(obsolete)
        # Reading the books: an account's lines in (date, id) order, and the whole ledger in that order (export).
        self.collection.create_index([("vendorId", ASCENDING), ("lines.account", ASCENDING), ("date", ASCENDING),
                                      ("_id", ASCENDING)], name="by_account")
        self.collection.create_index([("vendorId", ASCENDING), ("date", ASCENDING), ("_id", ASCENDING)],
                                     name="by_date_id")  # also every date range
        # Whose document was deleted: a change stream's delete event carries only its `_id`.
        self.collection.create_index([("source.type", ASCENDING), ("source.id", ASCENDING)], name="by_source_id")

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

    def insert_chained(self, documents: list[dict[str, Any]], session: ClientSession) -> None:
        """Insert a batch's entries, already given their places in the chain, inside the batch's
        transaction: any duplicate aborts it (`EntryIdCollision` says whose id it was)."""
        if not documents:
            return
        try:
            self.collection.insert_many(documents, ordered=True, session=session)
        except BulkWriteError as error:
            problems = error.details.get("writeErrors", [])
            duplicate = next((p for p in problems if p.get("code") == DUPLICATE_KEY), None)
            if duplicate is None:
                raise
            taken = documents[duplicate["index"]]
            existing = self.collection.find_one({"_id": taken["_id"]})
            same = existing is not None and _posting_identity(existing) == _posting_identity(taken)
            whose = "the same posting, written by something else" if same else "a different posting"
            raise EntryIdCollision(
                f"entry id {taken['_id']!r} is already taken by {whose} ({_describe(existing)}); a batch is written "
                "whole or not at all, so nothing of it was counted as posted. Run `ledger-sync verify` and check "
                "what else writes ledger_entries") from None

    def at_seq(self, vendor_id: str, seq: int) -> dict[str, Any] | None:
        return self.collection.find_one({"vendorId": vendor_id, "seq": seq})

    def any_after(self, vendor_id: str, seq: int) -> dict[str, Any] | None:
        """An entry placed after `seq` in the chain, if there is one (there should not be, past the head)."""
        return self.collection.find_one({"vendorId": vendor_id, "seq": {"$gt": seq}}, {"_id": 1, "seq": 1})

    def unchained(self, vendor_id: str, chained_once: set[str]) -> str | None:
        """The id of an entry that has no place in the chain (neither its own `seq` nor one of the
        entries chained once), if there is one."""
        for entry in self.collection.find({"vendorId": vendor_id, "seq": {"$exists": False}}, {"_id": 1}):
            if entry["_id"] not in chained_once:
                return str(entry["_id"])
        return None

    def count(self, vendor_id: str) -> int:
        return self.collection.count_documents({"vendorId": vendor_id})

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

    def vendors_of(self, source_type: str, source_id: Any) -> list[str]:
        """The vendors that have entries for a document of this type and `_id` (index `by_source_id`)."""
        return sorted({doc["vendorId"] for doc in self.collection.find(
            {"source.type": source_type, "source.id": {"$in": [source_id]}}, {"vendorId": 1})})

    def has_entries(self, vendor_id: str, source_type: str) -> bool:
        return self.collection.find_one({"vendorId": vendor_id, "source.type": source_type}, {"_id": 1}) is not None

    def for_source_id(self, vendor_id: str, source_type: str | None, source_id: Any) -> list[dict[str, Any]]:
        """Entries of one source document, in the order written (`$in`: the id is always a value)."""
        query: dict[str, Any] = {"vendorId": vendor_id, "source.id": {"$in": [source_id]}}
        if source_type is not None:
            query["source.type"] = source_type
        return list(self.collection.find(query).sort([("postedAt", ASCENDING), ("_id", ASCENDING)]).limit(1000))

    # ---- reading the books ------------------------------------------------------

    def account_window(self, vendor_id: str, account: str, start: datetime, end: datetime,
                       after: tuple[datetime, str] | None, limit: int) -> list[JournalEntry]:
        """Up to `limit` entries with a line on `account`, dated in [start, end), in (date, id) order,
        after the keyset `after` (index `by_account`; the server sorts what the range holds, since a
        multikey index gives no order: callers keep the range to about a month).

        After a keyset, the rest of its day and then the later days are two queries, not an `$or`:
        SecantusDB plans an `$or` on no index, and a hinted one by scanning the whole index."""
        on_account: dict[str, Any] = {"vendorId": vendor_id, "lines.account": account}
        if after is None or after[0] < start:
            queries = [{**on_account, "date": {"$gte": start, "$lt": end}}]
        else:
            queries = [{**on_account, "date": after[0], "_id": {"$gt": after[1]}}] if after[0] < end else []
            queries.append({**on_account, "date": {"$gt": after[0], "$lt": end}})
        found: list[JournalEntry] = []
        for query in queries:
            if len(found) >= limit:
                break
            cursor = self.collection.find(query).sort([("date", ASCENDING), ("_id", ASCENDING)])
            found.extend(entry_from_document(doc) for doc in cursor.limit(limit - len(found)))
        return found

    def account_movement(self, vendor_id: str, account: str, start: datetime, before: datetime,
                         through_id: str | None = None) -> Decimal:
        """Debits − credits on `account` of the entries dated in [start, before), and of those dated
        exactly `before` with an id up to `through_id` (a keyset position), added up by the server
        (an aggregation each, not an `$or`: see `account_window`)."""
        on_account: dict[str, Any] = {"vendorId": vendor_id, "lines.account": account}
        matches = [{**on_account, "date": {"$gte": start, "$lt": before}}]
        if through_id is not None:
            matches.append({**on_account, "date": before, "_id": {"$lte": through_id}})
        movement = cents(0)
        for match in matches:
            for row in self.collection.aggregate([
                {"$match": match},
                {"$unwind": "$lines"},
                {"$match": {"lines.account": account}},
                {"$group": {"_id": None, "debit": {"$sum": "$lines.debit"}, "credit": {"$sum": "$lines.credit"}}},
            ]):
                movement += cents(row["debit"]) - cents(row["credit"])
        return movement

    def open_on_account(self, vendor_id: str, account: str, end: datetime) -> list[dict[str, Any]]:
        """Per document (type and id, its payments and refunds with it): the debits − credits of its
        lines on a control account dated before `end`, its date and party, added up by the server."""
        return list(self.collection.aggregate([
            {"$match": {"vendorId": vendor_id, "lines.account": account, "date": {"$lt": end}}},
            {"$unwind": "$lines"},
            {"$match": {"lines.account": account}},
            {"$group": {"_id": {"type": "$source.type", "id": "$source.id"},
                        "debit": {"$sum": "$lines.debit"}, "credit": {"$sum": "$lines.credit"},
                        "documentDate": {"$min": "$source.documentDate"}, "firstDate": {"$min": "$date"},
                        "party": {"$last": "$source.party"}}},
        ], batchSize=self.batch_size))

    def stream(self, vendor_id: str, start: datetime, end: datetime) -> Iterator[JournalEntry]:
        """Every entry dated in [start, end), in (date, id) order, a batch at a time (index `by_date_id`)."""
        cursor = self.collection.find({"vendorId": vendor_id, "date": {"$gte": start, "$lt": end}},
                                      batch_size=self.batch_size).hint("by_date_id")  # its order: no sort stage
        for document in cursor:
            yield entry_from_document(document)

    def history(self, vendor_id: str, source_type: str, source_id: Any) -> list[JournalEntry]:
        """Every entry of a document and its payments, in the order written (place in the chain;
        entries from before the chain first), index `by_source`."""
        cursor = self.collection.find({"vendorId": vendor_id, "source.type": source_type,
                                       "source.id": {"$in": [source_id]}})
        return [entry_from_document(doc) for doc in cursor.sort([("seq", ASCENDING), ("postedAt", ASCENDING),
                                                                 ("_id", ASCENDING)])]

    # ---- sums, added up by the server -------------------------------------------

    def daily_movements(self, vendor_id: str) -> tuple[dict[str, Balances], LineCounts]:
        """Debits, credits and line counts per account per day of every entry, added up by the server
        (the periodic proof of the balances by month and day, and how a ledger from before them gets them)."""
        return _day_rows_to_balances(self.collection.aggregate([
            {"$match": {"vendorId": vendor_id}},
            {"$unwind": "$lines"},
            {"$group": {"_id": {"day": {"$dateToString": {"format": "%Y-%m-%d", "date": "$date"}},
                                "account": "$lines.account"},
                        "debit": {"$sum": "$lines.debit"}, "credit": {"$sum": "$lines.credit"}, "lines": {"$sum": 1}}},
        ]))

    def movements_between(self, vendor_id: str, start: datetime, end: datetime) -> Balances:
        """Debits and credits per account of the entries dated in [start, end) (index `by_date_id`)."""
        rows = self.collection.aggregate([
            {"$match": {"vendorId": vendor_id, "date": {"$gte": start, "$lt": end}}},
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
        """What the ledger holds of one sync (index `by_sync`): entries, debits and credits per
        account, unbalanced entries, and the places in the chain they hold."""
        return self._read_back({"vendorId": vendor_id, "syncId": sync_id}, None)

    def written_after(self, vendor_id: str, seq: int, sync_id: str | None = None) -> Written:
        """The same for every entry placed after `seq` in the chain (index `by_chain_order`), and how
        many of them carry a sync id other than `sync_id`."""
        return self._read_back({"vendorId": vendor_id, "seq": {"$gt": seq}}, sync_id)

    def _read_back(self, query: dict[str, Any], sync_id: str | None) -> Written:
        """Read back and added up here, not in an aggregation: a pipeline that checks each entry's
        balance costs SecantusDB four times the read (`$reduce` over the lines, per entry)."""
        debits: dict[str, Decimal] = {}
        credits: dict[str, Decimal] = {}
        entries = unbalanced = foreign = unplaced = 0
        low = high = None
        for entry in self.collection.find(query, {"_id": 0, "lines": 1, "syncId": 1, "seq": 1},
                                          batch_size=self.batch_size):
            entries += 1
            foreign += sync_id is not None and entry.get("syncId") != sync_id
            seq = entry.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool):
                low, high = (seq, seq) if low is None or high is None else (min(low, seq), max(high, seq))
            else:
                unplaced += 1
            net = ZERO
            for line in entry.get("lines") or ():
                debit, credit = decimal(line.get("debit", 0)), decimal(line.get("credit", 0))
                account = line.get("account")
                debits[account] = debits.get(account, ZERO) + debit
                credits[account] = credits.get(account, ZERO) + credit
                net += debit - credit
            unbalanced += net != 0
        return Written(entries=entries, unbalanced=unbalanced, foreign=foreign, unplaced=unplaced,
                       places=None if low is None or high is None else (low, high),
                       balances=Balances(debits={account: cents(total) for account, total in debits.items()},
                                         credits={account: cents(total) for account, total in credits.items()}))


def _day_rows_to_balances(rows: Iterable[dict[str, Any]]) -> tuple[dict[str, Balances], LineCounts]:
    debits: dict[str, dict[str, Decimal]] = {}
    credits: dict[str, dict[str, Decimal]] = {}
    lines: LineCounts = {}
    for row in rows:
        day, account = row["_id"]["day"], row["_id"]["account"]
        debits.setdefault(day, {})[account] = cents(row["debit"])
        credits.setdefault(day, {})[account] = cents(row["credit"])
        lines.setdefault(day, {})[account] = int(row["lines"])
    return {day: Balances(debits=debits[day], credits=credits[day]) for day in sorted(debits)}, lines


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
