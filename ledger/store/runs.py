"""Sync-run records (`ledger_sync_runs`): the only code that reads or writes them.

One document per sync. A partial unique index on `vendorId` over `active: true`
allows one active run per vendor. Every write a run's own process makes goes
through a `RunGuard`: it matches only while that attempt is current (the run
active, its attempt number unchanged), so a process whose run was declared
crashed and resumed elsewhere writes nothing more (`Fenced`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pydantic.alias_generators import to_camel
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from ledger.selection import RunFact
from ledger.store.codec import run_from_document, run_to_document
from ledger.store.conflicts import retry_conflicts
from ledger.sync_run import CHECK_EXISTING, CLOSING_FIELDS, COMPLETE, Progress, RunState, StepState, SyncRun


class SyncAlreadyRunning(Exception):
    def __init__(self, sync_id: str):
        super().__init__(f"a sync is already running for this vendor: {sync_id}")
        self.sync_id = sync_id


class Fenced(Exception):
    """This process's attempt is no longer current: the run was settled or resumed elsewhere."""


@dataclass(frozen=True)
class RunGuard:
    """The attempt a process runs: its writes land only while it is still the current one, and
    (`owner`) while this process is the one that claimed it."""

    sync_id: str
    attempt: int
    owner: str | None = None

    @property
    def filter(self) -> dict[str, Any]:
        conditions: dict[str, Any] = {"_id": self.sync_id, "attempts": self.attempt, "active": True}
        if self.owner is not None:
            conditions["owner"] = self.owner
        return conditions


