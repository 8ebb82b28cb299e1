"""Continuous sync (SPEC §10): follow the source collections' change streams and post every
change within seconds.

The watcher (`ledger-sync watch`, or the `watch-sources/continuous` deployment) is one
long-running flow. It gathers the changes of a short window (`window_seconds`), and posts
each vendor's as one micro-batch: a run of the very same `sync-vendor-ledger` flow, limited
to those documents (a subflow run: same planning and writing code, same idempotent ids,
same rejections, one run record and the same room events per micro-batch). A deleted
document is reversed as a full sync would. A vendor whose sync is running (a click, the
nightly) keeps its changes for the next window, so a manual sync and the watcher never
write a vendor at the same time.

After every window whose changes are all posted, the stream's resume token is kept in the
database: a killed watcher goes on from there (changes handled again are posted once, by
their ids). When the token cannot be resumed from (expired, invalid), the watcher opens a
new stream first and then runs an incremental sync of every vendor, so nothing falls between.
A change stream sees every write, whatever its `updatedAt` says (an import with old
timestamps is posted too).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from typing import Any

from prefect import flow, get_run_logger
from pymongo.errors import OperationFailure, PyMongoError

from flows.database import get_store
from flows.sync_vendor import summary_of, sync_vendor_ledger
from ledger.clock import utc_now
from ledger.ids import id_key
from ledger.store import Store, SyncAlreadyRunning
from ledger.store.watch import BEAT_SECONDS, DEFAULT_WATCHER

WATCH_FLOW_NAME = "watch-sources"
_stopping = threading.Event()


def request_stop() -> None:
    """Ask a watcher running in this process to stop after its current window (SIGTERM, tests)."""
    _stopping.set()

Pending = dict[str, dict[str, set[str]]]  # vendor -> step -> id keys


@flow(name=WATCH_FLOW_NAME, log_prints=False)
def watch_sources(window_seconds: float = 0.3, max_documents: int = 500, stop_after_seconds: float | None = None,
                  name: str = DEFAULT_WATCHER) -> dict[str, Any]:
    """Post the changes of the source collections as they happen (until stopped, or `stop_after_seconds`)."""
    logger = get_run_logger()
    store = get_store()
    deadline = None if stop_after_seconds is None else time.monotonic() + stop_after_seconds
    _stopping.clear()
    totals = {"changes": 0, "microBatches": 0, "fallbacks": 0}
    pending: Pending = defaultdict(lambda: defaultdict(set))
    backoff = _Backoff()
    token = store.watch.get(name).get("token")
    stream = _open(store, token, logger)
    if stream is None:  # the token cannot be resumed from: a new stream first, then catch up
        stream = _open(store, None, logger)
        assert stream is not None
        totals["fallbacks"] += 1
        logger.warning("watcher %s: its resume token is no longer valid; catching up with an incremental sync of "
                       "every vendor", name)
        for vendor in store.sources.vendor_ids():
            pending[vendor][CATCH_UP] = set()
        token = None  # saved from the new stream at the first chance
    with stream:
        if token is None and stream.opened_at is not None:  # a first (or fresh) stream: kept before any change
            token = stream.opened_at
            store.watch.save(name, token, utc_now())
        store.watch.beat(name, utc_now(), liveSince=utc_now())
        beaten_at = time.monotonic()
        while not _stopping.is_set() and (deadline is None or time.monotonic() < deadline):
            changes = _gather(store, stream, pending, window_seconds, max_documents)
            totals["changes"] += changes
            totals["microBatches"] += _post(pending, backoff, logger)
            if not pending and (changes or token is None):
                token = stream.resume_token
                store.watch.save(name, token, utc_now())
            if changes or time.monotonic() - beaten_at >= BEAT_SECONDS:
                store.watch.beat(name, utc_now(), lastChanges=changes, waiting=sorted(pending))
                beaten_at = time.monotonic()
    return totals


# What the server answers a resume token it cannot resume from (malformed, unknown, or older than
# its history); any other error (a timeout, the server away) is waited out and tried again.
UNRESUMABLE = frozenset({2, 9, 260, 280, 286})  # BadValue, FailedToParse, InvalidResumeToken, …HistoryLost
CATCH_UP = ""  # the step key for "an incremental sync of the whole vendor" in `Pending`


def _open(store: Store, token: Any, logger: Any) -> _Replayed | None:
    """The stream after `token`; None when the token cannot be resumed from."""
    for attempt in itertools.count():
        try:
            stream = store.sources.watch(resume_after=token)
            opened_at = stream.resume_token  # before the first read: where a restart must go on from
            return _Replayed(stream, stream.try_next(), opened_at)  # a bad token is refused by now
        except OperationFailure as error:
            if token is not None and error.code in UNRESUMABLE:
                logger.warning("cannot resume the change stream: %s", error)
                return None
            failure: PyMongoError = error
        except PyMongoError as error:
            failure = error
        delay = min(2.0 ** attempt, MAX_RETRY_SECONDS)
        logger.warning("cannot open the change stream (%s); trying again in %.0f s", failure, delay)
        time.sleep(delay)
    raise AssertionError("unreachable")


class _Replayed:
    """A stream whose first event, read when it was opened (to check the token), is handed out again."""

    def __init__(self, stream: Any, first: Any, opened_at: Any):
        self.stream = stream
        self.first = first
        self.opened_at = opened_at

    def __enter__(self) -> _Replayed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()

    @property
    def resume_token(self) -> Any:
        return self.stream.resume_token

    def try_next(self) -> Any:
        if self.first is not None:
            first, self.first = self.first, None
            return first
        return self.stream.try_next()


def _gather(store: Store, stream: Any, pending: Pending, window_seconds: float, max_documents: int) -> int:
    """Wait for a change, then take what else comes within the window; the changes noted."""
    noted = 0
    first_at: float | None = None
    while True:
        event = stream.try_next()
        if event is not None:
            noted += _note(store, event, pending)
            first_at = first_at or time.monotonic()
        elif first_at is not None or pending:
            if first_at is None or time.monotonic() - first_at >= window_seconds:
                return noted
        else:
            return noted  # nothing happened within the stream's wait: let the caller look at its deadline
        if noted >= max_documents:
            return noted


def _note(store: Store, event: dict[str, Any], pending: Pending) -> int:
    kind = store.sources.kind_of_collection(event.get("ns", {}).get("coll", ""))
    if kind is None:
        return 0
    source_id = event["documentKey"]["_id"]
    document = event.get("fullDocument")
    vendors = [document["vendorId"]] if isinstance(document, dict) and isinstance(document.get("vendorId"), str) \
        else store.entries.vendors_of(kind.type, source_id)  # deleted (or gone since): whoever posted it
    for vendor in vendors:
        pending[vendor][kind.step].add(id_key(source_id))
    return 1


class _Backoff:
    """When each vendor whose micro-batch failed may be tried again: 2 s, 4 s, … up to 5 minutes."""

    def __init__(self) -> None:
        self.failures: dict[str, int] = {}
        self.not_before: dict[str, float] = {}

    def due(self, vendor: str) -> bool:
        return time.monotonic() >= self.not_before.get(vendor, 0.0)

    def failed(self, vendor: str) -> float:
        self.failures[vendor] = self.failures.get(vendor, 0) + 1
        delay = min(2.0 ** self.failures[vendor], MAX_RETRY_SECONDS)
        self.not_before[vendor] = time.monotonic() + delay
        return delay

    def succeeded(self, vendor: str) -> None:
        self.failures.pop(vendor, None)
        self.not_before.pop(vendor, None)


MAX_RETRY_SECONDS = 300.0


def _post(pending: Pending, backoff: _Backoff, logger: Any) -> int:
    """One micro-batch per vendor with changes. A vendor whose sync is running keeps them for the next
    window; one whose micro-batch failed keeps them too, and is tried again later: the stream's token
    only moves past changes that are posted."""
    posted = 0
    for vendor in list(pending):
        if not backoff.due(vendor):
            continue
        documents = {step: sorted(keys) for step, keys in pending[vendor].items() if step != CATCH_UP}
        try:
            if CATCH_UP in pending[vendor]:  # after a fallback: every change since its last sync
                summary_of(sync_vendor_ledger(vendor, return_state=True))
                del pending[vendor][CATCH_UP]
            if documents:
                summary_of(sync_vendor_ledger(vendor, documents=documents, return_state=True))
        except SyncAlreadyRunning as running:
            logger.info("watcher: vendor %s has a sync running (%s); its changes wait for the next window", vendor,
                        running.sync_id)
            continue
        except Exception as error:  # noqa: BLE001 - the run record says why; its changes are kept
            delay = backoff.failed(vendor)
            logger.error("watcher: the micro-batch of vendor %s (%d documents) failed: %s; trying again in %.0f s",
                         vendor, sum(len(keys) for keys in documents.values()), error, delay)
            continue
        backoff.succeeded(vendor)
        del pending[vendor]
        posted += 1
    return posted
