"""The only code that talks to MongoDB, one module per aggregate, each the only one
touching its collections:

| module | collections |
|---|---|
| `sources` | the business app's source collections (read only) and the query planner |
| `entries` | `ledger_entries` |
| `runs` | `ledger_sync_runs` |
| `rejections` | `ledger_sync_errors` |
| `accounts` | `ledger_accounts` |
| `vendors` | `ledger_vendor_state` (chain head, close date, counters), the app's `vendors` (read only) |
| `balances` | `ledger_balances` (movements per account by month), `ledger_balance_days` (… by day) |
| `chain` | `ledger_chain` (entries chained once, from before the chain existed) and walking the chain |
| `periods` | `ledger_periods` (closes and reopens) |
| `watch` | `ledger_watch_state` (the continuous sync's resume token) |

`batches` writes one batch across them in one transaction; `books` reads balances as of a date.

Everything is batched: a sync costs a handful of commands per batch of source
documents, never one per document. `Store` holds one of each for a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pymongo.database import Database

from ledger.store.accounts import AccountStore
from ledger.store.balances import BalanceStore
from ledger.store.books import Books
from ledger.store.chain import ChainStore
from ledger.store.entries import EntryIdCollision, EntryStore, WriteResult, Written
from ledger.store.periods import PeriodStore
from ledger.store.rejections import RejectionStore
from ledger.store.runs import Fenced, RunGuard, RunRepository, SyncAlreadyRunning
from ledger.store.sources import SourceQuery, SourceStore
from ledger.store.vendors import VendorStore
from ledger.store.watch import WatchStateStore


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
        self.balances = BalanceStore(db[prefix + "balances"], db[prefix + "balance_days"])
        self.chain = ChainStore(db[prefix + "chain"], self.entries.collection, batch_size)
        self.periods = PeriodStore(db[prefix + "periods"])
        self.books = Books(self.entries, self.balances, self.vendors)
        self.watch = WatchStateStore(db[prefix + "watch_state"])

    def knows_vendor(self, vendor_id: str) -> bool:
        """Whether the vendor has source documents or books (an index read per collection at most)."""
        return bool(self.vendors.state_of(vendor_id)) or self.sources.has_vendor(vendor_id)

    def ensure_indexes(self) -> None:
        """Indexes for every query the product runs (idempotent)."""
        for part in (self.sources, self.entries, self.runs, self.rejections, self.accounts, self.balances, self.chain,
                     self.periods, self.vendors):
            part.ensure_indexes()


__all__ = ["CollectionNames", "EntryIdCollision", "Fenced", "RunGuard", "SourceQuery", "Store", "SyncAlreadyRunning",
           "WriteResult", "Written"]