def _stored(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(by_alias=True)
    if isinstance(value, dict):
        return {key: _stored(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_stored(item) for item in value]
    return value


def field(*names: str) -> str:
    """The stored path of a run field (`field("steps", "sales_invoices", "last_id")` → `steps.sales_invoices.lastId`);
    step names are kept as they are."""
    return ".".join(name if index == 1 and names[0] == "steps" else to_camel(name) for index, name in enumerate(names))


class RunRepository:
    def __init__(self, collection: Collection):
        self.collection = collection

    def ensure_indexes(self) -> None:
        self.collection.create_index([("vendorId", ASCENDING), ("startedAt", DESCENDING)], name="by_vendor_recent")
        self.collection.create_index([("vendorId", ASCENDING)], name="one_active_sync_per_vendor", unique=True,
                                     partialFilterExpression={"active": True})
        self.collection.create_index([("active", ASCENDING), ("heartbeatAt", ASCENDING)], name="active_by_heartbeat",
                                     partialFilterExpression={"active": True})
        # SecantusDB plans no query on a partial index, and uses an index only when it holds every
        # field the query names: these serve the per-sync reads and guarded writes on every server
        # (a closed run has no `active` field: it sorts apart, under null).
        self.collection.create_index([("vendorId", ASCENDING), ("active", ASCENDING)], name="active_of_vendor")
        self.collection.create_index([("active", ASCENDING), ("heartbeatAt", ASCENDING), ("_id", ASCENDING)],
                                     name="silent_runs")
        self.collection.create_index([("_id", ASCENDING), ("attempts", ASCENDING), ("active", ASCENDING),
                                      ("owner", ASCENDING)], name="by_guard")
        self.collection.create_index([("vendorId", ASCENDING), ("state", ASCENDING), ("ledger.runNumber", DESCENDING)],
                                     name="seals_of_vendor")
        self.collection.create_index([("vendorId", ASCENDING), ("state", ASCENDING), ("coverage", ASCENDING),
                                      ("startedAt", DESCENDING)], name="coverage_of_vendor")
        self.collection.create_index([("state", ASCENDING), ("mode", ASCENDING)], name="by_state_and_mode")
        self.collection.create_index([("startedAt", ASCENDING), ("vendorId", ASCENDING)], name="by_start")

    # ---- reading -----------------------------------------------------------------

    def get(self, sync_id: str, vendor_id: str | None = None) -> SyncRun | None:
        query: dict[str, Any] = {"_id": sync_id}
        if vendor_id is not None:
            query["vendorId"] = vendor_id
        return run_from_document(self.collection.find_one(query))

    def active(self) -> list[SyncRun]:
        """Every run in progress, of any vendor."""
        return [SyncRun.model_validate(doc) for doc in self.collection.find({"active": True})]

    def running(self, vendor_id: str) -> SyncRun | None:
        return run_from_document(self.collection.find_one({"vendorId": vendor_id, "active": True}))

    def recent(self, vendor_id: str, limit: int = 20) -> list[SyncRun]:
        return [SyncRun.model_validate(doc) for doc in
                self.collection.find({"vendorId": vendor_id}).sort("startedAt", DESCENDING).limit(limit)]

    def latest_seal(self, vendor_id: str) -> SyncRun | None:
        """The completed run that sealed the vendor's books last (highest run number)."""
        return run_from_document(self.collection.find_one(
            {"vendorId": vendor_id, "state": RunState.COMPLETED, "ledger.runNumber": {"$gte": 0}},
            sort=[("ledger.runNumber", DESCENDING)]))

    def last_covering(self, vendor_id: str, step: str) -> SyncRun | None:
        """The newest completed run that read every document of `step`'s kind it was asked to."""
        return run_from_document(self.collection.find_one(
            {"vendorId": vendor_id, "state": RunState.COMPLETED, "coverage": step}, sort=[("startedAt", DESCENDING)]))

    def worth_a_look(self, started_from: datetime | None, changed: Iterable[str]) -> list[RunFact]:
        """The runs since `started_from` (all, without it) that selection needs: not completed, with
        rejections, or of a vendor in `changed`. One aggregation on `by_start` (the range in a stage of
        its own: a server may plan a range and an `$or` in one filter as a collection scan)."""
        since: list[dict[str, Any]] = [] if started_from is None else [
            {"$match": {"startedAt": {"$gte": started_from}}}]
        pipeline = [*since, {"$match": {"$or": [{"state": {"$ne": RunState.COMPLETED}}, {"errorsCount": {"$gt": 0}},
                                                {"vendorId": {"$in": sorted(changed)}}]}},
                    {"$project": {"vendorId": 1, "state": 1, "startedAt": 1, "coverage": 1, "errorsCount": 1,
                                  "active": 1}}]
        return [RunFact(vendor_id=doc["vendorId"], state=doc["state"], started_at=doc["startedAt"],
                        coverage=tuple(doc.get("coverage") or ()), errors=int(doc.get("errorsCount") or 0),
                        active=bool(doc.get("active")))
                for doc in self.collection.aggregate(pipeline, batchSize=100_000)]

    def stale(self, heartbeat_before: datetime) -> list[SyncRun]:
        """Active runs without a heartbeat since `heartbeat_before` (index `silent_runs`).

        A run still queued for a flow run that exists is not stale: it waits for a worker
        (the events bridge settles it if Prefect crashes or cancels that flow run). That is
        decided here, not in the query: SecantusDB scans the collection for an `$or` or `$ne`."""
        silent = self.collection.find({"active": True, "heartbeatAt": {"$lt": heartbeat_before}})
        return [SyncRun.model_validate(doc) for doc in silent
                if doc.get("state") != RunState.QUEUED or doc.get("flowRunId") is None]

    def figures(self, duration_buckets_ms: tuple[int, ...]) -> list[dict[str, Any]]:
        """Every run counted on the server, per state and mode (index `by_state_and_mode`): runs, the time
        finished ones took (and how many took at most each bucket), documents read, entries posted
        (reversals included) and documents rejected. What `/metrics` shows, whichever process ran the syncs."""
        def total(name: str) -> dict[str, Any]:
            return {"$ifNull": [f"$stats.total.{name}", 0]}

        timed = {"$gt": ["$durationMs", None]}
        group: dict[str, Any] = {
            "_id": {"state": "$state", "mode": {"$ifNull": ["$mode", "incremental"]}}, "runs": {"$sum": 1},
            "durationMs": {"$sum": {"$ifNull": ["$durationMs", 0]}}, "documents": {"$sum": total("scanned")},
            "entries": {"$sum": {"$add": [total("synced"), total("reversed")]}}, "rejected": {"$sum": total("errors")},
            **{f"le{bucket}": {"$sum": {"$cond": [{"$and": [timed, {"$lte": ["$durationMs", bucket]}]}, 1, 0]}}
               for bucket in duration_buckets_ms}}
        figures = []
        for row in self.collection.aggregate([{"$match": {"state": {"$in": [state.value for state in RunState]}}},
                                              {"$group": group}]):
            buckets = [row.pop(f"le{bucket}") for bucket in duration_buckets_ms]
            figures.append({**row.pop("_id"), **row, "buckets": buckets})
        return figures

    # ---- opening and resuming -----------------------------------------------------

    def create(self, run: SyncRun) -> SyncRun:
        """Insert a new active run; raise `SyncAlreadyRunning` if the vendor has one."""
        document = run_to_document(run)
        for _ in range(2):
            try:
                self.collection.insert_one(document)
                return run
            except DuplicateKeyError:
                running = self.collection.find_one({"vendorId": run.vendor_id, "active": True}, {"_id": 1})
                if running is not None:
                    raise SyncAlreadyRunning(running["_id"]) from None
                # it finished between our insert and this read: try once more
        raise SyncAlreadyRunning(run.sync_id)

    def reopen(self, sync_id: str, vendor_id: str, attempt: int, run_number: int, now: datetime) -> SyncRun | None:
        """Make a resumable run active again as attempt `attempt + 1`, if it is still that attempt
        and still resumable (exactly one of several simultaneous resumes wins); None otherwise.
        Raises `SyncAlreadyRunning` when the vendor has another run active."""
        try:
            document = retry_conflicts(lambda: self.collection.find_one_and_update(
                {"_id": sync_id, "vendorId": vendor_id, "attempts": attempt, "active": {"$ne": True},
                 "state": {"$in": [state for state in RunState if state.resumable]}},
                {"$set": {"state": RunState.QUEUED, "error": None, "endedAt": None, "heartbeatAt": now,
                          "attemptStartedAt": now, "runNumber": run_number, "cancelRequested": False,
                          "attempts": attempt + 1, "flowRunId": None, "owner": None, "active": True,
                          "progress.message": "Queued to resume",
                          # every attempt checks the books it starts from, and verifies what it leaves
                          field("steps", CHECK_EXISTING, "state"): StepState.PENDING,
                          field("steps", COMPLETE, "state"): StepState.PENDING}},
                return_document=ReturnDocument.AFTER))
        except DuplicateKeyError:
            running = self.running(vendor_id)
            raise SyncAlreadyRunning(running.sync_id if running else sync_id) from None
        return run_from_document(document)

    # ---- the run's own process (guarded) --------------------------------------------

    def claim(self, sync_id: str, attempt: int, owner: str, flow_run_id: str | None, now: datetime) -> SyncRun | None:
        """Take an attempt for this process (`owner`), if no other process has; None if one has.
        A double-delivered start runs the flow twice: only the first to claim writes anything.
        The run stays queued (not stale) until the process has the vendor's slot and starts."""
        return run_from_document(retry_conflicts(lambda: self.collection.find_one_and_update(
            {"_id": sync_id, "attempts": attempt, "active": True, "owner": None},
            {"$set": {"owner": owner, "flowRunId": flow_run_id, "heartbeatAt": now}},
            return_document=ReturnDocument.AFTER)))

    def update(self, guard: RunGuard, changes: dict[str, Any], raise_at_least: dict[str, Any] | None = None,
               unless_step_completed: str | None = None, session: ClientSession | None = None) -> SyncRun | None:
        """Apply `changes` (stored paths, see `field`) and raise the `raise_at_least` fields to at least
        their values, in one command; the record after. With `unless_step_completed`, None if that
        step had completed. `Fenced` when the attempt is no longer current."""
        update: dict[str, Any] = {"$set": _stored(changes)}
        if raise_at_least:
            update["$max"] = raise_at_least
        query = dict(guard.filter)
        if unless_step_completed is not None:
            # Read first, not a condition on the step in the write: the attempt's own process is the
            # only writer of its steps (the guard fences out any other), and the write's filter stays
            # on the fields of index `by_guard`.
            state = field("steps", unless_step_completed, "state")
            current = self.collection.find_one(query, {state: 1}, session=session)
            if current is None:
                self._raise_if_fenced(guard, session)
                return None
            if ((current.get("steps") or {}).get(unless_step_completed) or {}).get("state") == StepState.COMPLETED:
                return None
        def write() -> Any:
            return self.collection.find_one_and_update(query, update, return_document=ReturnDocument.AFTER,
                                                       session=session)

        document = write() if session is not None else retry_conflicts(write)  # in a transaction: its retries
        if document is None:
            self._raise_if_fenced(guard, session)
            return None
        return SyncRun.model_validate(document)

    def beat(self, guard: RunGuard, now: datetime) -> bool:
        """The heartbeat; False once the attempt is no longer current."""
        return retry_conflicts(lambda: self.collection.update_one(
            guard.filter, {"$set": {"heartbeatAt": now}})).matched_count == 1

    def _raise_if_fenced(self, guard: RunGuard, session: ClientSession | None = None) -> None:
        if self.collection.find_one(guard.filter, {"_id": 1}, session=session) is not None:
            return
        current = self.collection.find_one({"_id": guard.sync_id}, {"state": 1, "attempts": 1}, session=session) or {}
        raise Fenced(f"sync {guard.sync_id} attempt {guard.attempt} is no longer current (it is "
                     f"{current.get('state', 'gone')}, attempt {current.get('attempts', '?')}); "
                     "this process stops without writing")

    # ---- closing: the one place ------------------------------------------------------

    def close(self, closed: SyncRun, *, guard: RunGuard | None = None, flow_run_id: str | None = None,
              heartbeat_before: datetime | None = None) -> SyncRun | None:
        """Write a run closed by `SyncRun.closed`, if it is still active and, as asked, still this
        attempt (`guard`), still this flow run's, or still without a heartbeat since
        `heartbeat_before`; the record after, or None when it had moved on.

        In a transaction of its own: a run whose process stopped inside a batch transaction stays
        locked until that transaction's lifetime (60 s) ends. A transactional write meets that as a
        write conflict on mongod; the embedded server only reaps expired transactions when a
        transactional command arrives, so a plain write would wait on it for ever."""
        query: dict[str, Any] = guard.filter if guard is not None else {"_id": closed.sync_id, "active": True}
        if flow_run_id is not None:
            query = {**query, "flowRunId": flow_run_id}
        if heartbeat_before is not None:
            query = {**query, "heartbeatAt": {"$lt": heartbeat_before}}
        changes = {to_camel(name): _stored(getattr(closed, name)) for name in CLOSING_FIELDS}
        def write() -> Any:
            with self.collection.database.client.start_session() as session, session.start_transaction():
                return self.collection.find_one_and_update(query, {"$set": changes, "$unset": {"active": ""}},
                                                           return_document=ReturnDocument.AFTER, session=session)

        return run_from_document(retry_conflicts(write))

    # ---- from the API ---------------------------------------------------------------

    def attach_flow_run(self, sync_id: str, flow_run_id: str) -> SyncRun | None:
        """Record the Prefect flow run that will execute this (still active) run."""
        return run_from_document(retry_conflicts(lambda: self.collection.find_one_and_update(
            {"_id": sync_id, "active": True}, {"$set": {"flowRunId": flow_run_id}},
            return_document=ReturnDocument.AFTER)))

    def request_cancel(self, sync_id: str, vendor_id: str, at: datetime) -> SyncRun | None:
        """Flag an active run for cancellation (the flow checks the flag after every batch)."""
        return run_from_document(retry_conflicts(lambda: self.collection.find_one_and_update(
            {"_id": sync_id, "vendorId": vendor_id, "active": True},
            {"$set": {"cancelRequested": True, "cancelRequestedAt": at, "state": RunState.CANCELLING}},
            return_document=ReturnDocument.AFTER)))


def progress_changes(progress: Progress) -> dict[str, Any]:
    """A run's progress fields for `update`, except the percent (only ever raised, with `$max`)."""
    return {field("progress", name): value for name, value in progress.model_dump().items() if name != "percent"}
