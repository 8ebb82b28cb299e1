"""The business app's source collections: read only, always by an index, a batch at a time."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId, Timestamp
from bson.binary import Binary
from bson.decimal128 import Decimal128
from pymongo import ASCENDING
from pymongo.database import Database

from ledger.ids import id_key
from ledger.kinds import SourceKind, kinds
from ledger.parsing import InvalidValue, to_utc_datetime
from ledger.selection import Changes

MAX_STRING = "\U0010ffff"  # bounds a string range so the server can seek it in an index


@dataclass(frozen=True)
class SourceQuery:
    """Which source documents of one kind a sync step reads."""

    vendor_id: str
    kind: SourceKind
    date_from: datetime | None = None  # inclusive
    date_until: datetime | None = None  # exclusive (the day after dateTo)
    changed_since: datetime | None = None  # incremental: updatedAt at or after this
    after_id: Any = None  # resume: continue after this `_id` ...
    phase: int = 0  # ... in this phase (see `source_phases`)
    recheck_ids: tuple[Any, ...] = ()  # incremental: also these unchanged documents (rejected last time)
    only_ids: tuple[Any, ...] | None = None  # just these documents (the continuous sync's)

    def resumed(self, phase: int, after_id: Any) -> SourceQuery:
        return replace(self, phase=phase, after_id=after_id)


class SourceStore:
    def __init__(self, db: Database, collections: Mapping[str, str], batch_size: int):
        """`collections`: the collection of each source kind, by kind type."""
        self.db = db
        self.collections = collections
        self.batch_size = batch_size

    def collection(self, kind: SourceKind):
        return self.db[self.collections.get(kind.type, kind.collection)]

    def ensure_indexes(self) -> None:
        for kind in kinds():
            collection = self.collection(kind)
            collection.create_index([("vendorId", ASCENDING), ("_id", ASCENDING)], name="ledger_sync_by_vendor")
            collection.create_index([("vendorId", ASCENDING), ("updatedAt", ASCENDING)], name="ledger_sync_changed")
            collection.create_index([("vendorId", ASCENDING), (kind.date_field, ASCENDING)], name="ledger_sync_by_date")
            collection.create_index([("updatedAt", ASCENDING), ("vendorId", ASCENDING)], name="ledger_sync_changes")

    def count(self, query: SourceQuery) -> int:
        """How many documents of the selection the query reads, as the step counts them (its progress
        total): the phases read wider than the selection (string dates a day wider on each side,
        rechecked ids a change phase also reads) are counted document by document, on two fields."""
        collection = self.collection(query.kind)
        total = 0
        for _, part, rechecks, wider in _remaining_reads(query):
            if not (rechecks or wider):
                total += collection.count_documents(part)
                continue
            fields = {query.kind.date_field: 1, "updatedAt": 1}
            total += sum(1 for document in collection.find(part, fields)
                         if not (rechecks and _read_by_a_change_phase(query, document))
                         and _in_selected_dates(query, document.get(query.kind.date_field)))
        return total

    def batches(self, query: SourceQuery) -> Generator[tuple[int, list[dict[str, Any]]], None, None]:
        """(phase, documents) in `_id` order within each phase, a batch at a time (a round trip each)."""
        collection = self.collection(query.kind)
        for number, part, rechecks, _ in _remaining_reads(query):
            with collection.find(part, sort=[("_id", ASCENDING)], batch_size=self.batch_size) as cursor:
                batch: list[dict[str, Any]] = []
                for document in cursor:
                    if not (rechecks and _read_by_a_change_phase(query, document)):
                        batch.append(document)
                    if len(batch) == self.batch_size:
                        yield number, batch
                        batch = []
                if batch:
                    yield number, batch

    def missing_ids(self, kind: SourceKind, vendor_id: str, ids: list[Any]) -> list[Any]:
        """Which of `ids` are gone from the source collection (hard deletes)."""
        found = {id_key(doc["_id"]) for doc in self.collection(kind).find(
            {"vendorId": vendor_id, "_id": {"$in": ids}}, {"_id": 1})}
        return [source_id for source_id in ids if id_key(source_id) not in found]

    def watch(self, resume_after: Any = None, max_await_ms: int = 200) -> Any:
        """A change stream over every source collection (inserts, updates, replaces, deletes), with the
        document as it is now; after `resume_after` if given."""
        by_collection = [self.collection(kind).name for kind in kinds()]
        pipeline = [{"$match": {"ns.coll": {"$in": by_collection},
                                "operationType": {"$in": ["insert", "update", "replace", "delete"]}}}]
        return self.db.watch(pipeline, full_document="updateLookup", resume_after=resume_after,
                             max_await_time_ms=max_await_ms)

    def kind_of_collection(self, name: str) -> SourceKind | None:
        return next((kind for kind in kinds() if self.collection(kind).name == name), None)

    def has_vendor(self, vendor_id: str) -> bool:
        return any(self.collection(kind).find_one({"vendorId": vendor_id}, {"_id": 1}) is not None for kind in kinds())

    def changes_since(self, since: datetime | None) -> dict[str, dict[str, Changes]]:
        """Per kind step, each vendor's documents with `updatedAt` at or after `since` (every document
        without it): one aggregation per collection, on `ledger_sync_changes`, whatever the number of vendors."""
        pipeline = CHANGES_GROUP if since is None else [{"$match": {"updatedAt": {"$gte": since}}}, *CHANGES_GROUP]
        found: dict[str, dict[str, Changes]] = {}
        for kind in kinds():
            groups = self.collection(kind).aggregate(pipeline)
            found[kind.step] = {group["_id"]: Changes(group["documents"], group["latest"] if isinstance(
                group["latest"], datetime) else None) for group in groups if isinstance(group["_id"], str)}
        return found

    def vendor_ids(self) -> list[str]:
        vendors: set[str] = set()
        for kind in kinds():
            vendors.update(v for v in self.collection(kind).distinct("vendorId") if isinstance(v, str))
        return sorted(vendors)


CHANGES_GROUP: list[dict[str, Any]] = [{"$group": {"_id": "$vendorId", "documents": {"$sum": 1},
                                                  "latest": {"$max": "$updatedAt"}}}]


def source_phases(query: SourceQuery) -> list[dict[str, Any]]:
    """The filters that together read what `query` asks for, each one index-friendly.

    Dates may be BSON datetimes or ISO strings, which the server cannot compare
    with each other: documents with string dates are read by their own phase
    (strings compared as text, a day wider on each side for offsets) and filtered
    exactly once parsed. Incremental reads read what changed (within a date range or
    not: it is filtered once read), and add the unchanged documents rejected last
    time, by `_id` alone (an extra range clause can cost a server its index). Separate
    queries instead of one `$or`, since not every server plans an `$or` over indexes;
    a document's field has one type, so no document is read twice (the rechecked ids
    skip what a change phase read).
    """
    return [phase for phase, _, _ in _phases(query)]


def _date_options(query: SourceQuery) -> list[tuple[dict[str, Any], bool]]:
    """(date clause, whether it reads wider than the selection) of each date phase."""
    date_range = _range(query.date_from, query.date_until)
    if not date_range:
        return [({}, False)]
    text_range: dict[str, Any] = {"$gte": "", "$lte": MAX_STRING}
    if query.date_from is not None:
        text_range["$gte"] = _day_text(query.date_from - timedelta(days=1))
    if query.date_until is not None:
        del text_range["$lte"]
        text_range["$lt"] = _day_text(query.date_until + timedelta(days=1))
    return [({query.kind.date_field: date_range}, False), ({query.kind.date_field: text_range}, True)]


def _in_selected_dates(query: SourceQuery, value: Any) -> bool:
    """Whether a document's own date is in the query's range (as the step filters: an unreadable
    date is let through, for validation to report)."""
    try:
        moment = to_utc_datetime(value)
    except InvalidValue:
        return True
    return ((query.date_from is None or moment >= query.date_from)
            and (query.date_until is None or moment < query.date_until))


def _phases(query: SourceQuery) -> list[tuple[dict[str, Any], bool, bool]]:
    """(filter, whether it rechecks rejected ids, whether its dates read wider than the selection)
    for each phase of `source_phases`."""
    if query.only_ids is not None:
        return [({"vendorId": query.vendor_id, "_id": {"$in": list(query.only_ids)}}, False, False)]
    change_options: list[tuple[dict[str, Any], bool]] = [({}, False)]
    if query.changed_since is not None:
        change_options = [({"updatedAt": {"$gte": query.changed_since}}, False), ({"updatedAt": None}, False),
                          ({"updatedAt": {"$gte": _day_text(query.changed_since - timedelta(days=1)),
                                          "$lte": MAX_STRING}}, False)]
        if query.recheck_ids:
            change_options.append(({"_id": {"$in": list(query.recheck_ids)}}, True))
    # An incremental read is bounded by what changed, so its date range is left to the exact
    # filter after reading (it reads wider than the selection then): no index holds the vendor,
    # a date and `updatedAt` together, and SecantusDB scans the whole collection for a query
    # no single index covers.
    date_options = _date_options(query) if query.changed_since is None else \
        [({}, bool(_range(query.date_from, query.date_until)))]
    return [(_and([{"vendorId": query.vendor_id}, date_clause, change_clause]), rechecks, wider)
            for date_clause, wider in date_options for change_clause, rechecks in change_options]


def _read_by_a_change_phase(query: SourceQuery, document: dict[str, Any]) -> bool:
    """Whether a rechecked (previously rejected) document also matches a change phase, which read it."""
    assert query.changed_since is not None
    updated = document.get("updatedAt")
    if updated is None:
        return True
    if isinstance(updated, datetime):
        moment = updated if updated.tzinfo else updated.replace(tzinfo=UTC)
        return moment >= query.changed_since
    if isinstance(updated, str):
        return updated >= _day_text(query.changed_since - timedelta(days=1))
    return False


def _day_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def _remaining_reads(query: SourceQuery) -> Iterator[tuple[int, dict[str, Any], bool, bool]]:
    """(phase, filter, rechecks, wider) of what is left to read: the phases from `query.phase` on, the
    first of them only after `query.after_id` (a resumed read)."""
    for number, (phase, rechecks, wider) in enumerate(_phases(query)):
        if number < query.phase:
            continue
        if number == query.phase and query.after_id is not None:
            for after in ids_after(query.after_id):
                yield number, _and([phase, after]), rechecks, wider
        else:
            yield number, phase, rechecks, wider


# The lowest value of each BSON type bracket, in MongoDB's comparison order. A range
# only ever matches values of its bound's bracket, so "every `_id` after X" is X's
# bracket after X, then each later bracket from its lowest value (each one an index range).
_BRACKET_FLOORS: tuple[Any, ...] = (None, float("-inf"), "", {}, Binary(b"", 0), ObjectId("0" * 24), False,
                                    datetime(1, 1, 1, tzinfo=UTC), Timestamp(0, 0))
_BRACKET_TYPES: tuple[tuple[type, ...], ...] = ((type(None),), (int, float, Decimal128), (str,), (dict,),
                                                (bytes, Binary), (ObjectId,), (bool,), (datetime,), (Timestamp,))


def _bracket(value: Any) -> int:
    """The position of a value's BSON type bracket in `_BRACKET_FLOORS`."""
    if isinstance(value, bool):  # a bool is an int in Python, not in BSON
        return _BRACKET_TYPES.index((bool,))
    return next((number for number, kind in enumerate(_BRACKET_TYPES) if isinstance(value, kind)),
                len(_BRACKET_TYPES))


def ids_after(after_id: Any) -> list[dict[str, Any]]:
    """Filters that together match every `_id` sorting after `after_id`, whatever its type."""
    later = [{"_id": {"$gte": floor}} for floor in _BRACKET_FLOORS[_bracket(after_id) + 1:]]
    return [{"_id": {"$gt": after_id}}, *later]


def _and(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for clause in clauses:
        for key, value in clause.items():
            if key in merged:
                return {"$and": [c for c in clauses if c]}
            merged[key] = value
    return merged


def _range(start: datetime | None, end: datetime | None) -> dict[str, datetime]:
    bounds: dict[str, datetime] = {}
    if start is not None:
        bounds["$gte"] = start
    if end is not None:
        bounds["$lt"] = end
    return bounds
