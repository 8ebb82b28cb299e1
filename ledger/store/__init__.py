"""The only code that talks to MongoDB, one module per aggregate, each the only one
touching its collections:

| module | collections |
|---|---|
| `sources` | the business app's source collections (read only) and the query planner |
| `entries` | `ledger_entries` |
| `runs` | `ledger_sync_runs` |
| `rejections` | `ledger_sync_errors` |
| `accounts` | `ledger_accounts` |
| `vendors` | `ledger_vendor_state`, the app's `vendors` (read only) |

Everything is batched: a sync costs a handful of commands per batch of source
documents, never one per document. `Store` holds one of each for a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pymongo.database import Database

from ledger.store.accounts import AccountStore
from ledger.store.entries import EntryIdCollision, EntryStore, WriteResult, Written
from ledger.store.rejections import RejectionStore
from ledger.store.runs import Fenced, RunGuard, RunRepository, SyncAlreadyRunning
from ledger.store.sources import SourceQuery, SourceStore
from ledger.store.vendors import VendorStore


@dataclass(frozen=True)
class CollectionNames:
    """Where everything lives: source collections by kind type (a kind missing here uses its
    default), the app's vendors, and the prefix of the ledger's own collections."""

    sources: Mapping[str, str] = field(default_factory=dict)
    vendors: str = "vendors"
    ledger_prefix: str = "ledger_"


class Store:
    def __init__(self, db: Database, names: CollectionNames = CollectionNames(), batch_size: int = 1000):
        self.db = db
        self.names = names
        self.batch_size = batch_size
        prefix = names.ledger_prefix
        self.sources = SourceStore(db, names.sources, batch_size)
        self.entries = EntryStore(db[prefix + "entries"], batch_size)
        self.runs = RunRepository(db[prefix + "sync_runs"])
        self.rejections = RejectionStore(db[prefix + "sync_errors"])
        self.accounts = AccountStore(db[prefix + "accounts"])
        self.vendors = VendorStore(db[prefix + "vendor_state"], db[names.vendors])

    def ensure_indexes(self) -> None:
        """Indexes for every query the product runs (idempotent)."""
        for part in (self.sources, self.entries, self.runs, self.rejections, self.accounts):
            part.ensure_indexes()


__all__ = ["CollectionNames", "EntryIdCollision", "Fenced", "RunGuard", "SourceQuery", "Store", "SyncAlreadyRunning",
           "WriteResult", "Written"]
